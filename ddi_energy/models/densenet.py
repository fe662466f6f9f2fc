"""DenseNet-BC (Huang et al. 2017): the paper's DenseNet100 (CIFAR) and DenseNet201 (ImageNet).

Dense layer = BN-ReLU-1×1 conv (in → 4k) - BN-ReLU-3×3 conv (4k → k, pad 1); its k new
channels are concatenated to its input. Transition = BN-ReLU-1×1 conv (compression 0.5) -
2×2 average pool. Head = BN-ReLU-global average pool-FC.

- densenet100: 3×3 conv 3→2k stem on 32×32, 3 blocks of 16 layers, 10 classes.
- densenet201: 7×7 stride-2 conv 3→64 + BN-ReLU + 3×3 stride-2 max pool on 224×224, blocks of
  (6, 12, 48, 32) layers, k=32, 1000 classes (torchvision's layout).

Module names: `conv1` (stem; ImageNet: then `bn1` and `maxpool`), `block{b}.layer{l}.conv1|conv2`
(both 1-indexed, like torchvision's denseblock/denselayer), `trans{b}.conv`, `bn`, `fc`
(`ddi_energy.models.pretrained` maps torchvision's names onto these).

Gate design (annotations only; no gating is implemented here). Every dense layer is layer-gated
by a gate named after it ("block1.layer3"); skipping it skips both of its convs. Its channel gate
masks the bottleneck channels (1×1 conv output = 3×3 conv input), so conv1 is annotated
`(dl, dl, "out")` and conv2 `(dl, dl, "in")`: masking the k output channels instead would change
the width every later layer concatenates, masking inputs would save only the 1×1 conv. Stem,
transition convs and FC are ungated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ddi_energy.workload.annotations import set_gate


class DenseLayer(nn.Module):
    """Bottleneck dense layer; returns only its `growth` new channels."""

    def __init__(self, in_channels: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        inter = bn_size * growth
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inter, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inter)
        self.conv2 = nn.Conv2d(inter, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(out)))


class DenseBlock(nn.Module):
    """`num_layers` dense layers, each seeing the concatenation of everything before it."""

    def __init__(self, num_layers: int, in_channels: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"layer{i + 1}", DenseLayer(in_channels + i * growth, growth, bn_size))
        self.out_channels = in_channels + num_layers * growth

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class Transition(nn.Module):
    """BN-ReLU-1×1 conv-2×2 average pool between dense blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(self.relu(self.bn(x))))


def add_stem(model: nn.Module, features: int, imagenet: bool) -> None:
    """Give `model` a DenseNet stem (`conv1`, ImageNet also `bn1`, `maxpool`) and its input size;
    `DenseNet.stem` runs it."""
    model.input_size = (3, 224, 224) if imagenet else (3, 32, 32)
    model.imagenet_stem = imagenet
    if imagenet:
        model.conv1 = nn.Conv2d(3, features, 7, stride=2, padding=3, bias=False)
        model.bn1 = nn.BatchNorm2d(features)
        model.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    else:
        model.conv1 = nn.Conv2d(3, features, 3, padding=1, bias=False)


class DenseNet(nn.Module):
    """DenseNet-BC with a CIFAR (3×3 conv) or ImageNet (7×7/2 conv + max pool) stem."""

    def __init__(
        self,
        growth: int,
        block_config: tuple[int, ...],
        num_init_features: int,
        num_classes: int,
        imagenet_stem: bool,
        compression: float = 0.5,
        bn_size: int = 4,
    ) -> None:
        super().__init__()
        add_stem(self, num_init_features, imagenet_stem)
        channels = num_init_features
        self._feature_names: list[str] = []  # blocks and transitions in execution order
        for b, num_layers in enumerate(block_config, start=1):
            block = DenseBlock(num_layers, channels, growth, bn_size)
            self.add_module(f"block{b}", block)
            self._feature_names.append(f"block{b}")
            channels = block.out_channels
            if b < len(block_config):
                out = int(channels * compression)
                trans = Transition(channels, out)
                self.add_module(f"trans{b}", trans)
                self._feature_names.append(f"trans{b}")
                channels = out
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()
        self._annotate_gates()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _annotate_gates(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, DenseLayer):
                set_gate(m.conv1, name, name, "out")
                set_gate(m.conv2, name, name, "in")

    def stem(self, x: Tensor) -> Tensor:
        """7×7/2 conv-BN-ReLU-3×3/2 max pool (ImageNet) or the 3×3 conv alone (CIFAR)."""
        x = self.conv1(x)
        return self.maxpool(torch.relu(self.bn1(x))) if self.imagenet_stem else x

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in self._feature_names:
            x = getattr(self, name)(x)
        x = self.pool(self.relu(self.bn(x)))
        return self.fc(x.flatten(1))
