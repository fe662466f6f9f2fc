"""MGL2S ResNet-50 (ImageNet): a layer gate per bottleneck, one channel mask on its inner width,
RADI exits after stages 1-3.

- Layer skipping: a skipped bottleneck outputs ReLU(shortcut(x)) (SkipNet); its projection
  shortcut, if any, still runs.
- Channel skipping: the block's k = w inner channels are masked after conv1 and after conv2
  (the same mask), so n active channels make the block a bottleneck of width n: conv1 computes
  n filters, conv2 n filters on n inputs, conv3 reads n inputs (see `ddi_energy.models.resnet50`
  for why one mask on both inner maps). In `eval()` exactly those slices run.
- Channel gate (`channel-cnn`, `mgl2s`): the paper's Fig. 2(b) gate (3×3 stride-2 conv c→c on
  the block's input) would cost 2× a stage-1 block here (c = 4w), so the light gate of its
  Fig. 4(b) is used, as for DenseNet: BN-ReLU-1×1 conv stride 2 to w/2, BN-ReLU-3×3 conv to w/2,
  global average pool, FC to w: 6.25 % of a block's FLOPs (8.2 % at 7×7, where the strided
  map rounds up; 11.2 % in the first block of stages 2-4, whose gate reads the larger input).
- Exits after the last block of stages 1, 2 and 3 (the end of stage 4 is the final classifier).
Module names of the backbone are those of the plain `BottleneckResNet`, so cost-table rows match
and plain weights load.
"""

from __future__ import annotations

from torch import nn

from ddi_energy.models.dynamic import check_group
from ddi_energy.models.dynamic_net import GATE_INIT_BIAS
from ddi_energy.models.dynamic_resnet import GatedResidual, ResidualNet
from ddi_energy.models.gates import LightChannelGate
from ddi_energy.models.resnet50 import (
    EXPANSION,
    WIDTHS,
    Bottleneck,
    BottleneckResNet,
    add_stem,
    stage_plan,
)


class GatedBottleneck(Bottleneck, GatedResidual):
    """A bottleneck whose inner width is gated (conv1 out = conv2 in and out = conv3 in)."""

    gated_convs = ("conv1", "conv2", "conv3")

    def __init__(self, in_planes: int, planes: int, stride: int, cnn_gate: bool,
                 channel_group: int = 1) -> None:  # fmt: skip
        super().__init__(in_planes, planes, stride)
        self.width, self.channel_group = planes, check_group(channel_group)
        self.cgate = (LightChannelGate(in_planes, planes // 2, planes // 2, self.groups,
                                       GATE_INIT_BIAS) if cnn_gate else None)  # fmt: skip


class DynamicBottleneckResNet(ResidualNet):
    """ImageNet bottleneck ResNet with MGL2S gating (see `GATINGS`) and optional RADI exits."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    conv_bn = (("conv1", "bn1"),)  # the stem

    def __init__(self, arch: str, blocks: tuple[int, ...] = (3, 4, 6, 3), gating: str = "mgl2s",
                 exits: bool = False, num_classes: int = 1000,
                 channel_group: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        cnn_gate = gating in ("channel-cnn", "mgl2s")
        add_stem(self)
        self.units, self.unit_names = [], []
        stages: list[list[nn.Module]] = [[] for _ in blocks]
        for s, i, in_planes, stride in stage_plan(blocks):
            block = GatedBottleneck(in_planes, WIDTHS[s - 1], stride, cnn_gate, channel_group)
            stages[s - 1].append(block)
            self.units.append(block)
            self.unit_names.append(f"stage{s}.{i}")
        for s, stage in enumerate(stages, start=1):
            self.add_module(f"stage{s}", nn.Sequential(*stage))
        size = self.input_size[1] // 4  # after the stem
        inner = range(1, len(blocks)) if exits else range(0)  # exits end every stage but the last
        self.setup_gates(gating, [b.conv1.in_channels for b in self.units])
        self.setup_exits([sum(blocks[:s]) - 1 for s in inner],
                         [(WIDTHS[s - 1] * EXPANSION, size // 2 ** (s - 1)) for s in inner])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[len(blocks) - 1] * EXPANSION, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    stem = BottleneckResNet.stem  # the plain network's stem, on the modules `add_stem` made
