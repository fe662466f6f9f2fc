"""Profiling: network layers x active channel counts -> engine counts -> Eq. 6 energy table.

One row per (layer, active channel count). For a channel-gated layer, the rows sweep the count on
the axis its gate changes (1..k); the row with every channel active is the full layer
(`is_full`). Ungated layers have their full row only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ddi_energy.energy import ENERGY_COLUMNS, RF_MODEL, add_energy
from ddi_energy.engines import Engine, get_engine
from ddi_energy.errors import DDIError
from ddi_energy.hardware import HardwareConfig
from ddi_energy.walker import walk_arch
from ddi_energy.workload import COUNT_FIELDS, ConvShape, Layer

Granularity = Literal["channel", "layer"]

TABLE_COLUMNS = (
    "layer", "in_channels", "out_channels", "full_in_channels", "full_out_channels",
    "ifmap_h", "ifmap_w", "filter_h", "filter_w", "stride", "macs", "cycles",
    "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
    "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes", "rf_accesses",
    "energy_dram_pj", "energy_sram_pj", "energy_rf_pj", "energy_mac_pj", "energy_pj",
    # Beyond the required columns: what a consumer of the table needs to map rows to gates.
    "layer_index", "kind", "is_full", "layer_gate", "channel_gate", "channel_axis",
    "ofmap_h", "ofmap_w", "padding",
)  # fmt: skip


@dataclass(frozen=True)
class RowSpec:
    """One table row: a layer with the given active input and output channel counts."""

    index: int
    layer: Layer
    in_channels: int
    out_channels: int

    @property
    def shape(self) -> ConvShape:
        return self.layer.shape(self.in_channels, self.out_channels)

    @property
    def is_full(self) -> bool:
        return (self.in_channels, self.out_channels) == (
            self.layer.in_channels,
            self.layer.out_channels,
        )

    @property
    def name(self) -> str:
        """Unique row name, used in emitted SCALE-Sim topologies."""
        return f"{self.layer.name}_in{self.in_channels}_out{self.out_channels}"


def row_specs(layers: Sequence[Layer], granularity: Granularity) -> list[RowSpec]:
    """The rows of a table: every active channel count of gated layers, or full layers only."""
    specs = []
    for index, layer in enumerate(layers):
        if granularity == "channel" and layer.channel_axis is not None:
            for k in range(1, layer.gated_channels + 1):
                if layer.channel_axis == "in":
                    specs.append(RowSpec(index, layer, k, layer.out_channels))
                else:
                    specs.append(RowSpec(index, layer, layer.in_channels, k))
        else:
            specs.append(RowSpec(index, layer, layer.in_channels, layer.out_channels))
    return specs


def build_table(
    specs: Sequence[RowSpec],
    hw: HardwareConfig,
    engine: Engine,
    *,
    jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the engine on the unique shapes of `specs` and assemble the Eq. 6 table."""
    names: dict[ConvShape, str] = {}
    for spec in specs:
        names.setdefault(spec.shape, spec.name)
    counts = engine.counts(list(names), hw, jobs=jobs, progress=progress, names=names)
    records = []
    for spec in specs:
        shape, layer = spec.shape, spec.layer
        c = counts[shape]
        records.append(
            {
                "layer": layer.name,
                "in_channels": spec.in_channels,
                "out_channels": spec.out_channels,
                "full_in_channels": layer.in_channels,
                "full_out_channels": layer.out_channels,
                "ifmap_h": shape.ifmap_h,
                "ifmap_w": shape.ifmap_w,
                "filter_h": shape.filter_h,
                "filter_w": shape.filter_w,
                "stride": shape.stride,
                "macs": shape.macs,
                **{f: getattr(c, f) for f in COUNT_FIELDS},
                "layer_index": spec.index,
                "kind": layer.kind,
                "is_full": spec.is_full,
                "layer_gate": layer.layer_gate or "",
                "channel_gate": layer.channel_gate or "",
                "channel_axis": layer.channel_axis or "",
                "ofmap_h": shape.ofmap_h,
                "ofmap_w": shape.ofmap_w,
                "padding": layer.padding,
            }
        )
    table = add_energy(pd.DataFrame.from_records(records), hw)
    return table[list(TABLE_COLUMNS)]


def network_totals(table: pd.DataFrame) -> dict[str, float]:
    """Totals of the full network (every layer with all channels active)."""
    full = table[table["is_full"]]
    keys = ("macs", "cycles", "rf_accesses", *ENERGY_COLUMNS, "energy_pj")
    return {k: float(full[k].sum()) for k in keys}


def prepare_dirs(*dirs: Path) -> None:
    """`check_writable` on each directory; if one fails, the ones made here are removed again,
    so a bad second output leaves no empty first one behind."""
    made: list[Path] = []
    try:
        for directory in dirs:
            missing = [d for d in (directory, *directory.parents) if not d.exists()]
            check_writable(directory)
            made += missing
    except DDIError:
        for directory in made:  # deepest first
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


def check_writable(out_dir: Path) -> None:
    """Fail before any work if the output directory cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DDIError(f"{out_dir}: cannot create output directory ({exc.strerror})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise DDIError(f"{out_dir}: output directory is not writable")


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    atomic_write_all({path: text})


def atomic_write_all(files: dict[Path, str]) -> None:
    """Write every file to a temp file first and rename them only once all are written, so a
    failure leaves none of them changed (not a new CSV beside an old JSON)."""
    temps: dict[Path, str] = {}
    path = next(iter(files))
    try:
        for path, text in files.items():
            fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                               suffix=".tmp")  # fmt: skip
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(temps[path], 0o666 & ~_UMASK)  # mkstemp makes 0600: normal permissions
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except OSError as exc:
        raise DDIError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)


def source_name(hw: HardwareConfig) -> str:
    """Where a config came from: `hw_configs/<name>.yaml` for a bundled one (not this machine's
    install path, so shipped tables do not change with where ddi-energy is installed)."""
    from ddi_energy.hardware import bundled_configs

    for name, path in bundled_configs().items():
        if hw.source and Path(hw.source).resolve() == path.resolve():
            return f"hw_configs/{name}.yaml"
    return hw.source


def metadata(
    *,
    arch: str,
    hw: HardwareConfig,
    energy_note: str,
    engine: str,
    granularity: Granularity,
    seconds: float,
    table: pd.DataFrame,
) -> dict[str, Any]:
    """What a reader needs to trace every number of a table back to its inputs."""
    return {
        "arch": arch,
        "hw": hw.to_dict(),
        "hw_source": source_name(hw),
        "hw_digest": hw.digest(),
        "engine": engine,
        "scalesim_version": version("scalesim"),
        "ddi_energy_version": version("ddi-energy"),
        "granularity": granularity,
        "rows": len(table),
        "units": {
            "counts": f"words of {hw.word_bits} bits, as SCALE-Sim's reports count them",
            "cycles": "cycles (SCALE-Sim 'Total Cycles', CALC mode, no stalls)",
            "energy": "pJ",
            "ifmap_h": "padded input extent read by the layer (SCALE-Sim topology value)",
        },
        "energy_model": "Eq. 6: E = sum_level accesses x e_level + MACs x e_mac",
        "energy_source": energy_note,
        "rf_model": RF_MODEL,
        "totals_full_network": network_totals(table),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 3),
    }


def write_table(
    table: pd.DataFrame, meta: dict[str, Any], out_dir: Path, stem: str
) -> tuple[Path, Path]:
    """Write `<stem>.csv` and `<stem>.json` atomically; returns their paths."""
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    atomic_write_all({csv_path: table.to_csv(index=False),
                      json_path: json.dumps(meta, indent=2) + "\n"})  # fmt: skip
    return csv_path, json_path


def table_stem(arch: str, hw: HardwareConfig, granularity: Granularity) -> str:
    """File stem of a table: `<arch>_<hw>` (channel) or `<arch>_<hw>_layer`."""
    return f"{arch}_{hw.name}" + ("_layer" if granularity == "layer" else "")


def run_profile(
    arch: str,
    hw: HardwareConfig,
    energy_note: str,
    *,
    engine: str = "analytic",
    granularity: Granularity = "channel",
    jobs: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of `arch` on `hw` and its metadata (not written: see `write_table`)."""
    start = time.perf_counter()
    specs = row_specs(walk_arch(arch), granularity)
    table = build_table(
        specs, hw, get_engine(engine, cache_dir=cache_dir), jobs=jobs, progress=progress
    )
    meta = metadata(
        arch=arch, hw=hw, energy_note=energy_note, engine=engine, granularity=granularity,
        seconds=time.perf_counter() - start, table=table,
    )  # fmt: skip
    return table, meta
