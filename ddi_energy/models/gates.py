"""Gating networks of MGL2S (paper Sec. III-A2, IV-A) and the straight-through estimator.

- `RecurrentGate`: SkipNet's layer gate, one LSTM (hidden 10) shared by every unit, fed by a
  per-unit global-average-pool → 1×1 conv to an embedding of 10, read out by a linear layer
  (to 1 output for layer gating, or to k outputs per unit for the `channel-rnn` variant).
- `ChannelGateCNN`: the paper's CNN channel gate, 3×3 stride-2 conv c→c → BN-ReLU → global
  average pool → FC c×k.
- `LightChannelGate`: the paper's light CNN gate for wide inputs (DenseNet, Fig. 4(b); also our
  ResNet-50), a strided, narrow copy of a bottleneck, where a c→c 3×3 conv would cost more than
  the unit it gates.

The LSTM is written with two `nn.Linear`s instead of `nn.LSTMCell` so that the matmuls
`FlopCounterMode` sees are exactly the layers our cost accounting lists.

Speed: a gate step runs on a (B, 10) vector, where every PyTorch operator costs its fixed
overhead (µs) and nothing else, so the steps are written in as few operators as possible: the
1×1 projection of the pooled map as one matmul, the LSTM step as ATen's `torch.lstm_cell` (one
call from Python; its two matmuls are still the `ih` and `hh` layers `FlopCounterMode` sees),
no `nn.Module` call inside a step, and (without autograd) the weights looked up once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ddi_energy.models.gated_ops import spatial_mean
from ddi_energy.workload.shapes import Layer

EMBED = 10  # SkipNet/paper: 1×1 conv to 10, LSTM hidden size 10

LstmState = tuple[Tensor, Tensor]


def straight_through(p: Tensor) -> Tensor:
    """Hard {0,1} decisions (p > 0.5) in the forward pass, d/dp = 1 in the backward pass."""
    hard = (p > 0.5).to(p.dtype)
    return hard + p - p.detach()


def fc_layer(name: str, linear: nn.Linear) -> Layer:
    """An `nn.Linear` applied to one vector per input, as a 1×1 conv on a 1×1 map."""
    return Layer(name, "fc", 1, 1, 0, 1, 1, linear.in_features, linear.out_features, 1)


def conv_layer(name: str, conv: nn.Conv2d, in_h: int, in_w: int) -> Layer:
    return Layer(name, "conv", in_h, in_w, int(conv.padding[0]), conv.kernel_size[0],
                 conv.kernel_size[1], conv.in_channels, conv.out_channels, int(conv.stride[0]))


class LinearLSTMCell(nn.Module):
    """An LSTM cell whose two matmuls are visible `nn.Linear`s."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(n_in, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden, bias=False)

    def zero_state(self, batch: int, like: Tensor) -> LstmState:
        z = like.new_zeros((batch, self.hidden))
        return z, z

    def forward(self, x: Tensor, state: LstmState) -> tuple[Tensor, LstmState]:
        h, c = torch.lstm_cell(x, state, self.ih.weight, self.hh.weight, self.ih.bias)
        return h, (h, c)


class RecurrentGate(nn.Module):
    """A recurrent gate over a sequence of units: one shared LSTM, a 1×1 embedding per unit.

    `outputs[u]` is the number of decisions for unit u: 1 for a layer gate, k for a channel gate.
    A shared readout is used when every unit has one output (SkipNet), a per-unit one otherwise.
    """

    def __init__(self, in_channels: list[int], outputs: list[int], init_bias: float) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, EMBED, 1) for c in in_channels)
        self.cell = LinearLSTMCell(EMBED, EMBED)
        self.shared = all(k == 1 for k in outputs)
        heads = [nn.Linear(EMBED, 1)] if self.shared else [nn.Linear(EMBED, k) for k in outputs]
        self.heads = nn.ModuleList(heads)
        for head in self.heads:
            nn.init.constant_(head.bias, init_bias)
        self._cache: dict[int, tuple[Tensor, ...]] = {}  # see `_weights`

    def head(self, unit: int) -> nn.Linear:
        return self.heads[0 if self.shared else unit]

    def forward(self, unit: int, x: Tensor, state: LstmState | None) -> tuple[Tensor, LstmState]:
        """Probabilities (B, outputs[unit]) for unit `unit` given its input feature map."""
        proj_t, proj_b, ih_w, ih_b, hh_w, head_t, head_b = self._weights(unit)
        e = torch.addmm(proj_b, spatial_mean(x), proj_t)  # the 1×1 conv of the pooled map
        if state is None:
            state = self.cell.zero_state(x.shape[0], e)
        h, c = torch.lstm_cell(e, state, ih_w, hh_w, ih_b)
        return torch.sigmoid(torch.addmm(head_b, h, head_t)), (h, c)

    def _weights(self, unit: int) -> tuple[Tensor, ...]:
        """Unit `unit`'s step weights: the LSTM's as they are, the others as transposed views.

        Without autograd they are kept between calls: finding seven parameters through
        `nn.Module` attribute lookups cost about a third of a batch-1 step. Views follow
        in-place updates (optimizer steps); `_apply` (`.to()`, `.half()`), `load_state_dict`
        and copies start a new cache.
        """
        if torch.is_grad_enabled():
            return self._make_weights(unit)
        cached = self._cache.get(unit)
        if cached is None:
            cached = self._cache[unit] = self._make_weights(unit)
        return cached

    def _make_weights(self, unit: int) -> tuple[Tensor, ...]:
        proj, cell, head = self.proj[unit], self.cell, self.head(unit)
        return (proj.weight.flatten(1).t(), proj.bias, cell.ih.weight, cell.ih.bias,
                cell.hh.weight, head.weight.t(), head.bias)  # fmt: skip

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> RecurrentGate:
        self._cache = {}
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        self._cache = {}  # `load_state_dict(..., assign=True)` replaces the parameters
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}

    def cost_layers(self, unit: int, prefix: str) -> list[Layer]:
        """The conv/FC layers one step of this gate runs for unit `unit`."""
        proj = self.proj[unit]
        return [
            conv_layer(f"{prefix}.proj", proj, 1, 1),
            fc_layer(f"{prefix}.lstm.ih", self.cell.ih),
            fc_layer(f"{prefix}.lstm.hh", self.cell.hh),
            fc_layer(f"{prefix}.head", self.head(unit)),
        ]


class ChannelGateCNN(nn.Module):
    """3×3/2 conv c→c, BN-ReLU, global average pool, FC c×k, sigmoid: k channel probabilities."""

    conv_bn = (("conv", "bn"),)
    channels_last = ("conv",)  # at inference, see `ddi_energy.models.inference`

    def __init__(self, in_channels: int, channels: int, init_bias: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(in_channels)
        self.fc = nn.Linear(in_channels, channels)
        nn.init.constant_(self.fc.bias, init_bias)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu_(self.bn(self.conv(x)))  # modules: the layer walker prices what they run
        return torch.sigmoid(self.fc(h.mean((2, 3))))


class LightChannelGate(nn.Module):
    """BN-ReLU-1×1 conv with stride 2 to `hidden` channels, BN-ReLU-3×3 conv to `features`,
    global average pool, FC features×k, sigmoid: k channel probabilities."""

    def __init__(self, in_channels: int, hidden: int, features: int, k: int,
                 init_bias: float) -> None:  # fmt: skip
        super().__init__()
        self.in_channels = in_channels
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, stride=2, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, features, 3, padding=1, bias=False)
        self.fc = nn.Linear(features, k)
        nn.init.constant_(self.fc.bias, init_bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(torch.relu(self.bn1(x)))
        h = self.conv2(torch.relu(self.bn2(h)))
        return torch.sigmoid(self.fc(h.mean((2, 3))))
