"""Hard per-input budgets: RADI halts each input at an exit when the rest would not fit."""

from __future__ import annotations

import pandas as pd
from torch import Tensor, nn

from ddi_energy.costs.cost_model import CostModel, cost_model, mode_metric
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import Decisions


class Budget:
    """A hard per-input budget: at each exit, an input halts unless the worst case of the next
    segment (every unit and channel on, plus the next exit or the final classifier) still fits.

    The test is made before the segment runs, so no input ever exceeds the budget and no work
    is wasted; the first exit always runs.
    """

    def __init__(self, costs: CostModel, limit: float, metric: str) -> None:
        self.costs, self.limit, self.col = costs, float(limit), costs.index(metric)
        self.worst = costs.segment_worst()[:, self.col]

    def halt(self, d: Decisions, alive: Tensor, next_exit: int) -> Tensor:
        spent = self.costs.per_input(d)[0][alive, self.col]
        return spent + self.worst[next_exit] > self.limit


def set_budget(model: nn.Module, limit: float | None, mode: str = "flops",
               table: pd.DataFrame | None = None) -> None:  # fmt: skip
    """Make `model`'s eval forward halt every input at the exits under `limit` (None: off)."""
    if limit is None:
        model.budget = None
        return
    if not getattr(model, "exits", None):
        raise DDIError("a budget needs exits: build the model with get_model(..., exits=True)")
    model.budget = Budget(cost_model(model, table), limit, mode_metric(mode))
