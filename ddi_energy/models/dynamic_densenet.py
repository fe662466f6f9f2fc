"""MGL2S DenseNet-BC (paper Sec. III-A3, Fig. 3 and 4): dense-layer skipping and channel gates.

- Layer skipping: a skipped dense layer contributes the previous dense layer's new features
  instead of its own (`new = g·new + (1-g)·prev_new`, Fig. 3), so every later layer still sees
  the width it was built for. Across a transition `prev_new` is 2×2 average-pooled like the
  features; the network's first dense layer has no predecessor and contributes zeros.
- Channel gating masks the bottleneck channels (1×1 conv outputs = 3×3 conv inputs), as the
  cost tables annotate. The light CNN gate of Fig. 4: BN-ReLU-1×1 conv with stride 2 to half
  the bottleneck width, BN-ReLU-3×3 conv to the growth rate, global average pool, FC to the
  bottleneck width (about 1/8 of a dense layer's FLOPs).
- The transition before a block runs whenever an input reaches the block's first layer.
Module names of the backbone are those of the plain `DenseNet`, so cost-table rows match.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ddi_energy.models.densenet import DenseLayer, Transition
from ddi_energy.models.dynamic_net import (
    GATE_INIT_BIAS,
    DynamicNet,
    GatedUnit,
    masked_pair,
    sliced_pair,
)
from ddi_energy.models.exits import exit_positions
from ddi_energy.workload.shapes import Layer


class DenseChannelGate(nn.Module):
    """Fig. 4(b): a strided, half-width copy of the dense layer's bottleneck, then FC."""

    def __init__(self, in_channels: int, bottleneck: int, growth: int, init_bias: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bottleneck // 2, 1, stride=2, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck // 2)
        self.conv2 = nn.Conv2d(bottleneck // 2, growth, 3, padding=1, bias=False)
        self.fc = nn.Linear(growth, bottleneck)
        nn.init.constant_(self.fc.bias, init_bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(torch.relu(self.bn1(x)))
        h = self.conv2(torch.relu(self.bn2(h)))
        return torch.sigmoid(self.fc(h.mean((2, 3))))


class GatedDenseLayer(DenseLayer, GatedUnit):
    """A dense layer whose bottleneck channels are gated; returns its input and new features."""

    def __init__(self, in_channels: int, growth: int, cnn_gate: bool,
                 transition: Transition | None) -> None:  # fmt: skip
        super().__init__(in_channels, growth)
        self.width, self.growth = self.conv1.out_channels, growth
        self.cgate = (DenseChannelGate(in_channels, self.width, growth, GATE_INIT_BIAS)
                      if cnn_gate else None)  # fmt: skip
        self.transition = [transition]  # a list: the module is registered by the network

    def enter(self, x: Tensor, state: dict[str, Any]) -> Tensor:
        transition = self.transition[0]
        if transition is None:
            return x
        if "prev" in state:
            state["prev"] = transition.pool(state["prev"])
        return transition(x)

    def _prev(self, x: Tensor, state: dict[str, Any]) -> Tensor:
        prev = state.get("prev")
        return prev if prev is not None else x.new_zeros((x.shape[0], self.growth, *x.shape[2:]))

    def train_step(self, x: Tensor, state: dict[str, Any], g_layer: Tensor,
                   g_chan: Tensor | None) -> Tensor:  # fmt: skip
        new = masked_pair(self.relu(self.bn1(x)), self.conv1, self.bn2, self.conv2, g_chan)
        g = g_layer[:, None, None, None]
        state["prev"] = g * new + (1 - g) * self._prev(x, state)
        return torch.cat([x, state["prev"]], 1)

    def eval_step(self, x: Tensor, state: dict[str, Any], run: Tensor,
                  mask: Tensor | None) -> Tensor:  # fmt: skip
        new = self._prev(x, state)
        if run.numel():
            xr = x if run.numel() == x.shape[0] else x[run]
            out = sliced_pair(torch.relu(self.bn1(xr)), self.conv1, self.bn2, self.conv2, mask)
            new = out if run.numel() == x.shape[0] else new.index_copy(0, run, out)
        state["prev"] = new
        return torch.cat([x, new], 1)


class DynamicDenseNet(DynamicNet):
    """DenseNet-BC with MGL2S gating (see `GATINGS`) and optional RADI exits."""

    def __init__(self, arch: str, growth: int, block_config: tuple[int, ...],
                 num_init_features: int, num_classes: int, gating: str = "mgl2s",
                 exits: bool = False, compression: float = 0.5) -> None:  # fmt: skip
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        self.input_size = (3, 32, 32)
        cnn_gate = gating in ("channel-cnn", "mgl2s")
        self.conv1 = nn.Conv2d(3, num_init_features, 3, padding=1, bias=False)
        self.units, self.unit_names = [], []
        after, specs = [], []
        channels, size, transition = num_init_features, 32, None
        for b, num_layers in enumerate(block_config, start=1):
            block = nn.Module()
            for i in range(num_layers):
                layer = GatedDenseLayer(channels, growth, cnn_gate, transition if i == 0 else None)
                block.add_module(f"layer{i + 1}", layer)
                self.units.append(layer)
                self.unit_names.append(f"block{b}.layer{i + 1}")
                channels += growth
                if exits and i in exit_positions(num_layers):
                    after.append(len(self.units) - 1)
                    specs.append((channels, size))
            self.add_module(f"block{b}", block)
            if b < len(block_config):
                transition = Transition(channels, int(channels * compression))
                self.add_module(f"trans{b}", transition)
                channels, size = int(channels * compression), size // 2
        self.setup_gates(gating, [u.conv1.in_channels for u in self.units])
        self.setup_exits(after, specs)
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def stem(self, x: Tensor) -> Tensor:
        return self.conv1(x)

    def head(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(torch.relu(self.bn(x))).flatten(1))

    def always_layers(self, u: int, backbone: dict[str, Layer]) -> tuple[Layer, ...]:
        """The transition before a block, which runs when an input reaches its first layer."""
        block, layer = self.unit_names[u].split(".")
        if layer != "layer1" or block == "block1":
            return ()
        return (backbone[f"trans{int(block.removeprefix('block')) - 1}.conv"],)
