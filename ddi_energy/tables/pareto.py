"""The Pareto front of design points that minimise two costs (a sweep's energy and cycles)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(first: Sequence[float], second: Sequence[float]) -> np.ndarray:
    """True where no other point is at least as low on both costs and lower on one.

    Points equal on both costs dominate neither each other, so all of them are on the front or
    none is. Sorted by the first cost, a point is on the front when it has the lowest second
    cost among the points of its first cost and every point of a lower first cost has a higher
    second cost: O(n log n).
    """
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two costs per point expected, got shapes {a.shape} and {b.shape}")
    order = np.lexsort((b, a))
    front = np.zeros(a.size, dtype=bool)
    best = np.inf  # lowest second cost among points of a lower first cost
    start = 0
    while start < order.size:
        stop = start
        while stop < order.size and a[order[stop]] == a[order[start]]:
            stop += 1
        lowest = b[order[start]]  # sorted by the second cost within equal first costs
        if lowest < best:
            group = order[start:stop]
            front[group[b[group] == lowest]] = True
            best = lowest
        start = stop
    return front
