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
from ddi_energy.hardware.energy import RF_MODEL, add_energy, rf_accesses
from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.columns import TABLE_COLUMNS, content_digest, network_totals
from ddi_energy.tables.rows import Granularity, RowSpec, row_specs, shape_names
from ddi_energy.workload.shapes import COUNT_FIELDS, Layer


def _hw(h: int, w: int) -> int | str:
    """A per-axis value as a table cell: one int when both axes agree, else "HxW"."""
    return h if h == w else f"{h}x{w}"


def build_table(
    specs: Sequence[RowSpec],
    hw: HardwareConfig,
    engine: Engine,
    *,
    jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the engine on the unique SCALE-Sim layers of `specs` and assemble the Eq. 6 table.

    A row's counts, MACs and RF accesses are the sums over its SCALE-Sim layers (one for a
    dense layer; every group and dilation phase of a grouped or dilated conv). A physical
    engine gets them with their padding (`RowSpec.padded_parts`).
    """
    names = shape_names(specs, engine.model)
    counts = engine.counts(list(names), hw, jobs=jobs, progress=progress, names=names)
    records = []
    for spec in specs:
        layer, parts = spec.layer, spec.parts_for(engine.model)
        extent_h, extent_w = layer.extent_hw
        records.append(
            {
                "layer": layer.name,
                "in_channels": spec.in_channels,
                "out_channels": spec.out_channels,
                "full_in_channels": layer.in_channels,
                "full_out_channels": layer.out_channels,
                "ifmap_h": extent_h,
                "ifmap_w": extent_w,
                "filter_h": layer.filter_h,
                "filter_w": layer.filter_w,
                "stride": _hw(*layer.stride_hw),
                "macs": sum(n * s.macs for s, n in parts),
                **{f: sum(n * getattr(counts[s], f) for s, n in parts) for f in COUNT_FIELDS},
                "rf_accesses": sum(n * rf_accesses(s.macs, s.ofmap_pixels, s.window, s.filters,
                                                   hw.dataflow) for s, n in parts),
                "layer_index": spec.index,
                "kind": layer.kind,
                "is_full": spec.is_full,
                "layer_gate": layer.layer_gate or "",
                "channel_gate": layer.channel_gate or "",
                "channel_axis": layer.channel_axis or "",
                "ofmap_h": layer.out_h,
                "ofmap_w": layer.out_w,
                "padding": _hw(*layer.padding_hw),
                "groups": layer.groups,
                "dilation": _hw(*layer.dilation_hw),
                "sim_layers": sum(n for _, n in parts),
            }
        )
    table = add_energy(pd.DataFrame.from_records(records), hw)
    return table[list(TABLE_COLUMNS)]


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
        "scalesim_version": version("scalesim"),
        "ddi_energy_version": version("ddi-energy"),
        "granularity": granularity,
        "rows": len(table),
        "content_sha256": content_digest(table),
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
    start = time.perf_counter()
    specs = row_specs(walk_arch(arch) if layers is None else layers, granularity)
    counter = count_engine(counts, engine, cache_dir=cache_dir)
    table = build_table(specs, hw, counter, jobs=jobs, progress=progress)
    meta = metadata(
        arch=arch, hw=hw, energy_note=energy_note, engine=counter, granularity=granularity,
        seconds=time.perf_counter() - start, table=table, model=model,
    )  # fmt: skip
    return table, meta
