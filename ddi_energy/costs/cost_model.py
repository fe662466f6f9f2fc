"""Price what a dynamic network runs: per-input costs from hard decisions (and at every output,
for budgets), expected costs under random decisions with the gates' probabilities (the resource
loss's surrogate), the full and plain networks' costs, and each segment's worst case.

Costs come from the layers a network declares (`CostStructure`), priced by `Pricer`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ddi_energy.costs.poisson_binomial import grouped_expected_cost
from ddi_energy.costs.pricing import Pricer
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import CostStructure, Decisions, GateProbs, group_sizes
from ddi_energy.models.zoo import walk_arch
from ddi_energy.workload.shapes import Layer

MODES = {"flops": "flops", "energy": "energy_pj", "latency": "cycles"}


class CostModel(nn.Module):
    """Every cost a dynamic network can incur, as tensors indexed by unit and channel count.

    `metrics` names the columns of every cost vector: ("flops",) without a table, else
    `TABLE_METRICS`. With channel groups a unit runs only counts that are sums of its group
    sizes (`reachable`); the curve holds every count, as the table does.
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
        reachable = torch.zeros((len(units), kmax + 1), dtype=torch.bool)
        for i, u in enumerate(units):
            sizes = torch.tensor(group_sizes(u.width, u.group))
            sums = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
            reachable[i, sums] = True
            if sizes[-1] < u.group:  # the smaller last group with any number of full ones
                reachable[i, sums[:-1] + sizes[-1]] = True
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
        self.register_buffer("reachable", reachable)
        self.register_buffer("widths", torch.tensor(widths))
        # Units of equal width and channel group share one vectorized pass of `expected_cost`.
        shapes = [(u.width, u.group) for u in units]
        self.width_groups = [(k, g, [u for u, s in enumerate(shapes) if s == (k, g)])
                             for k, g in sorted(set(shapes))]  # fmt: skip
        grouped = [u for _, _, units in self.width_groups for u in units]
        self.group_order = [grouped.index(u) for u in range(len(widths))]
        exits = [pricer.overhead(e) for e in structure.exits]
        self.register_buffer("exits", torch.stack(exits) if exits else torch.zeros((0, m),
                                                                                   dtype=torch.float64))

    def index(self, metric: str) -> int:
        if metric not in self.metrics:
            raise DDIError(f"cost metric {metric!r} needs a cost table (without one: flops only)")
        return self.metrics.index(metric)

    def _unit_parts(self, d: Decisions) -> tuple[Tensor, Tensor]:
        """(backbone, gates) costs (B, U, M) of every unit for every input."""
        # Weighted sums written elementwise, not as matmuls: FlopCounterMode (around a forward
        # that checks a budget) must not count this bookkeeping as network FLOPs.
        def on(mask: Tensor) -> Tensor:
            return mask.to(torch.float64)[..., None]

        n = d.active_channels()
        units = torch.arange(n.shape[1], device=n.device)
        backbone = on(d.reached) * self.always + on(d.executed) * self.curve[units[None, :], n]
        gates = on(d.reached) * self.layer_gate + on(d.channel_gate_ran) * self.channel_gate
        return backbone, gates

    def _exit_cum(self) -> Tensor:
        """(E + 1, M): the cost of running the first j exit branches."""
        return torch.cat([self.exits.new_zeros((1, self.exits.shape[1])), self.exits.cumsum(0)])

    def per_input(self, d: Decisions) -> tuple[Tensor, Tensor]:
        """(total, overhead) costs (B, M) of what each input ran; overhead = gates + exits."""
        backbone, gates = self._unit_parts(d)
        exits = self._exit_cum()[d.exits_run]
        head = (d.exit_index == self.exits.shape[0]).to(torch.float64)[:, None] * self.head
        overhead = gates.sum(1) + exits
        return self.stem + backbone.sum(1) + head + overhead, overhead

    def frame(self, d: Decisions) -> pd.DataFrame:
        """`sample_costs` of decisions `d`, priced by this model (no re-pricing)."""
        total, overhead = self.per_input(d)
        frame = pd.DataFrame(total.cpu().numpy(), columns=list(self.metrics))
        for metric in ("flops", "energy_pj", "cycles"):
            if metric in self.metrics:
                frame[f"overhead_{metric}"] = overhead[:, self.index(metric)].cpu().numpy()
        frame["exit"] = d.exit_index.cpu().numpy()
        frame["units_executed"] = d.executed.sum(1).cpu().numpy()
        frame["channel_skip_ratio"] = d.skip_ratio().cpu().numpy()
        return frame

    def output_costs(self, d: Decisions) -> Tensor:
        """(B, E + 1, M): what each input would have cost had it stopped at output j, every
        exit before it computed (E = the final classifier, after every exit), for decisions
        that ran every unit the input reached (e.g. under an infinite budget)."""
        backbone, gates = self._unit_parts(d)
        cum = (backbone + gates).cumsum(1)
        exit_cum = self._exit_cum()
        at_exits = cum[:, list(self.structure.exit_after)] + exit_cum[1:]
        final = cum[:, -1] + exit_cum[-1] + self.head
        return self.stem + torch.cat([at_exits, final[:, None]], 1)

    def expected(self, probs: GateProbs, metric: str) -> Tensor:
        """(B,) expected cost when every gate decides at random with its probability,
        independently: the smooth surrogate whose gradient trains the gates.

        A unit costs its layer gate and shortcut, plus with probability p_layer (coarse to
        fine) its channel gate and E[c(N)], the cost curve at the number of its active channels,
        a sum of independent channel groups (`grouped_expected_cost`; `probs.channels` holds
        one probability per group). Every exit is counted (training runs them all). At
        saturated gates this is the hard decisions' cost.
        """
        col = self.index(metric)
        body = torch.cat([grouped_expected_cost(
            torch.stack([probs.channels[u] for u in units], 1),
            self.curve[units, :width + 1, col], group)
            for width, group, units in self.width_groups], 1)  # fmt: skip
        body = body[:, self.group_order].to(torch.float64)
        p = probs.layer.to(torch.float64)
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
        # The costliest channel count it can run, not necessarily the full one: a curve may
        # have cliffs.
        worst = self.curve.masked_fill(~self.reachable[..., None], -torch.inf).amax(1)
        per_unit = self.always + self.layer_gate + self.channel_gate + worst
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
    return cost_model(model, table).frame(decisions)


def mode_metric(mode: str) -> str:
    if mode not in MODES:
        raise DDIError(f"unknown resource mode {mode!r} (allowed: {', '.join(MODES)})")
    return MODES[mode]
