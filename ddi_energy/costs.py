"""Price what a dynamic network runs: per-input costs from hard decisions, expected costs from
soft gate probabilities, and budgets that halt inputs at exits.

Costs come from the layers a network declares (`CostStructure`): FLOPs (2 × MACs of conv and FC
layers, what `FlopCounterMode` counts) always; with a cost table also Eq. 6 energy by memory
level and cycles. Backbone layers are read from the table at their active channel counts (the
table must be for this arch, with exactly these shapes and every channel count). Gate and exit
layers are not in a backbone table: they are priced on the table's own hardware config with the
analytic engine (SCALE-Sim's exact counts), so overheads and backbone share one hardware model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ddi_energy.energy import ENERGY_COLUMNS
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import CostStructure, Decisions, GateProbs
from ddi_energy.workload import Layer

TABLE_METRICS = ("flops", "energy_pj", *ENERGY_COLUMNS, "cycles")
MODES = {"flops": "flops", "energy": "energy_pj", "latency": "cycles"}


class _Pricer:
    """Cost vectors of single layers at given channel counts: from FLOPs, a table or the engine."""

    def __init__(self, structure: CostStructure, table: pd.DataFrame | None) -> None:
        self.table = table
        self.metrics = TABLE_METRICS if table is not None else ("flops",)
        self.where = f"cost table {table.attrs.get('path', '(in memory)')}" if table is not None \
            else ""
        self._rows: dict[tuple[str, int, int], int] = {}
        self._overhead: dict[str, Tensor] = {}
        if table is not None:
            meta = table.attrs.get("meta") or {}
            if meta.get("arch") not in (None, structure.arch):
                raise DDIError(f"{self.where}: built for arch {meta['arch']!r}, but the model is "
                               f"{structure.arch!r}")  # fmt: skip
            keys = zip(table["layer"], table["in_channels"], table["out_channels"], strict=True)
            self._rows = {(str(n), int(i), int(o)): r for r, (n, i, o) in enumerate(keys)}
            self._values = torch.tensor(
                table.assign(flops=2 * table["macs"])[list(self.metrics)].to_numpy(float),
                dtype=torch.float64,
            )
            self._meta = meta

    def backbone(self, layer: Layer, in_channels: int | None = None,
                 out_channels: int | None = None) -> Tensor:  # fmt: skip
        """A backbone layer at the given active channel counts (full by default)."""
        shape = layer.shape(in_channels, out_channels)
        if self.table is None:
            return torch.tensor([2.0 * shape.macs], dtype=torch.float64)
        key = (layer.name, shape.channels, shape.filters)
        row = self._rows.get(key)
        if row is None:
            full = layer.in_channels, layer.out_channels
            hint = "" if (shape.channels, shape.filters) == full else (
                " (a layer-granularity table? profile with --granularity channel)")
            raise DDIError(f"{self.where}: no row for layer {layer.name!r} with in_channels="
                           f"{shape.channels}, out_channels={shape.filters}{hint}")
        self._check_shape(layer, row)
        return self._values[row]

    def _check_shape(self, layer: Layer, row: int) -> None:
        shape = layer.shape()
        record = self.table.iloc[row]
        expected = {"full_in_channels": layer.in_channels, "full_out_channels": layer.out_channels,
                    "ifmap_h": shape.ifmap_h, "ifmap_w": shape.ifmap_w,
                    "filter_h": shape.filter_h, "filter_w": shape.filter_w,
                    "stride": shape.stride}  # fmt: skip
        for column, value in expected.items():
            if int(record[column]) != value:
                raise DDIError(f"{self.where}: layer {layer.name!r} has {column}="
                               f"{int(record[column])} but the model's layer has {value}")

    def overhead(self, layers: Sequence[Layer]) -> Tensor:
        """Summed cost of gate/exit layers (priced on the table's hardware if there is one)."""
        total = torch.zeros(len(self.metrics), dtype=torch.float64)
        missing = [ly for ly in layers if ly.name not in self._overhead]
        if missing:
            self._price_overhead(missing)
        for ly in layers:
            total += self._overhead[ly.name]
        return total

    def _price_overhead(self, layers: Sequence[Layer]) -> None:
        if self.table is None:
            for ly in layers:
                self._overhead[ly.name] = torch.tensor([2.0 * ly.macs], dtype=torch.float64)
            return
        from ddi_energy.engines.analytic import AnalyticEngine
        from ddi_energy.hardware import from_dict
        from ddi_energy.profile import build_table, row_specs

        if "hw" not in self._meta:
            raise DDIError(f"{self.where}: no hardware config in its .json metadata; it is needed "
                           "to price the gate and exit layers")  # fmt: skip
        hw = from_dict(self._meta["hw"], f"{self.where} metadata")
        priced = build_table(row_specs(layers, "layer"), hw, AnalyticEngine(), progress=False)
        values = priced.assign(flops=2 * priced["macs"])[list(self.metrics)].to_numpy(float)
        for ly, v in zip(layers, values, strict=True):
            self._overhead[ly.name] = torch.tensor(v, dtype=torch.float64)


class CostModel(nn.Module):
    """Every cost a dynamic network can incur, as tensors indexed by unit and channel count.

    `metrics` names the columns of every cost vector: ("flops",) without a table, else
    `TABLE_METRICS`.
    """

    def __init__(self, structure: CostStructure, table: pd.DataFrame | None = None) -> None:
        super().__init__()
        pricer = _Pricer(structure, table)
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
    return CostModel(model.cost_structure(), table).to(next(model.parameters()).device)


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
    model.budget = Budget(cost_model(model, table), limit, _metric(mode))


def _metric(mode: str) -> str:
    if mode not in MODES:
        raise DDIError(f"unknown resource mode {mode!r} (allowed: {', '.join(MODES)})")
    return MODES[mode]


class ResourceLoss(nn.Module):
    """E(W, G) of Eq. 5: the batch mean of the expected cost under the gates' probabilities.

    `mode` is flops, energy (pJ, needs a table) or latency (cycles, needs a table). With
    `normalize` (default) the cost is divided by the full gated network's cost, so it reads as
    a fraction and α keeps its meaning across modes and networks.
    """

    def __init__(self, model: nn.Module, table: pd.DataFrame | None = None, mode: str = "flops",
                 normalize: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.metric = _metric(mode)
        self.costs = cost_model(model, table)
        self.col = self.costs.index(self.metric)
        self.scale = float(self.costs.full()[self.col]) if normalize else 1.0

    def forward(self, out) -> Tensor:
        if out.probs is None:
            raise DDIError("ResourceLoss needs a training-mode output (model.train())")
        return self.costs.expected(out.probs, self.metric).mean() / self.scale
