"""Design-point throughput of `ddi-energy sweep`, before and after work shared across points,
and the wall time of the README's 1000-point resnet74 sweep.

    python benchmarks/bench_sweep.py                        # both count models, jobs 1 and 2
    python benchmarks/bench_sweep.py --counts physical --jobs 2

For each count model, in this process:
(a) before: the sweep loop as it was, per point: walk the network, profile its full channel
    table (every unique shape), write the table and its metadata, summarise it; on a 16-point
    corner grid (the smallest and largest array, both dataflows, both ends of the ofmap buffer).
(b) after, on the same 16 points: `run_sweep` writing every table (rows laid out once, one
    engine call per sim_key), and `run_sweep(summary_only=True)`, whose summary must equal (a)'s
    number for number.
(c) the README's grid, 1000 points: summary only, on `--jobs` 1 and N processes; wall time,
    points per second, ratios against (a).
Points per second depend on the array sizes (small arrays mean many folds): (a) and (b) share
their points; (c)'s points are the whole grid. The machine's load average is printed with the
numbers: other agents share its 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine_load import load

from ddi_energy.hardware.config import load_hw
from ddi_energy.tables.build import run_profile, table_stem
from ddi_energy.tables.io import write_table
from ddi_energy.tables.sweep import design_points, point_summary, run_sweep

# The README's design space: 5 x 5 arrays, two dataflows, 4 ifmap and 5 ofmap buffer sizes.
GRID = {
    "dataflow": ["os", "ws"],
    "array.rows": [8, 16, 32, 64, 128],
    "array.cols": [8, 16, 32, 64, 128],
    "sram_kB.ifmap": [16, 64, 256, 1024],
    "sram_kB.ofmap": [16, 32, 64, 128, 256],
}
CORNERS = {"dataflow": ["os", "ws"], "array.rows": [8, 128], "array.cols": [8, 128],
           "sram_kB.ifmap": [64], "sram_kB.ofmap": [16, 256]}  # fmt: skip



def folder_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def before(arch: str, hw_name: str, counts: str, out: Path) -> tuple[pd.DataFrame, float]:
    """The per-point loop of the sweep before issue 18; (summary, seconds)."""
    base, note = load_hw(hw_name)
    start = time.perf_counter()
    rows = []
    for setting, hw in design_points(base, CORNERS):
        table, meta = run_profile(arch, hw, note, counts=counts, progress=False)
        meta["sweep"] = {"base": base.name, "setting": setting}
        csv_path, _ = write_table(table, meta, out, table_stem(arch, hw, "channel", counts))
        rows.append(point_summary(setting, hw, table, csv_path.name))
    return pd.DataFrame(rows), time.perf_counter() - start


def after(arch: str, hw_name: str, counts: str, grid: dict, out: Path, *, summary_only: bool,
          jobs: int) -> tuple[pd.DataFrame, float]:  # fmt: skip
    base, note = load_hw(hw_name)
    start = time.perf_counter()
    summary, _ = run_sweep(arch, base, note, grid, out, counts=counts, summary_only=summary_only,
                           jobs=jobs, progress=False)  # fmt: skip
    return summary, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet74")
    parser.add_argument("--hw", default="edge_npu")
    parser.add_argument("--counts", choices=["scalesim", "physical", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=2, help="processes of the parallel run")
    args = parser.parse_args()
    # Torch and the network walk once, outside every timing; imported here, not at the top,
    # because worker processes re-import this script and need no torch.
    from ddi_energy.models.zoo import walk_arch

    walk_arch(args.arch)
    models = ["scalesim", "physical"] if args.counts == "both" else [args.counts]
    n_grid = len(design_points(load_hw(args.hw)[0], GRID))
    n_corner = len(design_points(load_hw(args.hw)[0], CORNERS))
    print(f"{args.arch} on {args.hw}: {n_corner}-point corner grid, {n_grid}-point grid; "
          f"{os.cpu_count()} CPUs; {load()}")
    for counts in models:
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            dirs = {k: Path(tmp) / k for k in ("before", "tables", "summary", "grid1", "gridN")}
            for d in dirs.values():
                d.mkdir()
            old, t_old = before(args.arch, args.hw, counts, dirs["before"])
            tables, t_tables = after(args.arch, args.hw, counts, CORNERS, dirs["tables"],
                                     summary_only=False, jobs=1)  # fmt: skip
            summary, t_summary = after(args.arch, args.hw, counts, CORNERS, dirs["summary"],
                                       summary_only=True, jobs=1)  # fmt: skip
            same = summary.drop(columns=["table", "pareto"]).equals(old.drop(columns="table"))
            same_tables = tables.drop(columns="pareto").equals(old)
            print(f"\n[{counts} counts] {load()}")
            rate_old = n_corner / t_old
            print(f"  (a) before, tables:        {n_corner} points in {t_old:6.1f} s = "
                  f"{rate_old:7.2f} points/s, {folder_bytes(dirs['before']) / n_corner / 1e6:.2f}"
                  " MB/point")  # fmt: skip
            for label, seconds, folder in (("(b) after, tables:        ", t_tables, "tables"),
                                           ("(b) after, summary only:  ", t_summary, "summary")):
                rate = n_corner / seconds
                print(f"  {label}{n_corner} points in {seconds:6.1f} s = {rate:7.2f} points/s "
                      f"({rate / rate_old:5.1f}x), "
                      f"{folder_bytes(dirs[folder]) / n_corner / 1e6:.3f} MB/point")  # fmt: skip
            print(f"      summary-only numbers equal (a)'s: {same}; tables' summary equal (a)'s: "
                  f"{same_tables}")  # fmt: skip
            for jobs, folder in ((1, "grid1"), (args.jobs, "gridN")):
                grid, seconds = after(args.arch, args.hw, counts, GRID, dirs[folder],
                                      summary_only=True, jobs=jobs)  # fmt: skip
                rate = n_grid / seconds
                print(f"  (c) grid, summary only, --jobs {jobs}: {n_grid} points in "
                      f"{seconds:6.1f} s = {rate:7.2f} points/s ({rate / rate_old:5.1f}x); "
                      f"{int(grid['pareto'].sum())} Pareto-optimal; {load()}")  # fmt: skip
            one = pd.read_csv(dirs["grid1"] / next(dirs["grid1"].glob("*.csv")).name)
            many = pd.read_csv(dirs["gridN"] / next(dirs["gridN"].glob("*.csv")).name)
            print(f"      --jobs 1 and --jobs {args.jobs} summaries identical: {one.equals(many)}")
    peak = max(resource.getrusage(r).ru_maxrss for r in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))  # fmt: skip
    print(f"\npeak RSS of one process: {peak / 1024:.0f} MB; {load()}")


if __name__ == "__main__":
    main()
