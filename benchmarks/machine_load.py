"""The machine's load, printed beside every absolute time: the benchmarks share 2 cores."""

from __future__ import annotations

import os


def load() -> str:
    """`load average 1.23 1.10 0.98` (1, 5 and 15 minutes)."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
