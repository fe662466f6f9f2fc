"""Grouped, dilated and non-square convs as SCALE-Sim layers, Linear on tokens, and the report of
FLOP-carrying ops no layer handle prices.

A grouped/dilated conv's SCALE-Sim layers must have its MACs (vs `FlopCounterMode`) and touch
exactly its ifmap words: counted by brute force over the input positions the PyTorch conv
reads, against the DRAM ifmap reads the engine gives when every word fits the read buffer. With
physical counts (zero padding never fetched) the same holds for the real input words, and the
SRAM ifmap reads are the (output, tap) pairs that land on real input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ddi_energy.engines.analytic import AnalyticEngine
from ddi_energy.engines.physical import PhysicalEngine
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import from_dict
from ddi_energy.workload.shapes import Layer
from ddi_energy.workload.walker import walk_model

# Buffers far larger than any layer here: DRAM ifmap reads = distinct ifmap words touched.
BIG = from_dict({"name": "big", "word_bits": 8, "array": {"rows": 4, "cols": 5}, "dataflow": "os",
                 "sram_kB": {"ifmap": 1024, "filter": 1024, "ofmap": 1024},
                 "energy_pj": {"dram": 100.0, "sram": 2.0, "rf": 0.5, "mac": 0.25}}, "test")


def flops(model: nn.Module, size: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *size))
    return counter.get_total_flops()


def touched_words(conv: nn.Conv2d, h: int, w: int) -> int:
    """Distinct padded-input positions the conv reads, times its input channels."""
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    (ph, pw) = conv.padding
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    rows = {y * sh + dh * i for y in range(oh) for i in range(kh)}
    cols = {x * sw + dw * j for x in range(ow) for j in range(kw)}
    return len(rows) * len(cols) * conv.in_channels


def real_reads(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int]:
    """(distinct real input words the conv reads, (output pixel, tap, channel) triples that land
    on real input), by brute force over PyTorch's indexing."""
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    (ph, pw) = conv.padding
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    rows = [y * sh + dh * i - ph for y in range(oh) for i in range(kh)]
    cols = [x * sw + dw * j - pw for x in range(ow) for j in range(kw)]
    real_rows, real_cols = [r for r in rows if 0 <= r < h], [c for c in cols if 0 <= c < w]
    words = len(set(real_rows)) * len(set(real_cols)) * conv.in_channels
    return words, len(real_rows) * len(real_cols) * conv.in_channels


CONVS = [
    # (in, out, kernel, stride, padding, dilation, groups, input h, w)
    (8, 8, 3, 1, 1, 1, 8, 9, 9),  # depthwise
    (8, 16, 3, 2, 1, 1, 8, 9, 9),  # depthwise, multiplier 2, stride 2
    (6, 9, 3, 1, 0, 1, 3, 7, 7),  # grouped
    (4, 4, 3, 1, 2, 2, 1, 8, 8),  # dilated, equal phases
    (4, 6, 3, 1, 3, 3, 2, 8, 7),  # dilated grouped, unequal phases
    (4, 4, 3, 2, 2, 2, 1, 11, 11),  # stride = dilation: one phase, stride 1 on the sub-grid
    (4, 4, 3, 2, 3, 3, 4, 11, 10),  # gcd 1: 3 phases of stride 2
    (4, 4, 2, 3, 1, 2, 1, 12, 12),  # stride 3 > kernel on the sub-grid: gaps stay gaps
    (4, 4, 3, 4, 1, 2, 1, 13, 13),  # gcd 2: one phase of stride 2
    (4, 4, (1, 3), 1, (0, 1), 1, 1, 6, 6),  # non-square kernel and padding
    (4, 4, (3, 2), 1, (2, 0), (2, 1), 1, 7, 6),  # dilation on one axis only
    (4, 4, 3, (2, 1), 1, (2, 1), 2, 9, 8),  # stride 2x1 with dilation 2x1: sub-grid strides 1
    (4, 4, 3, (2, 1), 0, 1, 1, 3, 9),  # stride 2x1 with one output row: SCALE-Sim stride 1
    (2, 2, 2, 1, 2, 2, 1, 1, 5),  # a phase whose rows are all zero padding
]


def walked(spec: tuple) -> tuple[nn.Conv2d, Layer, int, int]:
    """The conv of a `CONVS` entry, the layer the walker makes of it, and its input h, w."""
    c, k, kernel, stride, padding, dilation, groups, h, w = spec
    conv = nn.Conv2d(c, k, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)  # fmt: skip
    (layer,) = walk_model(conv, (c, h, w)).layers
    return conv, layer, h, w


@pytest.mark.parametrize("spec", CONVS)
def test_scalesim_layers_have_the_convs_macs_and_ifmap_words(spec):
    conv, layer, h, w = walked(spec)
    parts = layer.parts()
    macs = sum(n * s.macs for s, n in parts)
    assert 2 * macs == 2 * layer.macs == flops(conv, (conv.in_channels, h, w))
    assert sum(n for _, n in parts) == len(layer.sim_layers())
    counts = AnalyticEngine().counts([s for s, _ in parts], BIG, progress=False)
    assert sum(n * counts[s].dram_ifmap_reads for s, n in parts) == touched_words(conv, h, w)


@pytest.mark.parametrize("spec", CONVS)
def test_physical_parts_read_the_convs_real_input_only(spec):
    conv, layer, h, w = walked(spec)
    parts = layer.parts(padded=True)  # phases with equal shapes may differ in their padding
    assert sum(n * s.macs for s, n in parts) == layer.macs
    assert sum(n for _, n in parts) == len(layer.sim_layers())
    counts = PhysicalEngine().counts([s for s, _ in parts], BIG, progress=False)
    words, triples = real_reads(conv, h, w)
    assert sum(n * counts[s].dram_ifmap_reads for s, n in parts) == words
    # os: each group's column folds (ceil(K/g / cols)) stream its C/g channels' pairs once.
    passes = -(-(conv.out_channels // conv.groups) // BIG.cols)
    assert sum(n * counts[s].sram_ifmap_reads for s, n in parts) == passes * triples


def test_sim_layers_of_a_dilated_grouped_conv():
    conv = nn.Conv2d(4, 6, 3, padding=3, dilation=3, groups=2)
    (layer,) = walk_model(conv, (4, 8, 7)).layers
    names = [name for name, _ in layer.sim_layers()]
    # 8 outputs in 3 phases (3, 3, 2) by 7 in 3 phases (3, 2, 2), for each of 2 groups.
    assert len(names) == 2 * 9 and names[0] == "_g0_ph0x0" and names[-1] == "_g1_ph2x2"
    shapes = {(s.ifmap_h, s.ifmap_w, s.channels, s.filters, s.stride) for _, s in
              layer.sim_layers()}  # fmt: skip
    assert shapes == {(5, 5, 2, 3, 1), (5, 4, 2, 3, 1), (4, 5, 2, 3, 1), (4, 4, 2, 3, 1)}
    with pytest.raises(DDIError, match="use Layer.parts"):
        layer.shape()


@pytest.mark.parametrize(
    ("conv", "size", "words"),
    [
        (nn.Conv2d(4, 4, 3, stride=(2, 1)), (4, 9, 9), "stride 2x1"),
        (nn.Conv2d(4, 4, 3, stride=(1, 2), dilation=(2, 1)), (4, 9, 9), "stride 1x2"),
    ],
)
def test_strides_scalesim_cannot_express_are_refused(conv, size, words):
    with pytest.raises(DDIError, match=f"layer : {words}.*one stride"):
        walk_model(conv, size)


def test_linear_on_tokens():
    (layer,) = walk_model(nn.Linear(8, 3), (4, 5, 8)).layers  # 1 x 4 x 5 tokens of 8 features
    assert (layer.kind, layer.in_h, layer.in_w, layer.macs) == ("fc", 20, 1, 20 * 8 * 3)


class _Twice(nn.Conv2d):
    """A Conv2d subclass whose forward runs two convolutions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + super().forward(x)


def test_handled_module_running_other_flops_is_refused():
    with pytest.raises(DDIError, match="its forward ran 5184 FLOPs.*priced at 2592"):
        walk_model(_Twice(4, 4, 3), (4, 5, 5))


class _Mixed(nn.Module):
    """Priced layers among ops no cost table prices."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.rnn = nn.LSTM(8, 8, batch_first=True)
        self.c3 = nn.Conv3d(1, 1, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        t = x.flatten(2).transpose(1, 2)  # 16 tokens of 8
        a, _ = self.attn(t, t, t, need_weights=False)
        s = F.scaled_dot_product_attention(a.unsqueeze(1), a.unsqueeze(1), a.unsqueeze(1))
        r, _ = self.rnn(s.squeeze(1))
        v = torch.mv(r[0], r[0, 0])
        y = F.conv2d(x, x.new_ones(8, 8, 1, 1))
        z = self.c3(y[:, :1].unsqueeze(1))
        return self.fc(r).mean() + v.sum() + z.mean()


def test_unpriced_ops_named_with_module_and_flops():
    model = _Mixed()
    walk = walk_model(model, (3, 4, 4))
    assert [layer.name for layer in walk.layers] == ["conv", "fc"]
    kinds = {k.kind: k for k in walk.unpriced}
    assert set(kinds) == {"aten._native_multi_head_attention", "aten.mkldnn_rnn_layer",
                          "aten._scaled_dot_product_flash_attention_for_cpu", "aten.mv",
                          "aten.convolution (conv2d)",
                          "aten.convolution (conv3d)"}  # fmt: skip
    assert kinds["aten.convolution (conv3d)"].modules == ("c3",)
    assert kinds["aten.convolution (conv2d)"].modules == ("<_Mixed.forward>",)
    assert kinds["aten.mv"].flops == 2 * 16 * 8
    rnn = kinds["aten.mkldnn_rnn_layer"]
    assert rnn.flops is None and "FLOPs unknown" in rnn.line() and walk.unpriced[0] is rnn
    # The fast path's formula equals what FlopCounterMode counts on the slow path that computes
    # attention with bmm (need_weights=True; without, its SDPA kernel is counted as 0 there).
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    t = torch.zeros(1, 16, 8)
    with FlopCounterMode(display=False) as counter:
        attn.train()(t, t, t, need_weights=True)
    assert kinds["aten._native_multi_head_attention"].flops == counter.get_total_flops()
    # scaled_dot_product_attention: QK^T and AV of 16 tokens x 8 features, FlopCounterMode's rule.
    assert kinds["aten._scaled_dot_product_flash_attention_for_cpu"].flops == 2 * (2 * 16 * 16 * 8)
    known = [k for k in walk.unpriced if k.flops is not None]
    priced = 2 * sum(layer.macs for layer in walk.layers)
    assert priced + sum(k.flops for k in known) == walk.flops
    assert sum(k.share for k in known) == pytest.approx(1 - priced / walk.flops)
