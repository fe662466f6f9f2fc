"""CIFAR ResNets of depth 6n+2 (He et al. 2016, Sec. 4.2), the paper's ResNet backbones.

Stem 3×3 conv 3→16, three stages of n BasicBlocks (widths 16/32/64, stride 2 at the first block
of stages 2 and 3), global average pool, FC 64→num_classes. Where a block changes shape its
shortcut is a 1×1 stride-2 conv projection + BN (option B), which is what reproduces the
paper's FLOPs (see shared/notes/dynamic-inference.md).

Module names: `conv1` (stem), `stage{s}.{i}.conv1|conv2` (block i of stage s, 0-indexed),
`stage{s}.0.shortcut.0` (projection conv), `fc`.

Gate design (annotations only; no gating is implemented here). Every block, including the
first of the network, is layer-gated by a gate named after the block ("stage2.3"): skipping the
block skips its conv1 and conv2. The block's channel gate masks its INTERNAL channels (conv1's
output = conv2's input), the only channels whose removal saves work in both convs without
breaking the residual sum, so conv1 is annotated `(block, block, "out")` and conv2
`(block, block, "in")`. The projection shortcut is ungated: a skipped block still outputs the
shortcut of its input (SkipNet semantics), so that conv always runs. Stem and FC are ungated.
"""

from __future__ import annotations

from torch import Tensor, nn

from ddi_energy.workload.annotations import set_gate

WIDTHS = (16, 32, 64)


def init_resnet_weights(model: nn.Module) -> None:
    """He init (fan out) for convs, BN at identity, zero FC biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus shortcut, then ReLU."""

    conv_bn = (("conv1", "bn1"), ("conv2", "bn2"))  # BN right after conv: foldable at inference

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2) on 32×32 inputs."""

    input_size: tuple[int, int, int] = (3, 32, 32)
    conv_bn = (("conv1", "bn1"),)

    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"blocks per stage must be >= 1, got {n}")
        self.n = n
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = WIDTHS[0]
        stages = []
        for s, planes in enumerate(WIDTHS):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        init_resnet_weights(self)
        self._annotate_gates()

    def _annotate_gates(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, BasicBlock):
                set_gate(m.conv1, name, name, "out")
                set_gate(m.conv2, name, name, "in")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))
