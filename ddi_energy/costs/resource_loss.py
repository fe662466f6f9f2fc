"""The resource term E(W, G) of the DDI loss `CE + α·E` (Eq. 5)."""

from __future__ import annotations

import pandas as pd
from torch import Tensor, nn

from ddi_energy.costs.cost_model import cost_model, mode_metric
from ddi_energy.errors import DDIError


class ResourceLoss(nn.Module):
    """E(W, G) of Eq. 5 for one training step, as a fraction of the plain backbone's cost.

    Value: the exact table cost of the hard decisions the step took (what runs: gates, exits
    and the units and channels the gates kept), batch mean, so the loss, the skip ratio and
    `sample_costs` agree. Gradient: that of the expected cost when every gate decides at random
    with its probability (`CostModel.expected`; the channel count's cost is the staircase's
    Poisson-binomial expectation, which every channel's gradient follows exactly), attached
    straight-through: `hard + (expected - expected.detach())`.

    Both are divided by the plain backbone's cost in the loss's own metric (`scale`, the skip
    ratio's denominator), so α weighs FLOPs, energy and latency alike on every hardware config.
    `mode` is flops, energy (pJ, needs a table) or latency (cycles, needs a table).
    """

    def __init__(self, model: nn.Module, table: pd.DataFrame | None = None,
                 mode: str = "flops") -> None:  # fmt: skip
        super().__init__()
        self.metric = mode_metric(mode)
        self.costs = cost_model(model, table)
        self.col = self.costs.index(self.metric)
        self.scale = float(self.costs.backbone_full()[self.col])

    def forward(self, out) -> Tensor:
        if out.probs is None:
            raise DDIError("ResourceLoss needs a training-mode output (model.train())")
        hard = self.costs.per_input(out.decisions)[0][:, self.col]
        soft = self.costs.expected(out.probs, self.metric)
        return (hard + (soft - soft.detach())).mean() / self.scale
