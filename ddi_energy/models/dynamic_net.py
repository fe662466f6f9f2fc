"""The forward passes every MGL2S network shares: gates per unit, coarse to fine, then exits.

A subclass provides `stem`, `head`, its units (`GatedUnit`s) and `always_layers`; it calls
`setup_gates` and `setup_exits` in its constructor. Training mode runs every unit on every input
and multiplies by straight-through gates (and runs every exit); `eval()` runs only what the
gates chose (see `GatedUnit.eval_step`) and computes exits only under a budget, which halts
inputs at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ddi_energy.models.decision_log import DecisionLog
from ddi_energy.models.dynamic import (
    CostStructure,
    DDIOutput,
    Decisions,
    GateProbs,
    UnitLayers,
    check_gating,
    expand_groups,
    group_sizes,
)
from ddi_energy.models.exits import ExitBranch
from ddi_energy.models.gates import RecurrentGate, straight_through
from ddi_energy.workload.shapes import Layer
from ddi_energy.workload.walker import walk_layers

GATE_INIT_BIAS = 2.0  # gates start at p ≈ sigmoid(2) ≈ 0.9: everything executes


class GatedUnit(nn.Module):
    """A skippable unit with `width` gated channels and, for CNN channel gating, `cgate`.

    `gated_convs` names its convs in order: the first writes the gated channels, the last reads
    them, any between both read and write them (one mask on both sides, as in a bottleneck).
    A channel gate has one output per group of `channel_group` channels (`groups` outputs).
    """

    cgate: nn.Module | None
    width: int
    channel_group: int = 1
    gated_convs: tuple[str, ...] = ("conv1", "conv2")

    @property
    def groups(self) -> int:
        """Number of channel-gate outputs: one per group of `channel_group` channels."""
        return len(group_sizes(self.width, self.channel_group))

    def to_channels(self, g: Tensor) -> Tensor:
        """Per-group gate values (B, groups) as per-channel ones (B, width)."""
        return expand_groups(g, self.channel_group, self.width)

    def enter(self, x: Tensor, state: dict[str, Any]) -> Tensor:
        """Ungated work done on reaching the unit (e.g. a transition); default none."""
        return x

    def train_step(self, x: Tensor, state: dict[str, Any], g_layer: Tensor,
                   g_chan: Tensor | None) -> Tensor:  # fmt: skip
        """Output for every input, the body scaled by the gates (B,) and (B, width)."""
        raise NotImplementedError

    def eval_step(self, x: Tensor, state: dict[str, Any], run: Tensor,
                  mask: Tensor | None) -> Tensor:  # fmt: skip
        """Output computing the body only for rows `run`, only their `mask`ed channels."""
        raise NotImplementedError


def _subset(value: Any, keep: Tensor) -> Any:
    if isinstance(value, Tensor):
        return value[keep]
    if isinstance(value, tuple):
        return tuple(_subset(v, keep) for v in value)
    return value


class DynamicNet(nn.Module):
    """Stem → gated units → head, with exit branches after `exit_after` units."""

    arch: str
    gating: str
    num_classes: int
    units: list[GatedUnit]
    unit_names: list[str]  # module names of the units, e.g. "stage2.3"

    def setup_gates(self, gating: str, unit_in: list[int]) -> None:
        """Create the recurrent gates for units whose inputs have `unit_in` channels."""
        self.gating = gating
        self.layer_gated, self.channel_kind = check_gating(gating)
        groups = [u.groups for u in self.units]
        self.layer_gate = (RecurrentGate(unit_in, [1] * len(unit_in), GATE_INIT_BIAS)
                           if self.layer_gated else None)  # fmt: skip
        self.channel_gate = (RecurrentGate(unit_in, groups, GATE_INIT_BIAS)
                             if self.channel_kind == "rnn" else None)  # fmt: skip
        self.budget = None  # a ddi_energy.costs.Budget: eval runs exits, halts inputs at them
        self.force_on = False  # training forward with every gate on and no gate computed

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters of the gates, of the exit branches and of the backbone (the rest)."""
        gates = [m for m in (self.layer_gate, self.channel_gate) if m is not None]
        gates += [u.cgate for u in self.units if u.cgate is not None]
        groups = {"gates": [p for m in gates for p in m.parameters()],
                  "exits": list(self.exits.parameters()) if hasattr(self, "exits") else []}
        taken = {id(p) for ps in groups.values() for p in ps}
        groups["backbone"] = [p for p in self.parameters() if id(p) not in taken]
        return groups

    def setup_exits(self, after: list[int], specs: list[tuple[int, int]]) -> None:
        """Exit branches after units `after`, on maps of (channels, size) `specs`."""
        self.exit_after = list(after)
        self.exits = nn.ModuleList(ExitBranch(c, s, self.num_classes) for c, s in specs)

    def stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def always_layers(self, u: int, backbone: dict[str, Layer]) -> tuple[Layer, ...]:
        """Backbone layers that run whenever unit u is reached, skipped or not."""
        raise NotImplementedError

    def cost_structure(self, backbone_layers: Sequence[Layer]) -> CostStructure:
        """Every layer this network can run, grouped for `ddi_energy.costs.CostModel`.

        `backbone_layers` are the plain arch's layers (`walk_arch(self.arch)`: the names cost
        tables use); unit u's gated convs are `<unit>.<conv>` for its `gated_convs`.
        """
        backbone = {layer.name: layer for layer in backbone_layers}
        units = []
        for u, name in enumerate(self.unit_names):
            first, *mid, last = (backbone[f"{name}.{c}"] for c in self.units[u].gated_convs)
            units.append(UnitLayers(
                name, first, last, self.always_layers(u, backbone),
                self._gate_layers(u, f"{name}.layer_gate", layer=True),
                self._gate_layers(u, f"{name}.channel_gate", layer=False,
                                  in_hw=(first.in_h, first.in_w)), tuple(mid),
                self.units[u].channel_group,
            ))  # fmt: skip
        exits = tuple(tuple(walk_layers(branch, branch.input_size, f"exits.{j}"))
                      for j, branch in enumerate(self.exits))  # fmt: skip
        return CostStructure(self.arch, self.gating, (backbone["conv1"],), tuple(units), exits,
                             tuple(self.exit_after), (backbone["fc"],))  # fmt: skip

    def _gate_layers(self, u: int, prefix: str, *, layer: bool,
                     in_hw: tuple[int, int] = (1, 1)) -> tuple[Layer, ...]:  # fmt: skip
        """The layers of unit u's layer gate (`layer`) or channel gate; () if it has none."""
        if layer:
            gate = self.layer_gate
            return tuple(gate.cost_layers(u, prefix)) if gate is not None else ()
        if self.channel_gate is not None:
            return tuple(self.channel_gate.cost_layers(u, prefix))
        cgate = self.units[u].cgate
        return tuple(walk_layers(cgate, (cgate.in_channels, *in_hw), prefix)) if cgate else ()

    @property
    def widths(self) -> list[int]:
        return [u.width for u in self.units]

    @property
    def channel_group(self) -> int:
        """Channels switched by one channel-gate output (1: single channels)."""
        return self.units[0].channel_group if self.units else 1

    def forward(self, x: Tensor) -> DDIOutput:
        x = self.stem(x)
        return self._train_forward(x) if self.training else self._eval_forward(x)

    def _gates(self, u: int, x: Tensor, states: dict) -> tuple[Tensor, Tensor | None]:
        """(layer probability (B,), channel probabilities (B, k) or None) for unit u.

        Under mgl2s the CNN channel gate is left to the caller: it runs only where the layer
        gate executes the unit.
        """
        if self.layer_gate is not None:
            p_layer, states["layer"] = self.layer_gate(u, x, states.get("layer"))
            p_layer = p_layer[:, 0]
        else:
            p_layer = x.new_ones(x.shape[0])
        if self.channel_gate is not None:
            p_chan, states["channel"] = self.channel_gate(u, x, states.get("channel"))
        elif self.channel_kind == "cnn" and not self.layer_gated:
            p_chan = self.units[u].cgate(x)
        else:
            p_chan = None
        return p_layer, p_chan

    def _train_forward(self, x: Tensor) -> DDIOutput:
        batch, states = x.shape[0], {}
        d = Decisions.empty(batch, self.widths, x.device)
        d.reached[:] = True
        p_layers, p_chans, exit_logits = [], [], []
        for u, unit in enumerate(self.units):
            x = unit.enter(x, states)
            if self.force_on:  # backbone pre-training: no gate runs, every unit executes
                p_layer, p_chan = x.new_ones(batch), None
            else:
                p_layer, p_chan = self._gates(u, x, states)
                if p_chan is None and self.channel_kind == "cnn":
                    p_chan = unit.cgate(x)
            g_chan = unit.to_channels(straight_through(p_chan)) if p_chan is not None else None
            g_layer = straight_through(p_layer) if self.layer_gated else p_layer
            x = unit.train_step(x, states, g_layer, g_chan)
            executed = g_layer.detach() > 0.5
            d.executed[:, u] = executed
            if g_chan is not None:
                d.channels[u] = (g_chan.detach() > 0.5) & executed[:, None]
                d.channel_gate_ran[:, u] = executed if self.layer_gated else True
            else:
                d.channels[u] = executed[:, None].expand(-1, unit.width).clone()
            p_layers.append(p_layer)
            p_chans.append(p_chan if p_chan is not None else x.new_ones((batch, unit.groups)))
            if u in self.exit_after:
                exit_logits.append(self.exits[self.exit_after.index(u)](x))
        d.exits_run[:] = len(self.exits)
        d.exit_index[:] = len(self.exits)
        return DDIOutput(self.head(x), d, exit_logits, GateProbs(torch.stack(p_layers, 1), p_chans))

    @torch.no_grad()
    def _eval_forward(self, x: Tensor) -> DDIOutput:
        batch, states = x.shape[0], {}
        log = DecisionLog(batch, self.widths, self.layer_gated, self.channel_kind is not None,
                          len(self.exits), x.device)  # fmt: skip
        every = torch.arange(batch, device=x.device)
        alive = every  # rows of the batch that have not halted
        halted = False  # has any row halted (else `alive` is every row)?
        logits = None
        exit_logits = [x.new_full((batch, self.num_classes), float("nan")) for _ in self.exits]
        # looked up once: a submodule attribute costs ~1 µs per lookup (`nn.Module.__getattr__`)
        layer_gate, channel_gate, budget = self.layer_gate, self.channel_gate, self.budget
        channel_gated, exit_after = self.channel_kind is not None, self.exit_after
        for u, unit in enumerate(self.units):
            x = unit.enter(x, states)
            executed = run = p_chan = None  # None: every row runs the unit
            if layer_gate is not None:
                p_layer, states["layer"] = layer_gate(u, x, states.get("layer"))
                executed = p_layer[:, 0] > 0.5  # the one host sync of a layer decision:
                if x.shape[0] == 1:  # a bool at batch 1 (a third of the time of `nonzero`)
                    run = None if bool(executed) else every[:0]
                else:
                    run = executed.nonzero().squeeze(1)
                    run = None if run.numel() == x.shape[0] else run
            if channel_gate is not None:  # recurrent: steps wherever the unit is reached
                p_chan, states["channel"] = channel_gate(u, x, states.get("channel"))
            mask = None
            if channel_gated and (run is None or run.numel()):
                if p_chan is None:  # a CNN gate runs for executing inputs only
                    p_chan = unit.cgate(x if run is None else x[run])
                elif run is not None:
                    p_chan = p_chan[run]
                mask = unit.to_channels(p_chan > 0.5)
            log.record(alive if halted else None, executed, run, mask)
            x = unit.eval_step(x, states, run if run is not None else
                               every if not halted else every[: x.shape[0]], mask)  # fmt: skip
            if u in exit_after and budget is not None:  # no budget: exits idle
                j = exit_after.index(u)
                out_j = self.exits[j](x)
                exit_logits[j][alive] = out_j
                log.exits_run[alive] += 1
                halt = budget.halt(log.decisions(), alive, next_exit=j + 1)
                if bool(halt.any()):
                    if logits is None:
                        logits = x.new_full((batch, self.num_classes), float("nan"))
                    logits[alive[halt]] = out_j[halt]
                    log.exit_index[alive[halt]] = j
                    keep = ~halt
                    alive, x, halted = alive[keep], x[keep], True
                    states = {k: _subset(v, keep) for k, v in states.items()}
                    if alive.numel() == 0:
                        return DDIOutput(logits, log.decisions(), exit_logits)
        if logits is None:
            logits = self.head(x)
        else:
            logits[alive] = self.head(x)
        return DDIOutput(logits, log.decisions(), exit_logits)


def _bn_subset(x: Tensor, bn: nn.Module, idx: Tensor) -> Tensor:
    """Inference BN over the channels `idx` only (none if it was folded into the conv)."""
    if not isinstance(bn, nn.BatchNorm2d):
        return x
    mean, var, weight, bias = (t.index_select(0, idx) for t in
                               (bn.running_mean, bn.running_var, bn.weight, bn.bias))  # fmt: skip
    return nn.functional.batch_norm(x, mean, var, weight, bias, False, 0.0, bn.eps)


def masked_chain(x: Tensor, convs: Sequence[nn.Conv2d], bns: Sequence[nn.Module],
                 gate: Tensor | None) -> Tensor:  # fmt: skip
    """convs[-1](… gate · ReLU(bns[i](convs[i](…)))): conv i < last is followed by BN i, ReLU and
    the channel gate, so the gated channels are the outputs of every conv but the last and the
    inputs of every conv but the first (training)."""
    h = x
    for conv, bn in zip(convs[:-1], bns, strict=True):
        h = torch.relu_(bn(conv(h)))
        if gate is not None:
            h = h * gate[:, :, None, None]
    return convs[-1](h)


def sliced_chain(x: Tensor, convs: Sequence[nn.Conv2d], bns: Sequence[nn.Module],
                 mask: Tensor | None) -> Tensor:  # fmt: skip
    """`masked_chain` at inference, computing only the channels some row of `mask` keeps.

    The first conv runs only the kept filters, the middle ones only kept filters on kept inputs,
    the last reads only the kept inputs; rows of a batch that keep fewer channels are masked (at
    batch size 1 nothing is). With no channel kept no conv runs and the result is the last
    conv's bias (zeros without one). One host sync (the kept channels' indices); weights (and
    the biases of BN-folded convs, `ddi_energy.models.inference`) are sliced with `index_select`.
    """
    if mask is None:
        return masked_chain(x, convs, bns, None)
    batch = x.shape[0]
    keep = (mask[0] if batch == 1 else mask.any(0)).nonzero().squeeze(1)
    if keep.numel() == mask.shape[1]:  # every channel runs: the plain chain, rows masked
        return masked_chain(x, convs, bns, None if batch == 1 else mask.to(x.dtype))
    last = convs[-1]
    if keep.numel() == 0:
        h, w = x.shape[2], x.shape[3]
        for conv in convs:
            h, w = conv_out_size(conv, h, w)
        out = x.new_zeros((batch, last.out_channels, h, w))
        return out if last.bias is None else out.add_(last.bias[:, None, None])
    h = x
    for i, (conv, bn) in enumerate(zip(convs[:-1], bns, strict=True)):
        weight = conv.weight.index_select(0, keep)
        weight = weight if i == 0 else weight.index_select(1, keep)
        bias = None if conv.bias is None else conv.bias.index_select(0, keep)
        h = nn.functional.conv2d(h, weight, bias, conv.stride, conv.padding)
        h = torch.relu_(_bn_subset(h, bn, keep))
        if batch > 1:
            h = h * mask[:, keep, None, None].to(h.dtype)
    return nn.functional.conv2d(h, last.weight.index_select(1, keep), last.bias, last.stride,
                                last.padding)  # fmt: skip


def conv_out_size(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
