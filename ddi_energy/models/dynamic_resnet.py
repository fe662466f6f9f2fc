"""MGL2S CIFAR ResNets: layer gates, channel gates and RADI exits on the zoo's ResNets.

Where the channel mask acts: on a block's INTERNAL channels (conv1's outputs = conv2's inputs),
after BN-ReLU. Switching off channel j removes filter j of conv1 and input channel j of conv2,
and nothing else, so the saving is exactly those two slices; the residual sum keeps its width.
A skipped block outputs ReLU(shortcut(x)) (SkipNet): its projection shortcut, if any, still runs.
Module names of the backbone are those of the plain `ResNet`, so cost-table rows match.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ddi_energy.models.dynamic import check_group
from ddi_energy.models.dynamic_net import (
    GATE_INIT_BIAS,
    DynamicNet,
    GatedUnit,
    masked_chain,
    sliced_chain,
)
from ddi_energy.models.exits import exit_positions
from ddi_energy.models.gated_ops import gated_residual
from ddi_energy.models.gates import ChannelGateCNN
from ddi_energy.models.resnet import WIDTHS, BasicBlock
from ddi_energy.workload.shapes import Layer


class GatedResidual(GatedUnit):
    """A residual block `relu(shortcut(x) + bn_last(body(x)))` whose body is the chain of its
    `gated_convs`, conv i followed by `bn{i}`; the gated channels are inside the body."""

    shortcut: nn.Module

    def _chain(self) -> tuple[list[nn.Conv2d], list[nn.Module], nn.Module]:
        modules = self._modules  # dict lookups: `getattr` would try `__dict__` first (µs each)
        convs = [modules[name] for name in self.gated_convs]
        bns = [modules[f"bn{i + 1}"] for i in range(len(convs))]
        return convs, bns[:-1], bns[-1]

    def train_step(self, x: Tensor, state: dict[str, Any], g_layer: Tensor,
                   g_chan: Tensor | None) -> Tensor:  # fmt: skip
        convs, bns, bn_last = self._chain()
        body = bn_last(masked_chain(x, convs, bns, g_chan))
        return gated_residual(self.shortcut(x), g_layer, body)

    def eval_step(self, x: Tensor, state: dict[str, Any], run: Tensor,
                  mask: Tensor | None) -> Tensor:  # fmt: skip
        convs, bns, bn_last = self._chain()
        y = self.shortcut(x)
        if run.numel() == x.shape[0]:  # the body is a fresh tensor: add the shortcut in place
            return torch.relu_(bn_last(sliced_chain(x, convs, bns, mask)).add_(y))
        if run.numel():
            return torch.relu_(y.index_add(0, run, bn_last(sliced_chain(x[run], convs, bns, mask))))
        return torch.relu(y)  # y may be x itself (identity shortcut): not in place


class GatedBlock(BasicBlock, GatedResidual):
    """A BasicBlock whose internal channels are gated, `channel_group` channels per gate output."""

    def __init__(self, in_planes: int, planes: int, stride: int, cnn_gate: bool,
                 channel_group: int = 1) -> None:  # fmt: skip
        super().__init__(in_planes, planes, stride)
        self.width, self.channel_group = planes, check_group(channel_group)
        self.cgate = ChannelGateCNN(in_planes, self.groups, GATE_INIT_BIAS) if cnn_gate else None


class ResidualNet(DynamicNet):
    """What gated ResNets share: the head and the projection shortcuts that always run."""

    pool: nn.Module
    fc: nn.Linear

    def head(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(x).flatten(1))

    def always_layers(self, u: int, backbone: dict[str, Layer]) -> tuple[Layer, ...]:
        """The projection shortcut, which runs even when the block is skipped."""
        shortcut = f"{self.unit_names[u]}.shortcut.0"
        return (backbone[shortcut],) if shortcut in backbone else ()


class DynamicResNet(ResidualNet):
    """CIFAR ResNet-(6n+2) with MGL2S gating (see `GATINGS`) and optional RADI exits."""

    input_size: tuple[int, int, int] = (3, 32, 32)
    conv_bn = (("conv1", "bn1"),)  # the stem

    def __init__(self, n: int, arch: str, gating: str = "mgl2s", exits: bool = False,
                 num_classes: int = 10, channel_group: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        cnn_gate = gating in ("channel-cnn", "mgl2s")
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.units, self.unit_names = [], []
        after, specs = [], []  # exit positions and the (channels, size) of their maps
        in_planes, size = WIDTHS[0], 32
        for s, planes in enumerate(WIDTHS):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                size //= stride
                blocks.append(GatedBlock(in_planes, planes, stride, cnn_gate, channel_group))
                self.unit_names.append(f"stage{s + 1}.{i}")
                in_planes = planes
                if exits and i in exit_positions(n):
                    after.append(len(self.units) + i)
                    specs.append((planes, size))
            self.add_module(f"stage{s + 1}", nn.Sequential(*blocks))
            self.units.extend(blocks)
        self.setup_gates(gating, [b.conv1.in_channels for b in self.units])
        self.setup_exits(after, specs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stem(self, x: Tensor) -> Tensor:
        return torch.relu_(self.bn1(self.conv1(x)))
