"""The one way to get a cost table for an arch: a table by name or path, or a fresh profile of
the arch on a hardware config (analytic engine or the physical count model, about a second).
Used by training, evaluation and `inspect`."""

from __future__ import annotations

import pandas as pd

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import load_hw
from ddi_energy.tables.build import run_profile
from ddi_energy.tables.io import load_cost_table


def cost_table_for(arch: str, *, hw: str | None = None, cost_table: str | None = None,
                   counts: str = "scalesim",
                   who: str = "profiled") -> pd.DataFrame | None:  # fmt: skip
    """`cost_table` loaded, or `arch` profiled on `hw` now under the `counts` model, or None
    when neither is given (a loaded table brings its own count model).

    A profiled table carries its metadata in `attrs["meta"]` like a loaded one, and a path-like
    label `<arch on hw, who>` in `attrs["path"]` for error messages.
    """
    if hw and cost_table:
        raise DDIError("give hw or cost_table, not both")
    if cost_table:
        return load_cost_table(cost_table)
    if hw:
        config, note = load_hw(hw)
        table, meta = run_profile(arch, config, note, counts=counts, progress=False)
        table.attrs.update(meta=meta, path=f"<{arch} on {config.name}, {counts} counts, {who}>")
        return table
    return None
