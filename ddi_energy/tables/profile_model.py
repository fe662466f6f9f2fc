"""Profile any PyTorch CNN, not only the zoo: `profile_model(model, input_size, hw)`.

The model is walked once (`walk_model`): every Conv2d and Linear becomes table rows named by
its module path, and every other FLOP-carrying op (matmul, attention, conv3d, ...) is listed
with its module path and share of the forward's FLOPs. Such ops cannot be priced, so profiling
refuses them unless `allow_unpriced`, which records them in the table's metadata instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ddi_energy.errors import DDIError, DDIWarning
from ddi_energy.hardware.config import HardwareConfig, load_hw
from ddi_energy.models.user import load_model
from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.build import run_profile
from ddi_energy.tables.rows import Granularity
from ddi_energy.workload.shapes import Layer
from ddi_energy.workload.walker import walk_model


class UnpricedOpsWarning(DDIWarning):
    """A profiled model runs FLOP-carrying ops that its table leaves out."""


@dataclass(frozen=True)
class Workload:
    """What a table is built from: a name, the priced layers, and metadata about the model."""

    name: str
    layers: tuple[Layer, ...]
    model: dict[str, Any] = field(default_factory=dict)  # goes into the table's metadata


def model_workload(model: nn.Module, input_size: Sequence[int] | None, name: str, *,
                   source: str | None = None, allow_unpriced: bool = False
                   ) -> Workload:  # fmt: skip
    """Walk `model`; refuse (DDIError, one line per op kind) FLOP-carrying ops no layer prices,
    unless `allow_unpriced` (then an `UnpricedOpsWarning` lists them)."""
    size = tuple(input_size) if input_size is not None else getattr(model, "input_size", None)
    if size is None or len(size) != 3 or min(size) < 1:
        raise DDIError(f"{source or name}: give the input size as C,H,W (got {size})")
    try:
        walk = walk_model(model, size)  # type: ignore[arg-type]
    except DDIError:
        raise
    except Exception as exc:  # the user's forward: its error, one line
        raise DDIError(f"{source or name}: forward on a (1, {', '.join(map(str, size))}) input "
                       f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    if not walk.layers:
        raise DDIError(f"{source or name}: no Conv2d or Linear ran in its forward; nothing to "
                       "price")  # fmt: skip
    lines = [kind.line() for kind in walk.unpriced]
    meta: dict[str, Any] = {"model": source or type(model).__name__, "input_size": list(size),
                            "forward_flops": walk.flops}  # fmt: skip
    if not lines:
        return Workload(name, walk.layers, meta)
    head = (f"{source or name} runs {len(lines)} kind(s) of FLOP-carrying op that no cost "
            "table row prices")
    if not allow_unpriced:
        raise DDIError("\n  ".join([f"{head} (--allow-unpriced leaves them out):", *lines]))
    meta["unpriced_ops"] = [kind.as_dict() for kind in walk.unpriced]
    warnings.warn("\n  ".join([f"{head}; left out:", *lines]), UnpricedOpsWarning, stacklevel=3)
    return Workload(name, walk.layers, meta)


def workload_for(arch: str | None = None, model_spec: str | None = None,
                 input_size: Sequence[int] | None = None, *, name: str | None = None,
                 allow_unpriced: bool = False) -> Workload:  # fmt: skip
    """A zoo arch, or a user model given as `FILE.py:FACTORY` / `package.module:FACTORY`."""
    if (arch is None) == (model_spec is None):
        raise DDIError("give a zoo arch (--arch) or a model (--model FILE.py:FACTORY), one of them")
    if arch is not None:
        if input_size is not None or name is not None or allow_unpriced:
            raise DDIError("--input-size, --name and --allow-unpriced go with --model, not with "
                           "a zoo --arch")  # fmt: skip
        return Workload(arch, tuple(walk_arch(arch)))
    model, factory = load_model(model_spec)  # type: ignore[arg-type]
    return model_workload(model, input_size, name or factory, source=model_spec,
                          allow_unpriced=allow_unpriced)  # fmt: skip


def profile_model(
    model: nn.Module,
    input_size: Sequence[int] | None,
    hw: HardwareConfig | str | Path,
    *,
    name: str | None = None,
    engine: str = "analytic",
    counts: str = "scalesim",
    granularity: Granularity = "channel",
    allow_unpriced: bool = False,
    jobs: int = 1,
    progress: bool = False,
    cache_dir: Path | None = None,
) -> pd.DataFrame:
    """The cost table of any `nn.Module` on `hw` (a config, or a bundled name or file path).

    `input_size` is (C, H, W) (None: the model's `input_size`); `counts` is the count model
    (`scalesim`, or `physical` with the analytic engine). Returns the table with its
    metadata in `attrs["meta"]`, as `load_cost_table` does; `write_table` saves it. Unpriced
    ops raise `DDIError`, or with `allow_unpriced` give an `UnpricedOpsWarning`.
    """
    name = name or type(model).__name__.lower()
    workload = model_workload(model, input_size, name, allow_unpriced=allow_unpriced)
    if isinstance(hw, HardwareConfig):
        config, note = hw, f"energies from {hw.source or 'the given config'}"
    else:
        config, note = load_hw(str(hw))
    table, meta = run_profile(name, config, note, engine=engine, counts=counts,
                              granularity=granularity, jobs=jobs, progress=progress,
                              cache_dir=cache_dir, layers=workload.layers,
                              model=workload.model)  # fmt: skip
    table.attrs["meta"] = meta
    return table
