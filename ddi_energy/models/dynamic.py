"""What every dynamic (gated, early-exit) network returns, and the cost structure it declares.

A dynamic network is a stem, a sequence of *units* (residual blocks, dense layers) and a head.
Each unit can be skipped whole by a layer gate and can run with some of its *gated channels*
off (the output channels of `out_layer` = the input channels of `in_layer`, and both channel
counts of any `mid` layers between them, as in a bottleneck). Exit branches sit
after some units. `CostStructure` lists the conv/FC layers of each part, which is all that cost
accounting (`ddi_energy.costs`) needs to price a forward pass from its `Decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ddi_energy.errors import DDIError
from ddi_energy.workload.shapes import Layer

GATINGS = ("none", "layer", "channel-cnn", "channel-rnn", "mgl2s")


def check_group(group: object) -> int:
    """A channel group size: an integer >= 1 (channels switched by one channel-gate output)."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise DDIError(f"channel_group = {group!r}: must be an integer >= 1")
    return group


def group_sizes(width: int, group: int) -> list[int]:
    """Channels switched by each gate output of a unit of `width` gated channels: `group`
    each, the last group smaller when `group` does not divide `width`."""
    return [min(group, width - start) for start in range(0, width, group)]


def expand_groups(g: Tensor, group: int, width: int) -> Tensor:
    """Per-group values (B, K) as per-channel values (B, width): the one place where group
    decisions become channel masks (channel j belongs to group j // `group`)."""
    return g if group == 1 else g.repeat_interleave(group, dim=1)[:, :width]


def check_gating(gating: str) -> tuple[bool, str | None]:
    """(layer gated?, channel gate kind 'cnn' | 'rnn' | None) of a gating mode."""
    if gating not in GATINGS:
        raise DDIError(f"unknown gating {gating!r} (allowed: {', '.join(GATINGS)})")
    layer = gating in ("layer", "mgl2s")
    channel = {"channel-cnn": "cnn", "channel-rnn": "rnn", "mgl2s": "cnn"}.get(gating)
    return layer, channel


@dataclass
class Decisions:
    """Hard per-input decisions of one forward pass (B inputs, U units, E exits).

    A unit is `reached` if the input had not halted before it (its layer gate, if any, ran);
    `executed` if its body ran; `channels[u]` marks the gated channels that ran (all False when
    the body did not run). `exits_run` counts the exit branches computed; `exit_index` is the
    output used (E = the final classifier).
    """

    reached: Tensor  # (B, U) bool
    executed: Tensor  # (B, U) bool
    channels: list[Tensor]  # U tensors (B, k_u) bool
    channel_gate_ran: Tensor  # (B, U) bool
    exits_run: Tensor  # (B,) long
    exit_index: Tensor  # (B,) long

    @property
    def batch(self) -> int:
        return int(self.reached.shape[0])

    def active_channels(self) -> Tensor:
        """(B, U) number of gated channels that ran per unit."""
        return torch.stack([c.sum(1) for c in self.channels], dim=1)

    def skip_ratio(self) -> Tensor:
        """(B,) fraction of gated channels (over all units) that did not run."""
        total = sum(c.shape[1] for c in self.channels)
        return 1 - self.active_channels().sum(1).double() / total

    @staticmethod
    def cat(parts: list[Decisions]) -> Decisions:
        """The decisions of consecutive batches as one."""
        return Decisions(
            reached=torch.cat([d.reached for d in parts]),
            executed=torch.cat([d.executed for d in parts]),
            channels=[torch.cat(c) for c in zip(*(d.channels for d in parts), strict=True)],
            channel_gate_ran=torch.cat([d.channel_gate_ran for d in parts]),
            exits_run=torch.cat([d.exits_run for d in parts]),
            exit_index=torch.cat([d.exit_index for d in parts]),
        )

    @staticmethod
    def empty(batch: int, widths: list[int], device: torch.device) -> Decisions:
        units = len(widths)
        false = torch.zeros((batch, units), dtype=torch.bool, device=device)
        return Decisions(
            reached=false.clone(),
            executed=false.clone(),
            channels=[torch.zeros((batch, k), dtype=torch.bool, device=device) for k in widths],
            channel_gate_ran=false.clone(),
            exits_run=torch.zeros(batch, dtype=torch.long, device=device),
            exit_index=torch.zeros(batch, dtype=torch.long, device=device),
        )


@dataclass
class GateProbs:
    """Soft gate probabilities of a training-mode forward (ones where a gate is absent)."""

    layer: Tensor  # (B, U) probability of executing each unit
    channels: list[Tensor]  # U tensors (B, K_u): probability of each channel group


@dataclass
class DDIOutput:
    """`logits` of the output each input used; per-exit logits (NaN rows where not computed)."""

    logits: Tensor
    decisions: Decisions
    exit_logits: list[Tensor] = field(default_factory=list)
    probs: GateProbs | None = None  # training mode only


@dataclass(frozen=True)
class UnitLayers:
    """The layers of one unit: gated convs, what runs whenever it is reached, its gates."""

    name: str
    out_layer: Layer  # its output channels are the unit's gated channels
    in_layer: Layer  # reads the gated channels
    always: tuple[Layer, ...]  # backbone layers that run whenever the unit is reached
    layer_gate: tuple[Layer, ...]  # one step of the layer gate (runs whenever reached)
    channel_gate: tuple[Layer, ...]  # the channel gate (runs when `channel_gate_ran`)
    mid: tuple[Layer, ...] = ()  # read and write the gated channels (a bottleneck's 3×3 conv)
    group: int = 1  # channels switched by one channel-gate output (`group_sizes`)

    @property
    def width(self) -> int:
        return self.out_layer.out_channels


@dataclass(frozen=True)
class CostStructure:
    """Every conv/FC layer a dynamic network can run, grouped by what decides whether it runs."""

    arch: str
    gating: str
    stem: tuple[Layer, ...]
    units: tuple[UnitLayers, ...]
    exits: tuple[tuple[Layer, ...], ...]
    exit_after: tuple[int, ...]  # unit index after which each exit branch sits
    head: tuple[Layer, ...]
