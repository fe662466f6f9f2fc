"""Engines turn layer workloads into SCALE-Sim access counts.

Every engine has the same call: `engine.counts(shapes, hw, jobs=..., progress=..., names=...)`
returns `{shape: AccessCounts}` for the unique shapes given. `names` maps a shape to a layer name
used in error messages ("layer stage1.block0.conv1: ...").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from ddi_energy.hardware import HardwareConfig
from ddi_energy.workload import AccessCounts, ConvShape


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
