"""Cross-check the analytic engine against real SCALE-Sim on a user's own network and config."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ddi_energy.engines.registry import get_engine
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.tables.rows import RowSpec
from ddi_energy.workload.shapes import COUNT_FIELDS, ConvShape


@dataclass
class Validation:
    """Per-column mismatch counts over the compared shapes, and the mismatching rows."""

    shapes: int
    rows: int
    per_column: pd.DataFrame  # column, mismatches, max_abs_diff
    mismatches: pd.DataFrame  # layer, shape fields, column, scalesim, analytic

    @property
    def ok(self) -> bool:
        return self.mismatches.empty


def validate(
    specs: Sequence[RowSpec],
    hw: HardwareConfig,
    *,
    sample: int | None = None,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> Validation:
    """Run both engines on (a seeded sample of) the unique shapes of `specs` and compare."""
    names: dict[ConvShape, str] = {}
    for spec in specs:
        names.setdefault(spec.shape, spec.name)
    shapes = list(names)
    if sample is not None and sample < len(shapes):
        shapes = random.Random(seed).sample(shapes, sample)
    chosen = set(shapes)
    rows = sum(1 for spec in specs if spec.shape in chosen)
    reference = get_engine("scalesim", cache_dir=cache_dir).counts(
        shapes, hw, jobs=jobs, progress=progress, names=names
    )
    fast = get_engine("analytic").counts(shapes, hw, progress=False, names=names)
    bad, stats = [], {f: [0, 0] for f in COUNT_FIELDS}
    for shape in shapes:
        for field in COUNT_FIELDS:
            ref, got = getattr(reference[shape], field), getattr(fast[shape], field)
            if ref != got:
                stats[field][0] += 1
                stats[field][1] = max(stats[field][1], abs(ref - got))
                bad.append({"row": names[shape], "column": field, "scalesim": ref,
                            "analytic": got})
    per_column = pd.DataFrame(
        [{"column": f, "mismatches": n, "max_abs_diff": d} for f, (n, d) in stats.items()]
    )
    return Validation(len(shapes), rows, per_column, pd.DataFrame(bad))
