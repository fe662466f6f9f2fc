"""Cross-check a count model against real SCALE-Sim on a user's own network and config.

`scalesim` counts (the analytic engine) must equal SCALE-Sim in every reported column. `physical`
counts keep SCALE-Sim's cycles and filter traffic exactly and must never exceed any of its other
reported counts (they only remove its artefacts; their partial-sum reads are extra columns
SCALE-Sim does not report, so they are not compared).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ddi_energy.engines.registry import count_engine, get_engine
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.tables.rows import RowSpec, shape_names
from ddi_energy.workload.shapes import REPORT_FIELDS, ConvShape

# Columns the physical model takes from SCALE-Sim unchanged (engines/physical.py, item 4).
PHYSICAL_KEPT = ("cycles", "sram_filter_reads", "dram_filter_reads")


@dataclass
class Validation:
    """Per-column violation counts over the compared shapes, and the violating rows."""

    counts: str
    shapes: int
    rows: int
    per_column: pd.DataFrame  # column, check (== or <=), violations, max_abs_diff
    mismatches: pd.DataFrame  # row, column, scalesim, <counts>

    @property
    def ok(self) -> bool:
        return self.mismatches.empty


def _plain(shape: ConvShape) -> ConvShape:
    """The SCALE-Sim workload of a (possibly padded) shape."""
    return ConvShape(**{f: getattr(shape, f) for f in ConvShape.__dataclass_fields__})


def checks(counts: str) -> dict[str, str]:
    """Per reported column, how the count model must relate to SCALE-Sim."""
    if counts == "scalesim":
        return dict.fromkeys(REPORT_FIELDS, "==")
    return {f: "==" if f in PHYSICAL_KEPT else "<=" for f in REPORT_FIELDS}


def validate(
    specs: Sequence[RowSpec],
    hw: HardwareConfig,
    *,
    counts: str = "scalesim",
    sample: int | None = None,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> Validation:
    """Run SCALE-Sim and the count model on (a seeded sample of) the unique SCALE-Sim layers of
    `specs` (every group and dilation phase of a grouped or dilated row) and check every
    reported column (`checks`)."""
    ours = count_engine(counts)
    names = shape_names(specs, ours.model)
    shapes = list(names)
    if sample is not None and sample < len(shapes):
        shapes = random.Random(seed).sample(shapes, sample)
    chosen = set(shapes)
    rows = sum(1 for spec in specs if any(s in chosen for s, _ in spec.parts_for(ours.model)))
    plain = {shape: _plain(shape) for shape in shapes}
    reference = get_engine("scalesim", cache_dir=cache_dir).counts(
        list(dict.fromkeys(plain.values())), hw, jobs=jobs, progress=progress,
        names={plain[s]: names[s] for s in shapes},
    )
    got = ours.counts(shapes, hw, progress=False, names=names)
    relation = checks(counts)
    bad, stats = [], {f: [0, 0] for f in relation}
    for shape in shapes:
        for field, check in relation.items():
            ref, value = getattr(reference[plain[shape]], field), getattr(got[shape], field)
            if value != ref if check == "==" else value > ref:
                stats[field][0] += 1
                stats[field][1] = max(stats[field][1], abs(ref - value))
                bad.append({"row": names[shape], "column": field, "scalesim": ref,
                            ours.name: value})  # fmt: skip
    per_column = pd.DataFrame(
        [{"column": f, "check": f"{ours.name} {relation[f]} scalesim", "violations": n,
          "max_abs_diff": d} for f, (n, d) in stats.items()]  # fmt: skip
    )
    return Validation(counts, len(shapes), rows, per_column, pd.DataFrame(bad))
