"""Design-space sweeps: one table per hardware design point and a summary per point.

`--vary array.rows=8,16,32 --vary sram_kB.ifmap=16,64` gives the cartesian product of the values
on top of a base config (`sram_kB=16,64` sets all three buffers at once). Every point is validated
before any work starts, so a bad value stops the sweep with nothing written.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from ddi_energy.errors import DDIError, warn
from ddi_energy.files import atomic_write
from ddi_energy.hardware.config import LEVELS, OPERANDS, HardwareConfig, from_dict
from ddi_energy.hardware.energy import ENERGY_COLUMNS
from ddi_energy.tables.build import run_profile, table_stem
from ddi_energy.tables.columns import network_totals
from ddi_energy.tables.io import write_table
from ddi_energy.tables.rows import Granularity

VARY_KEYS = (
    "word_bits", "array.rows", "array.cols", "dataflow", "sram_kB",
    *(f"sram_kB.{op}" for op in OPERANDS), *(f"energy_pj.{lv}" for lv in LEVELS), "clock_mhz",
)  # fmt: skip


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """`["array.rows=8,16"]` -> `{"array.rows": [8, 16]}`; values typed as YAML scalars."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise DDIError(f"--vary {item!r}: expected KEY=V1,V2,... like array.rows=8,16,32")
        if key not in VARY_KEYS:
            allowed = ", ".join(VARY_KEYS)
            raise DDIError(f"--vary {item!r}: unknown key {key!r} (allowed: {allowed})")
        if key in vary:
            raise DDIError(f"--vary {item!r}: key {key!r} given twice")
        parsed = []
        for raw in values.split(","):
            try:
                parsed.append(yaml.safe_load(raw.strip()))
            except yaml.YAMLError:
                raise DDIError(f"--vary {item!r}: cannot read value {raw!r}") from None
        vary[key] = parsed
    if not vary:
        raise DDIError("give at least one --vary KEY=V1,V2,...")
    return vary


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    if dotted == "sram_kB":  # every buffer
        data["sram_kB"] = dict.fromkeys(OPERANDS, value)
        return
    *parents, leaf = dotted.split(".")
    for p in parents:
        data = data[p]
    data[leaf] = value


def design_points(
    base: HardwareConfig, vary: dict[str, list[Any]]
) -> list[tuple[dict[str, Any], HardwareConfig]]:
    """Every combination of the varied values, each validated into a named `HardwareConfig`."""
    points = []
    keys = list(vary)
    for index, values in enumerate(itertools.product(*(vary[k] for k in keys))):
        setting = dict(zip(keys, values, strict=True))
        data = copy.deepcopy(base.to_dict())
        for key, value in setting.items():
            _set(data, key, value)
        data["name"] = f"{base.name}-p{index:02d}"
        where = "--vary " + " ".join(f"{k}={v}" for k, v in setting.items())
        points.append((setting, from_dict(data, where)))
    return points


def fixed_sram_warning(points: list[tuple[dict[str, Any], HardwareConfig]]) -> str | None:
    """The warning for buffer sizes that vary while a point's SRAM energy does not follow them."""
    sizes = {tuple(hw.sram_kB.values()) for _, hw in points}
    fixed = sorted({hw.energy_pj["sram"] for _, hw in points if not hw.sram_auto})
    if len(sizes) < 2 or not fixed:
        return None
    return (f"buffer sizes vary but energy_pj.sram is fixed at "
            f"{', '.join(f'{e:g}' for e in fixed)} pJ per word, so bigger buffers cost nothing "
            "per access; use energy_pj.sram: auto (or --vary energy_pj.sram=auto)")  # fmt: skip


def point_summary(setting: dict[str, Any], hw: HardwareConfig, table: pd.DataFrame,
                  table_file: str) -> dict[str, Any]:
    """One summary row: energy per inference by level, the SRAM energy per word of each buffer,
    MACs, cycles, utilization, latency."""
    t = network_totals(table)
    row: dict[str, Any] = {"point": hw.name, **setting, "table": table_file}
    row.update({k: t[k] for k in ("energy_pj", *ENERGY_COLUMNS)})
    row.update({f"sram_pj_{op}": e for op, e in hw.sram_pj().items()})
    row["macs"] = int(t["macs"])
    row["cycles"] = int(t["cycles"])
    # MACs per PE per cycle: SCALE-Sim's mapping and fill/drain losses in one number.
    row["utilization"] = t["macs"] / (t["cycles"] * hw.rows * hw.cols)
    row["latency_ms"] = t["cycles"] / (hw.clock_mhz * 1e3) if hw.clock_mhz else float("nan")
    return row


def run_sweep(
    arch: str,
    base: HardwareConfig,
    energy_note: str,
    vary: dict[str, list[Any]],
    out_dir: Path,
    *,
    engine: str = "analytic",
    counts: str = "scalesim",
    granularity: Granularity = "channel",
    jobs: int = 1,
    progress: bool = True,
) -> tuple[pd.DataFrame, Path]:
    """Profile `arch` on every design point; write the tables and `<arch>_<base>_sweep.csv`
    (`<arch>_<base>_physical_sweep.csv` for physical counts)."""
    points = design_points(base, vary)
    warning = fixed_sram_warning(points)
    if warning:
        warn(warning)
    rows = []
    for setting, hw in tqdm(points, desc="sweep", unit="point", disable=not progress):
        table, meta = run_profile(arch, hw, energy_note, engine=engine, counts=counts,
                                  granularity=granularity, jobs=jobs, progress=False)
        meta["sweep"] = {"base": base.name, "setting": setting}
        stem = table_stem(arch, hw, granularity, counts)
        csv_path, _ = write_table(table, meta, out_dir, stem)
        rows.append(point_summary(setting, hw, table, csv_path.name))
    summary = pd.DataFrame(rows)
    suffix = "_physical" if counts == "physical" else ""
    path = out_dir / f"{arch}_{base.name}{suffix}_sweep.csv"
    atomic_write(path, summary.to_csv(index=False))
    return summary, path
