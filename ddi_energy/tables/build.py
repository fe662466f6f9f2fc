"""Profiling: table rows -> engine counts -> Eq. 6 energy table, with the metadata that traces
every number back to its inputs (`run_profile` does all of it for a zoo arch)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from ddi_energy.engines.registry import COUNT_MODEL_NOTES, Engine, count_engine
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.hardware.energy import RF_MODEL
from ddi_energy.tables.assemble import fill_table, table_layout
from ddi_energy.tables.columns import network_totals
from ddi_energy.tables.rows import Granularity, RowSpec, row_specs
from ddi_energy.workload.shapes import Layer


def build_table(
    specs: Sequence[RowSpec],
    hw: HardwareConfig,
    engine: Engine,
    *,
    jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the engine on the unique SCALE-Sim layers of `specs` and assemble the Eq. 6 table
    (`tables/assemble.py`; a physical engine gets the layers with their padding)."""
    layout = table_layout(specs, engine.model)
    counts = engine.counts(layout.shapes, hw, jobs=jobs, progress=progress, names=layout.names)
    return fill_table(layout, counts, hw)


def source_name(hw: HardwareConfig) -> str:
    """Where a config came from: `hw_configs/<name>.yaml` for a bundled one (not this machine's
    install path, so shipped tables do not change with where ddi-energy is installed)."""
    from ddi_energy.hardware.config import bundled_configs

    for name, path in bundled_configs().items():
        if hw.source and Path(hw.source).resolve() == path.resolve():
            return f"hw_configs/{name}.yaml"
    return hw.source


def metadata(
    *,
    arch: str,
    hw: HardwareConfig,
    energy_note: str,
    engine: Engine,
    granularity: Granularity,
    seconds: float,
    table: pd.DataFrame,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a reader needs to trace every number of a table back to its inputs (`model`: where
    a user model came from and what it ran that the table does not price)."""
    return {
        "arch": arch,
        **(model or {}),
        "hw": hw.to_dict(),
        "hw_source": source_name(hw),
        "hw_digest": hw.digest(),
        "engine": engine.name,
        "counts": engine.model,
        "count_model": COUNT_MODEL_NOTES[engine.model],
        "granularity": granularity,
        "rows": len(table),
        "content_sha256": None,  # set by write_table from the CSV it writes
        "units": {
            "counts": f"words of {hw.word_bits} bits",
            "cycles": "cycles (SCALE-Sim 'Total Cycles', CALC mode, no stalls)",
            "energy": "pJ",
            "ifmap_h": "padded input extent read by the layer (SCALE-Sim topology value)",
        },
        "energy_model": "Eq. 6: E = sum_level accesses x e_level + MACs x e_mac; SRAM summed "
        "per operand buffer at its own pJ per word",
        "sram_model": hw.sram_model(),
        "sram_pj": hw.sram_pj(),
        "energy_source": energy_note,
        "rf_model": RF_MODEL,
        "totals_full_network": network_totals(table),
        **provenance(seconds),
    }


def provenance(seconds: float) -> dict[str, Any]:
    """The versions, command line and time of a run, for the metadata of what it writes."""
    return {
        "scalesim_version": version("scalesim"),
        "ddi_energy_version": version("ddi-energy"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 3),
    }


def table_stem(arch: str, hw: HardwareConfig, granularity: Granularity,
               counts: str = "scalesim") -> str:  # fmt: skip
    """File stem of a table: `<arch>_<hw>`, then `_physical` for physical counts and `_layer`
    for layer granularity (`resnet20_eyeriss_physical_layer`)."""
    return (f"{arch}_{hw.name}" + ("_physical" if counts == "physical" else "")
            + ("_layer" if granularity == "layer" else ""))  # fmt: skip


def run_profile(
    arch: str,
    hw: HardwareConfig,
    energy_note: str,
    *,
    engine: str = "analytic",
    counts: str = "scalesim",
    granularity: Granularity = "channel",
    jobs: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
    layers: Sequence[Layer] | None = None,
    model: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of `arch` on `hw` under a count model (`scalesim` from `engine`, or
    `physical`) and its metadata (not written: see `write_table`).

    `layers` replaces the zoo walk of `arch` (a user model's; `arch` then only names it) and
    `model` adds to the metadata (see `metadata`).
    """
    from ddi_energy.models.zoo import walk_arch  # torch only here: sweep workers import this module

    start = time.perf_counter()
    specs = row_specs(walk_arch(arch) if layers is None else layers, granularity)
    counter = count_engine(counts, engine, cache_dir=cache_dir)
    table = build_table(specs, hw, counter, jobs=jobs, progress=progress)
    meta = metadata(
        arch=arch, hw=hw, energy_note=energy_note, engine=counter, granularity=granularity,
        seconds=time.perf_counter() - start, table=table, model=model,
    )  # fmt: skip
    return table, meta
