"""MobileNetV2 (Sandler et al. 2018) for 32×32 CIFAR inputs: the zoo's depthwise-separable net.

Inverted residual blocks: 1×1 expansion conv (× t), 3×3 depthwise conv (groups = channels),
1×1 linear projection, each with BN (ReLU6 after the first two), and an identity shortcut where
the block keeps its shape. Stages (t, channels, blocks, stride) as in the paper's Table 2, with
the CIFAR adaptation common in CIFAR training code: the stem and the second stage keep stride 1,
so the 32×32 input ends at 4×4 before the 1×1 conv to 1280, global average pool and FC.

Module names: `stem`, `blocks.{i}.expand` (absent where t = 1), `blocks.{i}.dw`,
`blocks.{i}.project`, `head`, `fc`. Plain only: no gates are annotated.
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion t, output channels c, blocks n, stride of the first block s)
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
STEM, HEAD = 32, 1280


class InvertedResidual(nn.Module):
    """expand 1×1 → depthwise 3×3 (stride s) → project 1×1, + x when the shape is kept."""

    def __init__(self, in_planes: int, planes: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_planes * expansion
        self.expand = nn.Conv2d(in_planes, hidden, 1, bias=False) if expansion != 1 else None
        self.bn0 = nn.BatchNorm2d(hidden) if expansion != 1 else None
        self.dw = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden,
                            bias=False)  # fmt: skip
        self.bn1 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_planes == planes

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expand is None else self.relu(self.bn0(self.expand(x)))
        out = self.relu(self.bn1(self.dw(out)))
        out = self.bn2(self.project(out))
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) on 32×32 inputs."""

    input_size: tuple[int, int, int] = (3, 32, 32)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, STEM, 3, padding=1, bias=False)
        self.bn_stem = nn.BatchNorm2d(STEM)
        blocks, channels = [], STEM
        for t, c, n, s in STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, HEAD, 1, bias=False)
        self.bn_head = nn.BatchNorm2d(HEAD)
        self.relu = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(HEAD, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn_stem(self.stem(x)))
        out = self.blocks(out)
        out = self.relu(self.bn_head(self.head(out)))
        return self.fc(self.pool(out).flatten(1))
