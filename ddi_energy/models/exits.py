"""RADI early-exit branches (paper Sec. III-B, Fig. 5, IV-A).

Branches sit after the units at ~1/4 and ~3/4 of every stage. A branch max-pools (stride 2)
down to 8×8 first (coarse features from early, high-resolution maps, at little cost), then a 1×1
conv to at most `EXIT_WIDTH` channels, one more max-pool and a 3×3 conv at 4×4, global average
pool and a classifier. On the CIFAR ResNets a branch costs 0.1-1.7 MFLOPs (a residual block is
9.4 MFLOPs); on DenseNet-BC-100 1.5-4 MFLOPs.
"""

from __future__ import annotations

from torch import nn

EXIT_WIDTH = 64


def exit_positions(units_per_stage: int) -> list[int]:
    """0-based unit indices within a stage after which a branch sits (~1/4 and ~3/4 depth)."""
    n = units_per_stage
    return sorted({max(1, round(n / 4)) - 1, max(1, round(3 * n / 4)) - 1})


def _conv_bn_relu(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]  # fmt: skip


class ExitBranch(nn.Sequential):
    """A small CNN classifier on a (channels, size, size) feature map."""

    def __init__(self, channels: int, size: int, num_classes: int) -> None:
        input_size = (channels, size, size)
        width = min(channels, EXIT_WIDTH)
        layers: list[nn.Module] = []
        while size > 8:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        layers += _conv_bn_relu(channels, width, 1)
        if size > 4:
            layers.append(nn.MaxPool2d(2))
        layers += [*_conv_bn_relu(width, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(width, num_classes)]  # fmt: skip
        super().__init__(*layers)
        self.input_size = input_size  # for the layer walker
