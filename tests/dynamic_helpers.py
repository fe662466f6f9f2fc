"""Dynamic networks set up for tests: gates biased so that decisions vary, random BN statistics."""

from __future__ import annotations

import torch
from torch import nn

import ddi_energy


def gate_heads(model: nn.Module) -> list[nn.Linear]:
    """The linear readouts whose biases set every gate's probabilities."""
    heads = []
    for gate in (model.layer_gate, model.channel_gate):
        if gate is not None:
            heads.extend(gate.heads)
    heads.extend(u.cgate.fc for u in model.units if u.cgate is not None)
    return heads


def set_bias(model: nn.Module, value: float) -> nn.Module:
    """Gate biases at `value`; readout weights scaled up so that, near 0, decisions vary by
    unit, channel and input (about half skip) instead of following the bias alone."""
    with torch.no_grad():
        for head in gate_heads(model):
            head.bias.fill_(value)
            head.weight.mul_(8.0)
        for gate in filter(None, (model.layer_gate, model.channel_gate)):
            for proj in gate.proj:
                proj.weight.mul_(8.0)
            gate.cell.ih.weight.mul_(8.0)
    return model


def eval_model(arch: str, gating: str, exits: bool = False, bias: float = 0.0,
               seed: int = 0, channel_group: int = 1) -> nn.Module:  # fmt: skip
    """A dynamic net in eval mode with gate biases at `bias` (0: about half skip)."""
    torch.manual_seed(seed)
    model = ddi_energy.get_model(arch, gating=gating, exits=exits, channel_group=channel_group)
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return set_bias(model, bias).eval()
