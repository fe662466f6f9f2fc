"""Design-space sweeps: a summary row per hardware design point, and its table unless
`summary_only`.

`--vary array.rows=8,16,32 --vary sram_kB.ifmap=16,64` gives the cartesian product of the values
on top of a base config (`sram_kB=16,64` sets all three buffers at once). Every point is validated
before any work starts, so a bad value stops the sweep with nothing written.

Work the points share is done once: the network is walked and its rows laid out once
(`tables/assemble.py`); points whose counts cannot differ (the same `sim_key`: array, dataflow
and buffer words; only energies or the clock vary) share one engine call; a summary-only sweep
counts only the full layers, the only rows its totals read. Points are spread over `jobs`
processes in chunks and put back in grid order, so the summary does not depend on `jobs`.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from ddi_energy.engines.registry import COUNT_MODEL_NOTES, count_engine
from ddi_energy.errors import DDIError, warn
from ddi_energy.files import atomic_write_all
from ddi_energy.hardware.config import LEVELS, OPERANDS, HardwareConfig, from_dict
from ddi_energy.hardware.energy import ENERGY_COLUMNS
from ddi_energy.processes import completed
from ddi_energy.tables.assemble import TableLayout, fill_table, table_layout
from ddi_energy.tables.build import metadata, provenance, source_name, table_stem
from ddi_energy.tables.columns import network_totals
from ddi_energy.tables.io import write_table
from ddi_energy.tables.pareto import pareto_front
from ddi_energy.tables.rows import Granularity, row_specs

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
    width = max(2, len(str(math.prod(len(v) for v in vary.values()) - 1)))  # p007 of 1000
    for index, values in enumerate(itertools.product(*(vary[k] for k in keys))):
        setting = dict(zip(keys, values, strict=True))
        data = copy.deepcopy(base.to_dict())
        for key, value in setting.items():
            _set(data, key, value)
        data["name"] = f"{base.name}-p{index:0{width}d}"
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


PARETO_NOTE = ("energy_pj and cycles, both minimised: a point is on the front when no other "
               "point has lower or equal energy and cycles with one of them lower")  # fmt: skip
# Chunks per process: enough for an even spread and a live progress bar, few enough that
# sending a chunk (the table layout and its points) costs nothing next to counting it.
CHUNKS_PER_PROCESS = 25
# Points a worker process must have to pay for its start (1-2 s: Python, numpy and
# pandas): a summary point takes ~10-40 ms, a point with its table ~0.3-0.5 s (resnet74).
POINTS_PER_PROCESS = {"summary": 25, "tables": 2}

Point = tuple[int, dict[str, Any], HardwareConfig]  # (index in the grid, setting, config)


@dataclass(frozen=True)
class SweepWork:
    """What every point of a sweep shares; sent with each chunk of points to a worker."""

    arch: str
    base: str
    energy_note: str
    layout: TableLayout
    engine: str
    counts: str
    granularity: Granularity
    out_dir: Path | None  # None: summary only, no tables
    cache_dir: Path | None
    engine_jobs: int  # SCALE-Sim processes per point (points then run one by one)


def _run_chunk(chunk: tuple[SweepWork, list[list[Point]]]) -> list[tuple[int, dict[str, Any]]]:
    """Summary rows of a chunk of points (writing their tables unless summary only); the points
    of each group have the same `sim_key`, so one engine call counts them all."""
    work, groups = chunk
    engine = count_engine(work.counts, work.engine, cache_dir=work.cache_dir)
    rows = []
    for group in groups:
        start = time.perf_counter()
        counts = engine.counts(work.layout.shapes, group[0][2], jobs=work.engine_jobs,
                               progress=False, names=work.layout.names)  # fmt: skip
        for index, setting, hw in group:
            table = fill_table(work.layout, counts, hw)
            table_file = ""
            if work.out_dir is not None:
                meta = metadata(arch=work.arch, hw=hw, energy_note=work.energy_note,
                                engine=engine, granularity=work.granularity,
                                seconds=time.perf_counter() - start, table=table)  # fmt: skip
                meta["sweep"] = {"base": work.base, "setting": setting}
                stem = table_stem(work.arch, hw, work.granularity, work.counts)
                table_file = write_table(table, meta, work.out_dir, stem)[0].name
            rows.append((index, point_summary(setting, hw, table, table_file)))
            start = time.perf_counter()
    return rows


def _chunks(points: list[tuple[dict[str, Any], HardwareConfig]],
            processes: int) -> list[list[list[Point]]]:  # fmt: skip
    """Points grouped by `sim_key` (in grid order of each group's first point), groups cut
    into chunks of about len(points) / (processes * CHUNKS_PER_PROCESS) points; one group per
    chunk in a single process, where chunks only pace the progress bar."""
    groups: dict[str, list[Point]] = {}
    for index, (setting, hw) in enumerate(points):
        key = json.dumps(hw.sim_key(), sort_keys=True)
        groups.setdefault(key, []).append((index, setting, hw))
    size = 1 if processes <= 1 else math.ceil(len(points) / (processes * CHUNKS_PER_PROCESS))
    chunks: list[list[list[Point]]] = [[]]
    for group in groups.values():
        if sum(map(len, chunks[-1])) >= size:
            chunks.append([])
        chunks[-1].append(group)
    return chunks


def sweep_stem(arch: str, base: HardwareConfig, counts: str) -> str:
    """`<arch>_<base>_sweep`, `<arch>_<base>_physical_sweep` for physical counts."""
    return f"{arch}_{base.name}{'_physical' if counts == 'physical' else ''}_sweep"


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
    summary_only: bool = False,
    jobs: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> tuple[pd.DataFrame, Path]:
    """Profile `arch` on every design point: write `<arch>_<base>_sweep.csv` (with a `pareto`
    column) and `.json` (what was swept, how), and each point's table unless `summary_only`.

    Up to `jobs` processes share the points (the analytic engine and physical counts; one per
    POINTS_PER_PROCESS points at most); with the SCALE-Sim engine they run each point's
    simulations instead, point after point.
    """
    from ddi_energy.models.zoo import walk_arch

    started = time.perf_counter()
    points = design_points(base, vary)
    warning = fixed_sram_warning(points)
    if warning:
        warn(warning)
    specs = row_specs(walk_arch(arch), granularity)
    if summary_only:  # the totals read only the full layers
        specs = [spec for spec in specs if spec.is_full]
    engine_counts = count_engine(counts, engine, cache_dir=cache_dir)
    per_process = POINTS_PER_PROCESS["summary" if summary_only else "tables"]
    processes = 1 if engine == "scalesim" else max(1, min(jobs, len(points) // per_process))
    work = SweepWork(arch, base.name, energy_note, table_layout(specs, engine_counts.model),
                     engine, counts, granularity, None if summary_only else out_dir, cache_dir,
                     jobs if engine == "scalesim" else 1)  # fmt: skip
    chunks = _chunks(points, processes)
    rows: list[dict[str, Any]] = [{} for _ in points]
    died = "a sweep worker process died (out of memory or killed): rerun, with fewer --jobs"
    with tqdm(total=len(points), desc="sweep", unit="point", disable=not progress) as bar:
        for _, done in completed(_run_chunk, [(work, c) for c in chunks], processes, died):
            for index, row in done:
                rows[index] = row
            bar.update(len(done))
    summary = pd.DataFrame(rows)
    summary["pareto"] = pareto_front(summary["energy_pj"], summary["cycles"])
    path = out_dir / f"{sweep_stem(arch, base, counts)}.csv"
    meta = {
        "arch": arch,
        "base": base.to_dict(),
        "base_source": source_name(base),
        "vary": vary,
        "points": len(points),
        "pareto_points": int(summary["pareto"].sum()),
        "pareto": PARETO_NOTE,
        "engine": engine_counts.name,
        "counts": counts,
        "count_model": COUNT_MODEL_NOTES[counts],
        "granularity": granularity,
        "tables": "none (--summary-only)" if summary_only else "one per point",
        "energy_source": energy_note,
        **provenance(time.perf_counter() - started),
        "jobs": jobs,
        "processes": processes,
    }
    atomic_write_all({path: summary.to_csv(index=False),
                      path.with_suffix(".json"): json.dumps(meta, indent=2) + "\n"})  # fmt: skip
    return summary, path
