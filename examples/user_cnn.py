"""A small network of the kinds `ddi-energy profile --model` takes, for the README and tests.

    ddi-energy profile --model examples/user_cnn.py:build --input-size 3,16,16 --hw eyeriss
    ddi-energy profile --model examples/user_cnn.py:build_with_matmul --hw eyeriss   # refused

It has depthwise-separable blocks (3×3 depthwise + 1×1 pointwise), a dilated grouped conv
(dilation 3, 4 groups) and a Linear applied to 64 tokens. `build_with_matmul` adds a token
self-similarity `torch.matmul`, which no cost table row prices.
"""

from __future__ import annotations

import torch
from torch import nn


class Separable(nn.Module):
    """3×3 depthwise conv (one filter per channel) then 1×1 pointwise conv, BN-ReLU after each."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.pw(torch.relu(self.bn1(self.dw(x))))))


class TokenCNN(nn.Module):
    """16×16 input → separable blocks and a dilated grouped context conv → 64 tokens → Linear."""

    input_size = (3, 16, 16)

    def __init__(self, num_classes: int = 10, self_similarity: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = Separable(8, 16, stride=2)
        self.context = nn.Conv2d(16, 16, 3, padding=3, dilation=3, groups=4)
        self.b2 = Separable(16, 24, stride=1)
        self.mix = nn.Linear(24, 32)
        self.head = nn.Linear(32, num_classes)
        self.self_similarity = self_similarity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b2(torch.relu(self.context(self.b1(torch.relu(self.stem(x))))))
        tokens = x.flatten(2).transpose(1, 2)  # (batch, 64 tokens, 24 features)
        if self.self_similarity:
            weights = torch.softmax(torch.matmul(tokens, tokens.transpose(1, 2)), dim=-1)
            tokens = torch.matmul(weights, tokens)
        return self.head(torch.relu(self.mix(tokens)).mean(1))


def build() -> nn.Module:
    return TokenCNN()


def build_with_matmul() -> nn.Module:
    return TokenCNN(self_similarity=True)
