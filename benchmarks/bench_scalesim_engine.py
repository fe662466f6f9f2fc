"""Time the SCALE-Sim engine on a network: layer and channel granularity, with and without
shape de-duplication, all in one process on an empty cache, and print the ratios.

    python benchmarks/bench_scalesim_engine.py                        # resnet74 x eyeriss, all
    python benchmarks/bench_scalesim_engine.py --sample 200 --jobs 2  # no-dedup on 200 rows

"Without de-duplication" simulates every table row, as a plain SCALE-Sim run of the emitted
topology would. With `--sample N` that case runs N random rows and extrapolates (said so).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from ddi_energy.engines.scalesim_engine import ScaleSimEngine, simulate
from ddi_energy.hardware.config import load_hw
from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.rows import row_specs


def timed_dedup(shapes: list, hw, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ScaleSimEngine(Path(cache)).counts(shapes, hw, jobs=jobs, progress=True)
        return time.perf_counter() - start


def timed_every_row(shapes: list, hw, sample: int, seed: int = 0) -> tuple[float, int]:
    """Seconds to simulate every row (no cache, no de-dup), measured or extrapolated."""
    run = shapes if not sample or sample >= len(shapes) else random.Random(seed).sample(
        shapes, sample
    )
    start = time.perf_counter()
    for shape in run:
        simulate(shape, hw)
    return (time.perf_counter() - start) * len(shapes) / len(run), len(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet74")
    parser.add_argument("--hw", default="eyeriss.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the de-dup runs")
    parser.add_argument("--sample", type=int, default=0,
                        help="rows to run without de-dup (0: all); the rest is extrapolated")
    args = parser.parse_args()
    hw, _ = load_hw(args.hw)
    layers = walk_arch(args.arch)
    print(f"{args.arch} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}), "
          f"SCALE-Sim engine, jobs={args.jobs} for de-dup runs, 1 process without")
    print(f"{'granularity':<12} {'rows':>6} {'unique':>6} {'dedup s':>9} "
          f"{'every-row s':>12} {'speed-up':>9}")
    for granularity in ("layer", "channel"):
        shapes = [s.shape for s in row_specs(layers, granularity)]
        unique = list(dict.fromkeys(shapes))
        dedup = timed_dedup(unique, hw, args.jobs)
        every, ran = timed_every_row(shapes, hw, args.sample)
        note = "" if ran == len(shapes) else f"  (every-row extrapolated from {ran} rows)"
        print(f"{granularity:<12} {len(shapes):>6} {len(unique):>6} {dedup:>9.1f} "
              f"{every:>12.1f} {every / dedup:>8.1f}x{note}")


if __name__ == "__main__":
    main()
