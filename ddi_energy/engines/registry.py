"""Engines turn layer workloads into SCALE-Sim access counts.

Every engine has the same call: `engine.counts(shapes, hw, jobs=..., progress=..., names=...)`
returns `{shape: AccessCounts}` for the unique shapes given. `names` maps a shape to a layer name
used in error messages ("layer stage1.0.conv1: ...").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import AccessCounts, ConvShape


class Engine(Protocol):
    name: str

    def counts(
        self,
        shapes: Iterable[ConvShape],
        hw: HardwareConfig,
        *,
        jobs: int = 1,
        progress: bool = True,
        names: Mapping[ConvShape, str] | None = None,
    ) -> dict[ConvShape, AccessCounts]: ...


ENGINES = ("analytic", "scalesim")


def get_engine(name: str, cache_dir: Path | None = None) -> Engine:
    """An engine by name; imported lazily so that listing engines needs no simulator.

    `cache_dir` is used by the SCALE-Sim engine only (the analytic one needs no cache).
    """
    if name == "scalesim":
        from ddi_energy.engines.scalesim_engine import ScaleSimEngine

        return ScaleSimEngine(cache_dir=cache_dir)
    if name == "analytic":
        from ddi_energy.engines.analytic import AnalyticEngine

        return AnalyticEngine()
    raise DDIError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})")
