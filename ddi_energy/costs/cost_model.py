"""Price what a dynamic network runs: per-input costs from hard decisions, expected costs from
soft gate probabilities, the full and plain networks' costs, and each segment's worst case (for
budgets).

Costs come from the layers a network declares (`CostStructure`), priced by `Pricer`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ddi_energy.costs.pricing import Pricer
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import CostStructure, Decisions, GateProbs
from ddi_energy.models.zoo import walk_arch
from ddi_energy.workload.shapes import Layer

MODES = {"flops": "flops", "energy": "energy_pj", "latency": "cycles"}


class CostModel(nn.Module):
    """Every cost a dynamic network can incur, as tensors indexed by unit and channel count.

    `metrics` names the columns of every cost vector: ("flops",) without a table, else
    `TABLE_METRICS`.
    """

    def __init__(self, structure: CostStructure, table: pd.DataFrame | None = None) -> None:
        super().__init__()
        pricer = Pricer(structure, table)
        self.structure = structure
        self.metrics: tuple[str, ...] = pricer.metrics
        units = structure.units
        widths = [u.width for u in units]
        kmax = max(widths)
        m = len(self.metrics)
        curve = torch.zeros((len(units), kmax + 1, m), dtype=torch.float64)
        for i, u in enumerate(units):
            for n in range(1, u.width + 1):
                curve[i, n] = pricer.backbone(u.out_layer, out_channels=n) + pricer.backbone(
                    u.in_layer, in_channels=n)
                for layer in u.mid:
                    curve[i, n] += pricer.backbone(layer, in_channels=n, out_channels=n)
            curve[i, u.width + 1:] = curve[i, u.width]
            # The full rows must also agree with the table's full-layer rows.
            pricer.backbone(u.out_layer), pricer.backbone(u.in_layer)

        def total(layers: Sequence[Layer]) -> Tensor:
            return sum((pricer.backbone(ly) for ly in layers), torch.zeros(m, dtype=torch.float64))

        self.register_buffer("stem", total(structure.stem))
        self.register_buffer("head", total(structure.head))
        self.register_buffer("always", torch.stack([total(u.always) for u in units]))
        self.register_buffer("layer_gate", torch.stack([pricer.overhead(u.layer_gate)
                                                        for u in units]))
        self.register_buffer("channel_gate", torch.stack([pricer.overhead(u.channel_gate)
                                                          for u in units]))
        self.register_buffer("curve", curve)
        self.register_buffer("widths", torch.tensor(widths))
        exits = [pricer.overhead(e) for e in structure.exits]
        self.register_buffer("exits", torch.stack(exits) if exits else torch.zeros((0, m),
                                                                                   dtype=torch.float64))

    def index(self, metric: str) -> int:
        if metric not in self.metrics:
            raise DDIError(f"cost metric {metric!r} needs a cost table (without one: flops only)")
        return self.metrics.index(metric)

    def per_input(self, d: Decisions) -> tuple[Tensor, Tensor]:
        """(total, overhead) costs (B, M) of what each input ran; overhead = gates + exits."""
        # Weighted sums written elementwise, not as matmuls: FlopCounterMode (around a forward
        # that checks a budget) must not count this bookkeeping as network FLOPs.
        def weigh(mask: Tensor, cost: Tensor) -> Tensor:
            return (mask.to(torch.float64)[..., None] * cost).sum(1)

        gates = weigh(d.reached, self.layer_gate) + weigh(d.channel_gate_ran, self.channel_gate)
        n = d.active_channels()
        units = torch.arange(n.shape[1], device=n.device)
        body = (self.curve[units[None, :], n] * d.executed[..., None]).sum(1)
        exit_cum = torch.cat([self.exits.new_zeros((1, self.exits.shape[1])),
                              self.exits.cumsum(0)])  # fmt: skip
        exits = exit_cum[d.exits_run]
        head = (d.exit_index == self.exits.shape[0]).to(torch.float64)[:, None] * self.head
        total = self.stem + weigh(d.reached, self.always) + body + head + gates + exits
        return total, gates + exits

    def expected(self, probs: GateProbs, metric: str) -> Tensor:
        """(B,) expected cost under soft gate probabilities, differentiable in them.

        A unit costs its gates and shortcut, plus with probability p_layer its channel gate
        (coarse to fine) and its convs at the expected number of active channels, linearly
        interpolated between the table's channel counts. Exits are all counted (training runs
        them all).
        """
        col = self.index(metric)
        p_layer = probs.layer
        n = torch.stack([c.sum(1) for c in probs.channels], 1).to(torch.float64)  # (B, U)
        k = self.widths.to(n.device)
        lo = torch.minimum(n.detach().floor().long(), k - 1).clamp(min=0)
        curve = self.curve[..., col]
        units = torch.arange(n.shape[1], device=n.device)[None, :]
        low, high = curve[units, lo], curve[units, lo + 1]
        body = low + (n - lo) * (high - low)
        p = p_layer.to(torch.float64)
        unit_cost = self.always[:, col] + self.layer_gate[:, col] + p * (
            self.channel_gate[:, col] + body)
        fixed = self.stem[col] + self.head[col] + self.exits[:, col].sum()
        return fixed + unit_cost.sum(1)

    def full(self) -> Tensor:
        """(M,) cost of one input with every unit and channel on, gates and exits included."""
        units = torch.arange(len(self.widths))
        return (self.stem + self.head + self.always.sum(0) + self.layer_gate.sum(0)
                + self.channel_gate.sum(0) + self.curve[units, self.widths].sum(0)
                + self.exits.sum(0))  # fmt: skip

    def backbone_full(self) -> Tensor:
        """(M,) cost of the plain backbone: no gates, no exits (the table's network total)."""
        units = torch.arange(len(self.widths))
        return self.stem + self.head + self.always.sum(0) + self.curve[units, self.widths].sum(0)

    def segment_worst(self) -> Tensor:
        """(E+1, M): worst-case cost from exit j-1 up to and including output j (E = final)."""
        structure = self.structure
        bounds = [-1, *structure.exit_after, len(structure.units) - 1]
        units = torch.arange(len(self.widths))
        per_unit = (self.always + self.layer_gate + self.channel_gate
                    + self.curve[units, self.widths])  # fmt: skip
        out = []
        for j in range(len(bounds) - 1):
            seg = per_unit[bounds[j] + 1: bounds[j + 1] + 1].sum(0)
            out.append(seg + (self.exits[j] if j < self.exits.shape[0] else self.head))
        return torch.stack(out)


def cost_model(model: nn.Module, table: pd.DataFrame | None = None) -> CostModel:
    """The `CostModel` of a dynamic network (one from `get_model(..., gating=...)`)."""
    if not hasattr(model, "cost_structure"):
        raise DDIError(f"{type(model).__name__} is not a dynamic network; build it with "
                       "get_model(name, gating=...)")  # fmt: skip
    structure = model.cost_structure(walk_arch(model.arch))
    return CostModel(structure, table).to(next(model.parameters()).device)


def sample_costs(model: nn.Module, decisions: Decisions,
                 table: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per input: `flops` (and with a table energy by level, `cycles`) of what it ran.

    `overhead_*` columns are the gates' and exits' share; `exit` is the output used (the number
    of exits = the final classifier); `units_executed` and `channel_skip_ratio` describe the
    decisions.
    """
    costs = cost_model(model, table)
    total, overhead = costs.per_input(decisions)
    frame = pd.DataFrame(total.cpu().numpy(), columns=list(costs.metrics))
    for metric in ("flops", "energy_pj", "cycles"):
        if metric in costs.metrics:
            frame[f"overhead_{metric}"] = overhead[:, costs.index(metric)].cpu().numpy()
    frame["exit"] = decisions.exit_index.cpu().numpy()
    frame["units_executed"] = decisions.executed.sum(1).cpu().numpy()
    frame["channel_skip_ratio"] = decisions.skip_ratio().cpu().numpy()
    return frame


def mode_metric(mode: str) -> str:
    if mode not in MODES:
        raise DDIError(f"unknown resource mode {mode!r} (allowed: {', '.join(MODES)})")
    return MODES[mode]
