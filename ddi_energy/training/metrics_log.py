"""`metrics.csv` of a run: means over every `log_every` steps, appended as they complete, and
cut back to a checkpoint's step when a run resumes."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pandas as pd

from ddi_energy.files import atomic_write


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint a run resumes from."""
    if path.exists():
        rows = pd.read_csv(path)
        atomic_write(path, rows[rows["step"] <= step].to_csv(index=False))


class MetricsLog:
    """Means over every `every` steps, appended to a CSV as they complete."""

    COLUMNS = ("step", "stage", "loss", "ce", "resource", "acc", "skip", "sign", "lr", "time")

    def __init__(self, path: Path, every: int, enabled: bool) -> None:
        self.path, self.every, self.enabled = path, every, enabled
        self.rows: list[dict[str, float]] = []
        self.start = time.time()

    def add(self, step: int, stage: str, **values: float) -> None:
        if not self.enabled:
            return
        self.rows.append(values)
        if (step + 1) % self.every == 0:
            self.flush(step, stage)

    def flush(self, step: int, stage: str) -> None:
        if not self.rows:
            return
        mean = {k: sum(r[k] for r in self.rows) / len(self.rows) for k in self.rows[0]}
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({"step": step + 1, "stage": stage, **mean,
                             "time": round(time.time() - self.start, 2)})  # fmt: skip
        self.rows = []
