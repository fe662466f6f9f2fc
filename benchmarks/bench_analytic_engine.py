"""Time the analytic engine against SCALE-Sim on one channel-granularity table, check that both
produce the identical table, time the `ddi-energy profile` CLI, report peak memory, and time
the analytic engine on ImageNet networks against a CIFAR one.

    python benchmarks/bench_analytic_engine.py                     # resnet74 x eyeriss, jobs=2
    python benchmarks/bench_analytic_engine.py --arch resnet38 --hw edge_npu.yaml --jobs 1
    python benchmarks/bench_analytic_engine.py --skip-scalesim     # (d) only, ~1 min

(a) The whole table (`row_specs` + `build_table`) is built once by each engine in this process:
SCALE-Sim on an empty temporary cache with shape de-duplication and `--jobs` processes, the
analytic engine in this process. The tables are compared value for value.
(b) `ddi-energy profile --arch A --hw H --out <tmp> --quiet` (analytic engine, the CLI default)
runs as a subprocess 3 times; the median wall time is checked against the 5 s target.
(c) Peak RSS: of this process right after the analytic table (before SCALE-Sim runs; includes
importing torch and walking the network), and of each CLI subprocess (its own rusage, wait4).
(d) ImageNet: the analytic channel tables of densenet201 and resnet50 (224x224), timed in this
process against `--arch`'s table as the CIFAR baseline: microseconds per unique layer shape and
their ratio; then `ddi-energy profile --arch densenet201 --hw H` as a subprocess, whose table
metadata `seconds` is checked against the 10 s target. The load average is printed with the
seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine_load import load

from ddi_energy.engines.analytic import AnalyticEngine
from ddi_energy.engines.scalesim_engine import ScaleSimEngine
from ddi_energy.hardware.config import load_hw
from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.build import build_table
from ddi_energy.tables.rows import row_specs

CLI_RUNS = 3
CLI_TARGET_S = 5.0
IMAGENET_TARGET_S = 10.0


def mb(maxrss_kb: int) -> float:
    """ru_maxrss is in kB on Linux."""
    return maxrss_kb / 1024


def timed_table(specs, hw, engine, jobs: int) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    table = build_table(specs, hw, engine, jobs=jobs, progress=False)
    return table, time.perf_counter() - start


def differing_values(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Cells that differ (NaN equal to NaN); every cell counts if the frames' layouts differ."""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return max(a.size, b.size)
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return int(((a != b) & ~(a.isna() & b.isna())).to_numpy().sum())


def identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    return True


def cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("ddi-energy")
    return [str(exe) if exe.exists() else shutil.which("ddi-energy") or "ddi-energy"]


def timed_cli(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one CLI run; fails loudly if the command fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read the pipes to EOF, then reap with wait4 for this child's own rusage.
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{out.decode()}{err.decode()}")
    return seconds, mb(usage.ru_maxrss)


def compare_with_scalesim(args, hw) -> tuple[list, float]:
    """(a)-(c); returns the baseline's specs and analytic seconds for (d)."""
    specs = row_specs(walk_arch(args.arch), "channel")
    unique = len({s.shape for s in specs})

    # Analytic first, so this process's peak RSS is not yet raised by SCALE-Sim.
    ours, t_analytic = timed_table(specs, hw, AnalyticEngine(), jobs=1)
    rss_self = mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    with tempfile.TemporaryDirectory() as cache:
        real, t_scalesim = timed_table(specs, hw, ScaleSimEngine(Path(cache)), jobs=args.jobs)
    same, ndiff = identical(real, ours), differing_values(real, ours)

    with tempfile.TemporaryDirectory() as out:
        cmd = [*cli_command(), "profile", "--arch", args.arch, "--hw", args.hw,
               "--out", out, "--quiet"]  # fmt: skip
        runs = [timed_cli(cmd) for _ in range(CLI_RUNS)]
    cli_s = statistics.median(s for s, _ in runs)
    cli_rss = max(r for _, r in runs)

    print(f"{args.arch} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}), channel granularity: "
          f"{len(specs)} rows, {unique} unique shapes, {real.size} values per table")
    print(f"{'engine':<32} {'seconds':>9}")
    print(f"{f'scalesim (empty cache, jobs={args.jobs})':<32} {t_scalesim:>9.2f}")
    print(f"{'analytic (1 process)':<32} {t_analytic:>9.2f}")
    print(f"speed-up: {t_scalesim / t_analytic:.0f}x")
    print(f"identical: {'yes' if same else 'no'} ({ndiff} differing values)")
    print(f"CLI `{' '.join(['ddi-energy', *cmd[1:-3], '--out', '<tmp>', '--quiet'])}`: "
          f"median {cli_s:.2f} s of {CLI_RUNS} runs "
          f"({', '.join(f'{s:.2f}' for s, _ in runs)}); "
          f"target {CLI_TARGET_S:.0f} s: {'met' if cli_s <= CLI_TARGET_S else 'MISSED'}")
    print(f"peak RSS: analytic run in this process {rss_self:.0f} MB (self, incl. torch + walk); "
          f"CLI subprocess {cli_rss:.0f} MB (max of {CLI_RUNS}, per-child rusage); {load()}")
    return specs, t_analytic


def imagenet(args, hw, baseline: tuple[list, float] | None) -> None:
    """(d): per-shape cost on ImageNet networks against the CIFAR baseline, then the CLI."""
    if baseline is None:
        specs = row_specs(walk_arch(args.arch), "channel")
        baseline = specs, timed_table(specs, hw, AnalyticEngine(), jobs=1)[1]
    networks = [(args.arch, *baseline)]
    for name in ("densenet201", "resnet50"):
        specs = row_specs(walk_arch(name), "channel")
        networks.append((name, specs, timed_table(specs, hw, AnalyticEngine(), jobs=1)[1]))
    print(f"\nanalytic channel tables on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}), "
          f"{load()}")
    print(f"{'network':<12} {'rows':>6} {'shapes':>7} {'seconds':>8} {'us/shape':>9} "
          f"{'vs ' + args.arch:>12}")
    base_us = None
    for name, specs, seconds in networks:
        unique = len({s.shape for s in specs})
        us = 1e6 * seconds / unique
        base_us = base_us or us
        print(f"{name:<12} {len(specs):>6} {unique:>7} {seconds:>8.2f} {us:>9.0f} "
              f"{us / base_us:>11.1f}x")
    with tempfile.TemporaryDirectory() as out:
        cmd = [*cli_command(), "profile", "--arch", "densenet201", "--hw", args.hw,
               "--out", out, "--quiet"]  # fmt: skip
        wall, rss = timed_cli(cmd)
        meta = json.loads(next(Path(out).glob("*.json")).read_text())
    ok = meta["seconds"] <= IMAGENET_TARGET_S
    print(f"CLI `ddi-energy profile --arch densenet201 --hw {args.hw}`: table seconds "
          f"{meta['seconds']:.2f} (wall {wall:.2f} s, peak RSS {rss:.0f} MB); target "
          f"{IMAGENET_TARGET_S:.0f} s: {'met' if ok else 'MISSED'}; {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet74")
    parser.add_argument("--hw", default="eyeriss.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the SCALE-Sim engine")
    parser.add_argument("--skip-scalesim", action="store_true", help="only (d)")
    args = parser.parse_args()
    hw, _ = load_hw(args.hw)
    baseline = None if args.skip_scalesim else compare_with_scalesim(args, hw)
    imagenet(args, hw, baseline)


if __name__ == "__main__":
    main()
