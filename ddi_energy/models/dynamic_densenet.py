"""MGL2S DenseNet-BC (paper Sec. III-A3, Fig. 3 and 4): dense-layer skipping and channel gates.

- Layer skipping: a skipped dense layer contributes the previous dense layer's new features
  instead of its own (`new = g·new + (1-g)·prev_new`, Fig. 3), so every later layer still sees
  the width it was built for. Across a transition `prev_new` is 2×2 average-pooled like the
  features; the network's first dense layer has no predecessor and contributes zeros.
- Channel gating masks the bottleneck channels (1×1 conv outputs = 3×3 conv inputs), as the
  cost tables annotate. The light CNN gate of Fig. 4 (`LightChannelGate`): BN-ReLU-1×1 conv
  with stride 2 to half the bottleneck width, BN-ReLU-3×3 conv to the growth rate, global
  average pool, FC to the bottleneck width (about 1/8 of a dense layer's FLOPs).
- The transition before a block runs whenever an input reaches the block's first layer.
- Exits: by default after the layers at ~1/4 and ~3/4 of every block (CIFAR, 6 exits);
  `exit_layers` gives other positions per block (densenet201: the paper's 3, see the zoo).
Module names of the backbone are those of the plain `DenseNet` (CIFAR or ImageNet stem), so
cost-table rows match and plain weights load.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ddi_energy.models.densenet import DenseLayer, DenseNet, Transition, add_stem
from ddi_energy.models.dynamic import check_group
from ddi_energy.models.dynamic_net import (
    GATE_INIT_BIAS,
    DynamicNet,
    GatedUnit,
    masked_chain,
    sliced_chain,
)
from ddi_energy.models.exits import exit_positions
from ddi_energy.models.gates import LightChannelGate
from ddi_energy.workload.shapes import Layer


class GatedDenseLayer(DenseLayer, GatedUnit):
    """A dense layer whose bottleneck channels are gated; returns its input and new features."""

    def __init__(self, in_channels: int, growth: int, cnn_gate: bool,
                 transition: Transition | None, channel_group: int = 1) -> None:  # fmt: skip
        super().__init__(in_channels, growth)
        self.width, self.growth = self.conv1.out_channels, growth
        self.channel_group = check_group(channel_group)
        self.cgate = (LightChannelGate(in_channels, self.width // 2, growth, self.groups,
                                       GATE_INIT_BIAS) if cnn_gate else None)  # fmt: skip
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
        new = masked_chain(self.relu(self.bn1(x)), (self.conv1, self.conv2), [self.bn2], g_chan)
        g = g_layer[:, None, None, None]
        state["prev"] = g * new + (1 - g) * self._prev(x, state)
        return torch.cat([x, state["prev"]], 1)

    def eval_step(self, x: Tensor, state: dict[str, Any], run: Tensor,
                  mask: Tensor | None) -> Tensor:  # fmt: skip
        new = self._prev(x, state)
        if run.numel():
            xr = x if run.numel() == x.shape[0] else x[run]
            out = sliced_chain(torch.relu(self.bn1(xr)), (self.conv1, self.conv2), [self.bn2], mask)
            new = out if run.numel() == x.shape[0] else new.index_copy(0, run, out)
        state["prev"] = new
        return torch.cat([x, new], 1)


class DynamicDenseNet(DynamicNet):
    """DenseNet-BC with MGL2S gating (see `GATINGS`) and optional RADI exits."""

    def __init__(self, arch: str, growth: int, block_config: tuple[int, ...],
                 num_init_features: int, num_classes: int, gating: str = "mgl2s",
                 exits: bool = False, compression: float = 0.5, imagenet_stem: bool = False,
                 exit_layers: tuple[tuple[int, ...], ...] | None = None,
                 channel_group: int = 1) -> None:  # fmt: skip
        """`exit_layers[b]`: 0-based layers of block b after which an exit sits (with `exits`)."""
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        cnn_gate = gating in ("channel-cnn", "mgl2s")
        add_stem(self, num_init_features, imagenet_stem)
        if exit_layers is None:
            exit_layers = tuple(tuple(exit_positions(n)) for n in block_config)
        self.units, self.unit_names = [], []
        after, specs = [], []
        size = self.input_size[1] // (4 if imagenet_stem else 1)  # the stem's output map
        channels, transition = num_init_features, None
        for b, num_layers in enumerate(block_config, start=1):
            block = nn.Module()
            for i in range(num_layers):
                layer = GatedDenseLayer(channels, growth, cnn_gate, transition if i == 0 else None,
                                        channel_group)
                block.add_module(f"layer{i + 1}", layer)
                self.units.append(layer)
                self.unit_names.append(f"block{b}.layer{i + 1}")
                channels += growth
                if exits and i in exit_layers[b - 1]:
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

    stem = DenseNet.stem  # the plain DenseNet's stem, on the modules `add_stem` made

    def head(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(torch.relu(self.bn(x))).flatten(1))

    def always_layers(self, u: int, backbone: dict[str, Layer]) -> tuple[Layer, ...]:
        """The transition before a block, which runs when an input reaches its first layer."""
        block, layer = self.unit_names[u].split(".")
        if layer != "layer1" or block == "block1":
            return ()
        return (backbone[f"trans{int(block.removeprefix('block')) - 1}.conv"],)
