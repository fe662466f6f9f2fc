"""The study's tables: one row per run, Table I as mean and spread over seeds, and curves
compared at matched savings (interpolated per seed, then averaged).

Runs at different targets land at different savings (a FLOPs-trained run at target 0.5 saves
less energy than an energy-trained one), so comparing rows compares unequal things. The matched
tables read every series (loss, count model, channel group) at the same x (e.g. energy saved):
each seed's curve over its targets is interpolated linearly there, never extrapolated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

SERIES = ["loss", "counts", "channel_group"]  # one curve of the figure
KEYS = ["loss", "target_skip", "counts", "channel_group"]  # one row of Table I
SPREAD = ["accuracy", "flops_savings", "energy_savings", "cycles_savings",
          "energy_per_flops_savings"]  # fmt: skip
MEANS = ["skip_ratio", "unit_skip_ratio", "channel_skip_ratio", "energy_pj_per_input",
         "flops_per_input"]  # fmt: skip


def run_rows(reports: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluated run: what it was trained as, its accuracy and savings."""
    rows = []
    for r in reports:
        flops = r["flops_savings"]
        rows.append({
            "run": r["run"], "seed": r.get("seed", 0), "loss": r["loss"],
            "target_skip": r["target_skip"], "counts": r.get("counts", "scalesim"),
            "channel_group": r.get("channel_group", 1),
            "accuracy": r["accuracy"], "flops_savings": flops,
            "energy_savings": r["energy_savings"], "cycles_savings": r["cycles_savings"],
            "energy_per_flops_savings": r["energy_savings"] / flops if flops > 0 else np.nan,
            "skip_ratio": r["skip_ratio"], "skip_ratio_metric": r["skip_ratio_metric"],
            "unit_skip_ratio": r["unit_skip_ratio"], "channel_skip_ratio": r["channel_skip_ratio"],
            "energy_pj_per_input": r["energy_pj_per_input"],
            "flops_per_input": r["flops_per_input"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def table_one(runs: pd.DataFrame) -> pd.DataFrame:
    """Table I: per (loss, target, counts, group) the number of seeds, mean and sample standard
    deviation (NaN for one seed) of accuracy and every saving, and mean skip ratios."""
    groups = runs.groupby(KEYS, sort=False)
    out = groups.size().rename("seeds").to_frame()
    for column in SPREAD:
        out[f"{column}_mean"] = groups[column].mean()
        out[f"{column}_std"] = groups[column].std(ddof=1)
    for column in MEANS:
        out[f"{column}_mean"] = groups[column].mean()
    return out.reset_index()


def matched(runs: pd.DataFrame, x: str, ys: Sequence[str], points: int = 5) -> pd.DataFrame:
    """Every series' `ys` at `points` common values of `x`, evenly spaced over the range all
    series' mean curves cover. Per value and series: mean and standard deviation over the seeds
    whose curve reaches it (`seeds`); no row where the series' curves do not overlap."""
    runs = runs[runs["loss"] != "none"]
    means = runs.groupby([*SERIES, "target_skip"])[x].mean().groupby(SERIES)
    lo, hi = float(means.min().max()), float(means.max().min())
    if not lo <= hi:
        return pd.DataFrame(columns=[x, *SERIES, "seeds", *(f"{y}_{s}" for y in ys
                                                            for s in ("mean", "std"))])
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    rows = []
    for key, series in runs.groupby(SERIES, sort=False):
        curves = [seed.sort_values(x) for _, seed in series.groupby("seed")]
        for value in grid:
            row: dict[str, Any] = {x: value, **dict(zip(SERIES, key, strict=True))}
            inside = [c for c in curves if c[x].min() <= value <= c[x].max()]
            row["seeds"] = len(inside)
            for y in ys:
                at = [float(np.interp(value, c[x], c[y])) for c in inside]
                row[f"{y}_mean"] = float(np.mean(at)) if at else np.nan
                row[f"{y}_std"] = float(np.std(at, ddof=1)) if len(at) > 1 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)
