"""The differentiable resource term E(W, G) of the DDI loss `CE + α·E` (Eq. 5)."""

from __future__ import annotations

import pandas as pd
from torch import Tensor, nn

from ddi_energy.costs.cost_model import cost_model, mode_metric
from ddi_energy.errors import DDIError


class ResourceLoss(nn.Module):
    """E(W, G) of Eq. 5: the batch mean of the expected cost under the gates' probabilities.

    `mode` is flops, energy (pJ, needs a table) or latency (cycles, needs a table). With
    `normalize` (default) the cost is divided by the full gated network's cost, so it reads as
    a fraction and α keeps its meaning across modes and networks.
    """

    def __init__(self, model: nn.Module, table: pd.DataFrame | None = None, mode: str = "flops",
                 normalize: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.metric = mode_metric(mode)
        self.costs = cost_model(model, table)
        self.col = self.costs.index(self.metric)
        self.scale = float(self.costs.full()[self.col]) if normalize else 1.0

    def forward(self, out) -> Tensor:
        if out.probs is None:
            raise DDIError("ResourceLoss needs a training-mode output (model.train())")
        return self.costs.expected(out.probs, self.metric).mean() / self.scale
