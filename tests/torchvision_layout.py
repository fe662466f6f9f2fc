"""Reference networks in torchvision's module layout (torchvision itself does not import beside
torch 2.13 CPU here), written for the tests from torchvision's published architecture: the same
module names, nesting and forward order, so their state dicts have torchvision's keys.

- `TvDenseNet`: `features` = conv0, norm0, relu0, pool0, denseblock{i} (denselayer{j}: norm1,
  relu1, conv1, norm2, relu2, conv2; each layer sees the concatenation of all earlier features),
  transition{i} (norm, relu, conv, pool), norm5; then ReLU, global average pool, `classifier`.
- `TvResNet`: conv1, bn1, relu, maxpool, layer1..4 of bottlenecks (conv1/bn1, conv2/bn2 with the
  stride, conv3/bn3, downsample = conv + BN), avgpool, fc.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TvDenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth, 1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, stride=1, padding=1, bias=False)

    def forward(self, features: list[Tensor]) -> Tensor:
        bottleneck = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(bottleneck)))


class TvDenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, c_in: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", TvDenseLayer(c_in + i * growth, growth, bn_size))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class TvTransition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class TvDenseNet(nn.Module):
    def __init__(self, growth: int = 32, blocks: tuple[int, ...] = (6, 12, 48, 32),
                 init_features: int = 64, bn_size: int = 4, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, init_features, 7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, stride=2, padding=1)),
        ]))  # fmt: skip
        c = init_features
        for i, layers in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", TvDenseBlock(layers, c, growth, bn_size))
            c += layers * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", TvTransition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(out, 1))


class TvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, stride=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class TvResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, (blocks, width) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            self.add_module(f"layer{i + 1}", self._make_layer(width, blocks, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def _make_layer(self, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != width * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, width * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width * 4))  # fmt: skip
        layers = [TvBottleneck(self.inplanes, width, stride, downsample)]
        self.inplanes = width * 4
        layers += [TvBottleneck(self.inplanes, width, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights (He-scaled) and random BN affine parameters and running statistics, so
    that every key matters for the logits; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, (2 / m.weight[0].numel()) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-0.5, 0.5, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                for t, lo, hi in ((m.weight, 0.6, 1.2), (m.bias, -0.2, 0.2),
                                  (m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5)):
                    t.uniform_(lo, hi, generator=g)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model.eval()


def old_densenet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The same weights under the older torchvision DenseNet keys (`denselayer1.norm.1.weight`
    for `denselayer1.norm1.weight`), without `num_batches_tracked` (older checkpoints have none)."""
    pattern = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
    return {pattern.sub(r"\1.\2.", k): v for k, v in state.items()
            if not k.endswith("num_batches_tracked")}  # fmt: skip
