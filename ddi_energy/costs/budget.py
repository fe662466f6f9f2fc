"""Hard per-input budgets: RADI halts each input at an exit when the rest might not fit.

Halting policy (worst-case look-ahead): after computing exit j, an input continues only if its
cost so far plus the worst case of the next segment (every unit and gate on, each at its
costliest channel count, plus the next exit or the final classifier) fits the budget. The test
is made before the work, so nothing is computed and thrown away, and by induction no input
exceeds a *feasible* budget: one at least the worst-case cost up to and including the first
exit (the one segment every input runs before it can halt). Lower budgets are refused. The
price is caution: an input whose gates would have skipped enough of the next segment still
halts; `ddi-energy eval` measures it against an oracle that knows each input's real cost.
"""

from __future__ import annotations

import pandas as pd
from torch import Tensor, nn

from ddi_energy.costs.cost_model import CostModel, cost_model, mode_metric
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import Decisions


def min_budget(costs: CostModel, metric: str) -> float:
    """The smallest feasible budget: the worst-case cost up to and including the first exit
    (the whole network if there are no exits)."""
    col = costs.index(metric)
    return float(costs.stem[col] + costs.segment_worst()[0, col])


class Budget:
    """A hard per-input budget of `limit` (in `metric`), held by worst-case look-ahead."""

    def __init__(self, costs: CostModel, limit: float, metric: str) -> None:
        self.costs, self.limit, self.col = costs, float(limit), costs.index(metric)
        self.worst = costs.segment_worst()[:, self.col]
        minimum = min_budget(costs, metric)
        if not self.limit >= minimum:
            raise DDIError(f"budget {self.limit:.6g} {metric} is infeasible: an input can cost "
                           f"{minimum:.6g} up to its first exit (allowed: >= {minimum:.6g})")

    def halt(self, d: Decisions, alive: Tensor, next_exit: int) -> Tensor:
        spent = self.costs.per_input(d)[0][alive, self.col]
        return spent + self.worst[next_exit] > self.limit


def set_budget(model: nn.Module, limit: float | None, mode: str = "flops",
               table: pd.DataFrame | None = None, costs: CostModel | None = None) -> None:
    """Make `model`'s eval forward run its exits and halt every input at them under `limit`
    (None: no budget, exits neither run nor charged; infinity: every exit runs, none halts).
    `costs`: the model's `CostModel` for `table` if already built (a sweep of budgets prices
    the network once). Raises DDIError for an infeasible limit (below `min_budget`)."""
    if limit is None:
        model.budget = None
        return
    if not getattr(model, "exits", None):
        raise DDIError("a budget needs exits: build the model with get_model(..., exits=True)")
    model.budget = Budget(costs or cost_model(model, table), limit, mode_metric(mode))
