"""Engines turn layer workloads into access counts.

Every engine has the same call: `engine.counts(shapes, hw, jobs=..., progress=..., names=...)`
returns `{shape: AccessCounts}` for the unique shapes given. `names` maps a shape to a layer name
used in error messages ("layer stage1.0.conv1: ..."). `model` says which count model an engine
gives: "scalesim" (SCALE-Sim 3.0.0's counts: the real simulator or its exact analytic replica) or
"physical" (the same mapping counted as hardware spends it; it wants `PaddedShape`s).
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
    model: str

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
# What each count model is, as recorded in table metadata (the formulas: engines/physical.py).
COUNT_MODEL_NOTES = {
    "scalesim": "SCALE-Sim 3.0.0 CALC-mode counts, upstream artefacts included (OS ofmap writes "
    "counted twice per fold, WS/IS partial sums of every fold written to DRAM and never read "
    "back, zero padding fetched and read); sram_ofmap_reads and dram_ofmap_reads are 0",
    "physical": "SCALE-Sim's mapping counted as hardware spends it: OS outputs written once; "
    "WS/IS partial sums accumulated in the ofmap buffer (every fold after the first reads them "
    "back), half the buffer holds them and a larger tile spills the rest to DRAM and reads it "
    "back; zero padding never fetched, stored or read; cycles, filter traffic and the "
    "double-buffered read buffers as SCALE-Sim",
}
COUNT_MODELS = tuple(COUNT_MODEL_NOTES)


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


def count_engine(counts: str, engine: str = "analytic", cache_dir: Path | None = None) -> Engine:
    """The engine for a count model: SCALE-Sim's counts from `engine`, or the physical model
    (computed from the analytic replica's fold structure, so only with the analytic engine)."""
    if counts == "scalesim":
        return get_engine(engine, cache_dir=cache_dir)
    if counts != "physical":
        raise DDIError(f"unknown count model {counts!r} (available: {', '.join(COUNT_MODELS)})")
    if engine != "analytic":
        raise DDIError(f"--counts physical is derived from the analytic engine's mapping, not "
                       f"from SCALE-Sim runs: use --engine analytic (got {engine!r})")  # fmt: skip
    from ddi_energy.engines.physical import PhysicalEngine

    return PhysicalEngine()
