"""Channel groups aligned with the array: how many channels one channel-gate output switches.

An array only gets cheaper at multiples of the dimension a layer's filters are spread over
(Eyeriss, os, 14 columns: 15 active output channels take the cycles of 28). `auto` gates in
groups of that dimension: the columns under the output- and weight-stationary dataflows
(SCALE-Sim maps filters to columns there); under input stationary the filters run in time, not
across the array, so no group size is aligned and `auto` is 1.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ddi_energy.errors import DDIError, warn
from ddi_energy.hardware.config import HardwareConfig, from_dict

AUTO = "auto"
FILTER_DIMENSION = {"os": "cols", "ws": "cols", "is": None}  # where a conv's filters go


def parse_channel_group(value: Any, where: str = "channel_group") -> int | str:
    """An integer >= 1 (also given as text, e.g. from the command line) or "auto"."""
    if value == AUTO:
        return AUTO
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise DDIError(f"{where} = {value!r}: must be an integer >= 1 or 'auto'")
    return int(text)


def aligned_group(hw: HardwareConfig) -> int:
    """The array dimension the filters (output channels) of a conv map to; 1 under `is`."""
    dimension = FILTER_DIMENSION[hw.dataflow]
    if dimension is None:
        warn(f"channel_group auto on {hw.name}: its dataflow is is (input stationary), where "
             "filters are not spread over the array; using single channels (1)")  # fmt: skip
        return 1
    return int(getattr(hw, dimension))


def resolve_channel_group(spec: Any, table: pd.DataFrame | None) -> int:
    """`spec` as a number of channels: `auto` reads the hardware config of `table` (its
    metadata's `hw`), which it therefore needs."""
    spec = parse_channel_group(spec)
    if spec != AUTO:
        return spec
    meta = table.attrs.get("meta") or {} if table is not None else {}
    if "hw" not in meta:
        raise DDIError("channel_group = 'auto' needs a hardware config: give --hw, or a cost "
                       "table with one in its .json metadata")  # fmt: skip
    return aligned_group(from_dict(meta["hw"], "cost table metadata"))
