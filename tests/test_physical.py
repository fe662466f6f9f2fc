"""Physical counts: hand-derived small layers, where they keep SCALE-Sim's model they equal live
SCALE-Sim, and the invariants over every unique network shape on os, ws and is.

Network shapes are those of the SCALE-Sim sweeps in test_analytic.py (ResNet-38/74 with each
gated axis swept 1..full, DenseNet-100's full layers), with their real padding. The compulsory
footprint and the real outputs come from PyTorch: the input elements a conv's output depends
on, and the output's size.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from scalesim_buffers import scalesim_compute, scalesim_read_buffer

from ddi_energy.engines.analytic import analytic_counts
from ddi_energy.engines.ifmap_demand import os_runs, previous_demands
from ddi_energy.engines.physical import PhysicalEngine, physical_counts
from ddi_energy.engines.read_buffer import epoch_words, replay_previous, replay_runs
from ddi_energy.engines.scalesim_engine import ScaleSimEngine
from ddi_energy.hardware.config import HardwareConfig, from_dict
from ddi_energy.models.zoo import walk_arch
from ddi_energy.workload.shapes import REPORT_FIELDS, AccessCounts, ConvShape, PaddedShape


def make_hw(dataflow: str, kb=(64, 64, 64), array=(4, 4)) -> HardwareConfig:
    return from_dict(
        {
            "name": "t",
            "word_bits": 8,
            "array": {"rows": array[0], "cols": array[1]},
            "dataflow": dataflow,
            "sram_kB": dict(zip(("ifmap", "filter", "ofmap"), kb, strict=True)),
            "energy_pj": {"dram": 100, "sram": 1, "rf": 0.1, "mac": 0.1},
        },
        "test",
    )


# 3x3 conv, padding 1, on a 4x4x2 input, 3 filters: padded extent 6x6, 16 outputs, T = 18.
# Along each axis the 4 outputs x 3 taps hit the real rows 1..4 in 3 + 4 + 3 = 10 pairs.
CONV3_PAD1 = PaddedShape(6, 6, 3, 3, 2, 3, 1, padding=1, in_h=4, in_w=4)


def counts(**kw) -> AccessCounts:
    return AccessCounts(**kw)


def test_os_outputs_once_and_no_padding_traffic():
    """4x4 array: rf = ceil(16/4) = 4 row folds, cf = 1; big buffers."""
    got = physical_counts(CONV3_PAD1, make_hw("os"))
    assert got == counts(
        cycles=4 * 1 * (18 + 4 + 4 - 2) - 1,  # SCALE-Sim's: rf*cf*(T+Ra+Ca-2) - 1
        sram_ifmap_reads=1 * 10 * 10 * 2,  # cf passes x real (pixel, tap) pairs (288 padded)
        sram_filter_reads=4 * 18 * 3,  # rf * T * K
        sram_ofmap_writes=16 * 3,  # once per output (SCALE-Sim: + rf*cf*(4+4) = 80)
        dram_ifmap_reads=4 * 4 * 2,  # the real input (SCALE-Sim: 6*6*2 = 72)
        dram_filter_reads=18 * 3,
        dram_ofmap_writes=16 * 3,
        sram_ofmap_reads=0,
        dram_ofmap_reads=0,
    )


def test_ws_partial_sums_accumulate_in_the_buffer():
    """rf = ceil(18/4) = 5 row folds: 5 writes and 4 read-backs per output; the 16 x 3 tile fits
    half of the 64 K-word ofmap buffer, so DRAM sees the 48 outputs once."""
    got = physical_counts(CONV3_PAD1, make_hw("ws"))
    assert got == counts(
        cycles=5 * 1 * (2 * 4 + 4 + 16 - 2) - 1,  # rf*cf*(2Ra+Ca+Np-2) - 1
        sram_ifmap_reads=200,
        sram_filter_reads=54,  # T * K: each weight loaded once
        sram_ofmap_writes=5 * 48,
        dram_ifmap_reads=32,
        dram_filter_reads=54,
        dram_ofmap_writes=48,  # SCALE-Sim: 5 * 48 = 240
        sram_ofmap_reads=4 * 48,
        dram_ofmap_reads=0,
    )


def test_ws_spills_what_half_the_ofmap_buffer_cannot_hold():
    """1x1 conv on 24x24x10, 3 filters; 1 kB ofmap buffer = 1024 words, 512 hold partial sums.
    rf = ceil(10/4) = 3; one column fold of 3 filters: tile 576 * 3 = 1728 words, 1216 spill
    after each of the first two folds and are read back before the next."""
    shape = PaddedShape.unpadded(ConvShape(24, 24, 1, 1, 10, 3, 1))
    got = physical_counts(shape, make_hw("ws", kb=(64, 64, 1)))
    assert got == counts(
        cycles=3 * (8 + 4 + 576 - 2) - 1,
        sram_ifmap_reads=576 * 10,
        sram_filter_reads=30,
        sram_ofmap_writes=3 * 1728,
        dram_ifmap_reads=576 * 10,
        dram_filter_reads=30,
        dram_ofmap_writes=1728 + 2 * 1216,
        sram_ofmap_reads=2 * 1728,
        dram_ofmap_reads=2 * 1216,
    )


def test_is_strided_1x1_touches_a_quarter():
    """1x1 stride-2 conv on an 8x8x10 input: outputs 4x4 read rows/cols 0, 2, 4, 6 only (the
    SCALE-Sim extent is 7x7). IS: rf = ceil(10/4) = 3, cf = ceil(16/4) = 4 pixel folds."""
    shape = PaddedShape(7, 7, 1, 1, 10, 5, 2, padding=0, in_h=8, in_w=8)
    got = physical_counts(shape, make_hw("is"))
    assert got == counts(
        cycles=3 * 4 * (2 * 4 + 4 + 5 - 2) - 1,  # rf*cf*(2Ra+Ca+K-2) - 1
        sram_ifmap_reads=10 * 16,  # T * Np
        sram_filter_reads=4 * 10 * 5,  # cf * T * K
        sram_ofmap_writes=3 * 80,
        dram_ifmap_reads=4 * 4 * 10,  # a quarter of the 8*8*10 input
        dram_filter_reads=50,
        dram_ofmap_writes=80,
        sram_ofmap_reads=2 * 80,
        dram_ofmap_reads=0,
    )


def test_engine_and_plain_shapes():
    hw = make_hw("ws")
    plain = ConvShape(6, 6, 3, 3, 2, 3, 1)
    engine = PhysicalEngine()
    out = engine.counts([CONV3_PAD1, plain, CONV3_PAD1], hw, progress=False)
    assert engine.name == "physical" and list(out) == [CONV3_PAD1, plain]
    assert out[plain] == physical_counts(PaddedShape.unpadded(plain), hw)
    assert out[plain].dram_ifmap_reads == 72 > out[CONV3_PAD1].dram_ifmap_reads == 32


# ------------------------------------------------------------------ against live SCALE-Sim


def without_padding(demand: np.ndarray, shape: PaddedShape) -> np.ndarray:
    """SCALE-Sim's ifmap demand matrix with the padding addresses made idle (-1); its ifmap
    addresses are NHWC, (y * W + x) * C + ch, from offset 0."""
    (y0, y1), (x0, x1) = shape.real_rows(), shape.real_cols()
    y, x = np.divmod(demand // shape.channels, shape.ifmap_w)
    real = (demand >= 0) & (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    return np.where(real, demand, -1)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_padding_free_reads_replay_scalesims_buffer(dataflow, tmp_path):
    """A 1 kB ifmap buffer (500-word epochs) re-fetches the 12x12x5 input: the physical count is
    SCALE-Sim's own buffer fed SCALE-Sim's own demand matrix without the padding addresses;
    so is each replay the engine may pick (OS: by runs of channels too)."""
    shape = PaddedShape(14, 14, 3, 3, 5, 9, 1, padding=1, in_h=12, in_w=12)
    hw = make_hw(dataflow, kb=(1, 64, 64))
    demand = scalesim_compute(shape, hw, tmp_path).get_ifmap_demand_mat()
    expected = scalesim_read_buffer(without_padding(demand, shape), 1)
    assert physical_counts(shape, hw).dram_ifmap_reads == expected > 12 * 12 * 5
    real, epoch = (shape.real_rows(), shape.real_cols()), epoch_words(1)
    assert replay_previous(*previous_demands(shape, dataflow, 4, 4, real), epoch) == expected
    if dataflow == "os":
        assert replay_runs(os_runs(shape, 4, 4, real), epoch) == expected


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_kept_counts_equal_live_scalesim(dataflow, tmp_path):
    """Unpadded layers with small buffers (re-fetches): cycles, ifmap/filter reads of SRAM and
    DRAM are SCALE-Sim's; the ofmap columns differ by exactly its artefacts."""
    shapes = [ConvShape(10, 10, 3, 3, 5, 7, 1), ConvShape(12, 12, 3, 3, 8, 13, 1),
              ConvShape(9, 9, 1, 1, 11, 5, 2)]  # fmt: skip
    hw = make_hw(dataflow, kb=(1, 1, 1), array=(8, 6))
    real = ScaleSimEngine(cache_dir=tmp_path).counts(shapes, hw, progress=False)
    for shape in shapes:
        got, sim = physical_counts(shape, hw), real[shape]
        kept = ("cycles", "sram_ifmap_reads", "sram_filter_reads", "dram_ifmap_reads",
                "dram_filter_reads")  # fmt: skip
        assert {f: getattr(got, f) for f in kept} == {f: getattr(sim, f) for f in kept}
        outputs = shape.ofmap_pixels * shape.filters
        if dataflow == "os":
            folds = -(-shape.ofmap_pixels // 8) * -(-shape.filters // 6)
            assert got.sram_ofmap_writes == sim.sram_ofmap_writes - folds * (8 + 6) == outputs
        else:
            assert got.sram_ofmap_writes == sim.sram_ofmap_writes
            rf = -(-shape.window // 8)
            assert got.sram_ofmap_reads == (rf - 1) * outputs


# ------------------------------------------------------------------ network invariants


def network_shapes() -> dict[PaddedShape, str]:
    """ResNet-38/74 rows with each gated axis swept 1..full, DenseNet-100 full layers."""
    shapes: dict[PaddedShape, str] = {}
    for arch in ("resnet38", "resnet74", "densenet100"):
        for layer in walk_arch(arch):
            full = (layer.in_channels, layer.out_channels)
            shapes.setdefault(layer.padded_shape(*full), f"{arch}/{layer.name}")
            if arch == "densenet100" or layer.channel_axis is None:
                continue
            for n in range(1, layer.gated_channels + 1):
                chans = (n, full[1]) if layer.channel_axis == "in" else (full[0], n)
                shapes.setdefault(layer.padded_shape(*chans), f"{arch}/{layer.name}")
    return shapes


@functools.cache
def torch_window(in_h: int, in_w: int, filt: tuple[int, int], stride: int, pad: int):
    """(input pixels any window touches, output pixels) of PyTorch's im2col (`unfold`) on one
    channel whose pixels are numbered 1..H*W; zero padding shows up as 0."""
    x = torch.arange(1, in_h * in_w + 1, dtype=torch.float64).view(1, 1, in_h, in_w)
    cols = torch.nn.functional.unfold(x, filt, padding=pad, stride=stride)
    return int(torch.unique(cols[cols > 0]).numel()), cols.shape[-1]


def torch_truth(shape: PaddedShape) -> tuple[int, int]:
    """(compulsory ifmap words, real outputs) of the layer as PyTorch runs it."""
    filt = (shape.filter_h, shape.filter_w)
    touched, pixels = torch_window(shape.in_h, shape.in_w, filt, shape.stride, shape.padding)
    return touched * shape.channels, pixels * shape.filters


def check_invariants(shapes: dict[PaddedShape, str], hw: HardwareConfig) -> int:
    """Assert the invariants on every shape; returns how many shapes spill partial sums."""
    held = 1024 * hw.scalesim_kb()[2] // 2
    problems, spilled = [], 0
    for shape, name in shapes.items():
        got, replica = physical_counts(shape, hw), analytic_counts(shape, hw)
        footprint, outputs = torch_truth(shape)
        tile = (shape.ofmap_pixels * min(shape.filters, hw.cols) if hw.dataflow == "ws"
                else shape.filters * min(shape.ofmap_pixels, hw.cols))  # fmt: skip
        checks = {
            "ifmap DRAM >= footprint": got.dram_ifmap_reads >= footprint,
            "filter DRAM >= weights": got.dram_filter_reads >= shape.window * shape.filters,
            "not above the replica": all(
                getattr(got, f) <= getattr(replica, f) for f in REPORT_FIELDS
            ),
        }
        if hw.dataflow == "os":
            checks["os ofmap SRAM writes = outputs"] = got.sram_ofmap_writes == outputs
        if hw.dataflow == "os" or tile <= held:
            checks["DRAM ofmap = outputs when the tile fits"] = (
                got.dram_ofmap_writes == outputs and got.dram_ofmap_reads == 0
            )
        elif shape.window > hw.rows:  # more than one row fold: partial sums spill
            checks["spills are read back"] = got.dram_ofmap_reads > 0
        problems += [f"{name} {shape}: {c}" for c, ok in checks.items() if not ok]
        spilled += got.dram_ofmap_reads > 0
    assert not problems, f"{len(problems)} failures, first: {problems[:3]}"
    return spilled


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_network_invariants(dataflow):
    """Eyeriss-sized array, 64 kB buffers: every partial-sum tile fits."""
    check_invariants(network_shapes(), make_hw(dataflow, array=(12, 14)))


def test_network_invariants_with_spills():
    """A 1 kB ofmap buffer spills most WS tiles (60 seeded shapes; all of them: -m slow)."""
    shapes = network_shapes()
    picked = dict(random.Random(0).sample(sorted(shapes.items()), 60))
    assert check_invariants(picked, make_hw("ws", kb=(4, 4, 1), array=(12, 14))) > 30


@pytest.mark.slow
@pytest.mark.parametrize("kb", [(4, 4, 1), (16, 16, 16)], ids=["tiny", "small"])
@pytest.mark.parametrize("array", [(12, 14), (32, 32), (8, 8)], ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_network_invariants_small_buffers(dataflow, array, kb):
    """Buffers that force re-fetches and partial-sum spills."""
    check_invariants(network_shapes(), make_hw(dataflow, kb=kb, array=array))
