"""ImageNet ResNet-50 (He et al. 2016, Table 1), in torchvision's layout: bottleneck blocks with
the stride on the 3×3 conv ("ResNet v1.5"), 1×1 projection shortcuts where the shape changes.

Stem 7×7/2 conv 3→64 + BN-ReLU + 3×3/2 max pool on 224×224, four stages of (3, 4, 6, 3)
bottlenecks of inner width 64/128/256/512 and output width 4× that, stride 2 at the first block
of stages 2-4, global average pool, FC 2048→1000.

Module names follow our CIFAR ResNets: `conv1`, `bn1` (stem), `stage{s}.{i}.conv1|conv2|conv3`
and `bn1..3` (stage s 1-indexed, block i 0-indexed), `stage{s}.0.shortcut.0|1` (projection conv,
BN), `fc`. `ddi_energy.models.pretrained` maps torchvision's names (`layer{s}.{i}`,
`downsample`) onto these.

Gate design (annotations only). Every block is layer-gated by a gate named after it; a skipped
block outputs ReLU(shortcut(x)), so a projection shortcut is ungated. The channel gate masks the
block's INNER width with ONE mask on both inner feature maps: conv1's outputs, conv2's inputs
and outputs, conv3's inputs. A block with n of its w channels on is the same block with inner
width n: conv1 and conv3 shrink linearly, conv2 (9/17 of a block's MACs) quadratically, and
nothing outside the block changes width. So conv1 is annotated `(block, block, "out")`, conv2
`"both"` and conv3 `"in"`, and the cost tables sweep conv2 at n inputs = n outputs. (A mask on
conv1's outputs alone would leave conv2's filters and conv3 untouched: at most 13/17 of a block,
all of it linear.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ddi_energy.models.resnet import init_resnet_weights
from ddi_energy.workload.annotations import set_gate

WIDTHS = (64, 128, 256, 512)  # inner width of the bottlenecks of each stage
EXPANSION = 4


class Bottleneck(nn.Module):
    """1×1 conv-BN-ReLU, 3×3 conv (stride here)-BN-ReLU, 1×1 conv-BN, plus shortcut, then ReLU."""

    conv_bn = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out))  # fmt: skip
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def stage_plan(blocks: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """(stage, block, in_planes, stride) of every bottleneck, in order (1-indexed stages)."""
    plan, in_planes = [], WIDTHS[0]
    for s, (n, planes) in enumerate(zip(blocks, WIDTHS, strict=True), start=1):
        for i in range(n):
            plan.append((s, i, in_planes, 2 if (s > 1 and i == 0) else 1))
            in_planes = planes * EXPANSION
    return plan


def add_stem(model: nn.Module) -> None:
    """Give `model` the ImageNet stem modules (`conv1`, `bn1`, `maxpool`) that
    `BottleneckResNet.stem` runs."""
    model.conv1 = nn.Conv2d(3, WIDTHS[0], 7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(WIDTHS[0])
    model.maxpool = nn.MaxPool2d(3, stride=2, padding=1)


class BottleneckResNet(nn.Module):
    """ImageNet ResNet with bottleneck blocks; `blocks=(3, 4, 6, 3)` is ResNet-50."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    conv_bn = (("conv1", "bn1"),)  # the stem

    def __init__(self, blocks: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000) -> None:
        super().__init__()
        add_stem(self)
        stages: list[list[nn.Module]] = [[] for _ in blocks]
        for s, _, in_planes, stride in stage_plan(blocks):
            stages[s - 1].append(Bottleneck(in_planes, WIDTHS[s - 1], stride))
        for s, stage in enumerate(stages, start=1):
            self.add_module(f"stage{s}", nn.Sequential(*stage))
        self.num_stages = len(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[len(blocks) - 1] * EXPANSION, num_classes)
        init_resnet_weights(self)
        for name, m in self.named_modules():
            if isinstance(m, Bottleneck):
                set_gate(m.conv1, name, name, "out")
                set_gate(m.conv2, name, name, "both")
                set_gate(m.conv3, name, name, "in")

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(torch.relu(self.bn1(self.conv1(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for s in range(1, self.num_stages + 1):
            x = getattr(self, f"stage{s}")(x)
        return self.fc(self.pool(x).flatten(1))
