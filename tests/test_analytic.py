"""The analytic engine against the real SCALE-Sim 3.0.0: every count must be equal.

Fast tests: small layers on small arrays, buffers both too small for the operands (1 kB: ~500
words per read-buffer epoch, so operands are re-fetched and the ofmap buffer drains often) and
large enough (64 kB); the read-buffer replays against SCALE-Sim's own buffer class fed its own
demand matrices or random demand, the write buffer on random rows; an ImageNet-sized layer on
each dataflow. The slow tests cover every unique layer shape of the ResNet-38/74 channel
sweeps, every full layer of DenseNet-100 (layer granularity) and the largest ImageNet layers.
"""

from __future__ import annotations

import dataclasses
import os
import random

import numpy as np
import pytest
from scalesim_buffers import scalesim_compute, scalesim_read_buffer, scalesim_write_buffer

from ddi_energy.engines import read_buffer
from ddi_energy.engines.analytic import AnalyticEngine, analytic_counts
from ddi_energy.engines.ifmap_demand import os_runs, previous_demands
from ddi_energy.engines.read_buffer import (
    IDLE,
    distinct_reads,
    epoch_words,
    replay_previous,
    replay_runs,
)
from ddi_energy.engines.scalesim_engine import ScaleSimEngine
from ddi_energy.engines.write_buffer import dram_writes
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig, from_dict, load_hw
from ddi_energy.workload.shapes import ConvShape

SHAPES = {
    "conv3x3_s1": ConvShape(10, 10, 3, 3, 5, 7, 1),  # ifmap 500 words = one 1 kB epoch exactly
    "conv3x3_s2": ConvShape(9, 9, 3, 3, 6, 9, 2),
    "conv3x3_s2_ragged": ConvShape(10, 10, 3, 3, 4, 6, 2),  # ceil rule: last windows hang over
    "conv1x1_s2": ConvShape(9, 9, 1, 1, 11, 5, 2),  # reads 5x5 of the 9x9 pixels
    "conv7x7_s2": ConvShape(13, 13, 7, 7, 3, 8, 2),
    "conv3x3_wide": ConvShape(12, 12, 3, 3, 8, 13, 1),  # 1152 ifmap, 936 filter, 1300 ofmap words
    "fc": ConvShape(1, 1, 1, 1, 40, 10, 1),
}
ARRAYS = ((4, 4), (8, 6), (12, 14))
SMALL_KB, LARGE_KB = 1, 64


def make_hw(rows: int, cols: int, dataflow: str, kb: tuple[int, int, int]) -> HardwareConfig:
    return from_dict(
        {
            "name": "t",
            "word_bits": 8,
            "array": {"rows": rows, "cols": cols},
            "dataflow": dataflow,
            "sram_kB": dict(zip(("ifmap", "filter", "ofmap"), kb, strict=True)),
            "energy_pj": {"dram": 100, "sram": 1, "rf": 0.1, "mac": 0.1},
        },
        "test",
    )


def assert_equal_counts(
    shapes: dict[str, ConvShape], hw: HardwareConfig, cache, jobs: int = 1
) -> None:
    """Every count of every shape equals SCALE-Sim's; a failure names the differing shapes."""
    real = ScaleSimEngine(cache_dir=cache).counts(shapes.values(), hw, progress=False, jobs=jobs)
    ours = AnalyticEngine().counts(shapes.values(), hw, progress=False)
    diff = {name: (real[s], ours[s]) for name, s in shapes.items() if real[s] != ours[s]}
    shown = dict(list(diff.items())[:5])
    assert not diff, f"{len(diff)} of {len(shapes)} differ (scalesim, analytic): {shown}"


@pytest.mark.parametrize("kb", [SMALL_KB, LARGE_KB], ids=lambda kb: f"{kb}kB")
@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_matches_scalesim(dataflow, array, kb, tmp_path):
    assert_equal_counts(SHAPES, make_hw(*array, dataflow, (kb, kb, kb)), tmp_path)


# ------------------------------------------------------------------ replays vs SCALE-Sim classes


# Layers whose ifmap windows overlap, on arrays that cut them into several folds, with 1-2 kB
# read buffers (500-1000 word epochs) that forget them many times over.
REPLAY_CASES = [
    ("os", ConvShape(10, 10, 3, 3, 5, 7, 1), (4, 4), 1),
    ("os", ConvShape(12, 12, 3, 3, 20, 9, 1), (5, 4), 2),  # runs of 20 channels
    ("os", ConvShape(18, 14, 5, 3, 3, 3, 2), (8, 2), 1),  # ceil rule: windows hang over
    ("ws", ConvShape(12, 12, 3, 3, 8, 13, 1), (4, 3), 1),
    ("ws", ConvShape(11, 11, 3, 3, 7, 4, 2), (5, 2), 1),  # folds cut taps mid-channel run
    ("is", ConvShape(13, 13, 3, 3, 7, 5, 2), (5, 4), 1),
    ("is", ConvShape(12, 12, 3, 3, 16, 3, 1), (6, 7), 2),
]


@pytest.mark.parametrize("dataflow, shape, array, kb", REPLAY_CASES)
def test_ifmap_replays_match_scalesim_buffer(dataflow, shape, array, kb, tmp_path):
    """Both replays against SCALE-Sim's read buffer fed SCALE-Sim's own ifmap demand matrix."""
    hw = make_hw(*array, dataflow, (kb, kb, kb))
    demand = scalesim_compute(shape, hw, tmp_path).get_ifmap_demand_mat()
    expected = scalesim_read_buffer(demand, kb)
    assert expected > shape.ifmap_h * shape.ifmap_w * shape.channels  # re-fetches happen
    epoch = epoch_words(kb)
    assert replay_previous(*previous_demands(shape, dataflow, *array), epoch) == expected
    if dataflow == "os":
        assert replay_runs(os_runs(shape, *array), epoch) == expected


def test_repeating_copies_are_skipped(tmp_path, monkeypatch):
    """20 column folds read the ifmap 20 times; from the second copy on, each copy's first
    chunk starts at the same demand, so the replay searches a few chunk ends, not 20."""
    shape, hw = ConvShape(10, 10, 3, 3, 5, 40, 1), make_hw(4, 2, "os", (1, 1, 1))
    demand = scalesim_compute(shape, hw, tmp_path).get_ifmap_demand_mat()
    searches, search = [], read_buffer._nth_below

    def counted(*args):
        searches.append(args)
        return search(*args)

    monkeypatch.setattr(read_buffer, "_nth_below", counted)
    epoch = epoch_words(1)
    reads = replay_previous(*previous_demands(shape, "os", 4, 2), epoch)
    assert reads == scalesim_read_buffer(demand, 1)
    assert reads // epoch == 20 and len(searches) < 5


@pytest.mark.parametrize("dataflow", ["os", "is"])
def test_filter_reads_match_scalesim_buffer(dataflow, tmp_path):
    """Filter demand is tiled from all-distinct bases: the closed form against SCALE-Sim."""
    shape = ConvShape(6, 6, 3, 3, 10, 17, 1)  # 1530 weights, 3 epochs of a 1 kB buffer
    hw = make_hw(4, 5, dataflow, (1, 1, 1))
    demand = scalesim_compute(shape, hw, tmp_path).get_filter_demand_mat()
    assert analytic_counts(shape, hw).dram_filter_reads == scalesim_read_buffer(demand, 1)


@pytest.mark.parametrize("seed", range(4))
def test_distinct_and_previous_replays_on_random_demand(seed):
    """Random streams through SCALE-Sim's read buffer: tiled distinct bases (distinct_reads)
    and any re-use given as previous demands (replay_previous), over several copies."""
    rng = np.random.default_rng(seed)
    kb = 1 + seed % 2
    epoch = epoch_words(kb)
    segments = [(int(rng.integers(1, 900)), int(rng.integers(1, 4))) for _ in range(4)]
    offsets = np.cumsum([0] + [n for n, _ in segments])
    stream = np.concatenate(
        [np.tile(np.arange(n) + o, r) for (n, r), o in zip(segments, offsets[:-1], strict=True)]
    )
    rows = np.concatenate([stream, np.full(-stream.size % 7, -1)]).reshape(-1, 7)
    assert distinct_reads(segments, epoch) == scalesim_read_buffer(rows, kb)
    base = rng.integers(0, 700, 2000)
    base[rng.random(base.size) < 0.1] = -1  # idle slots
    prev, last = np.full(base.size, IDLE), {}
    for i, a in enumerate(base.tolist()):
        if a >= 0:
            prev[i], last[a] = last.get(a, -1), i
    first = prev == -1
    prev[first] = np.array([last[a] for a in base[first].tolist()]) - base.size
    rows = np.tile(base, 3).reshape(-1, 5)
    assert replay_previous(prev, 3, epoch) == scalesim_read_buffer(rows, kb)


@pytest.mark.parametrize("bw", [4, 7, 16, 100, 600])
def test_write_buffer_replay(bw):
    """Random rows of at most bw writes: SCALE-Sim never stalls and its DRAM writes depend on
    the total alone (3-12 to 352 drains, of which all but a few repeat and are skipped).
    Power-of-two widths leave padded lines mid-chunk (SCALE-Sim counts their pads); dense rows
    refill the buffer fastest while a drain is in flight."""
    rng = random.Random(bw)
    n = 1500 if bw < 100 else 300  # SCALE-Sim's buffer is slow on wide lines
    for dense in (True, False):
        counts = [bw if dense else rng.choice([0, 1, rng.randint(0, bw)]) for _ in range(n)]
        assert scalesim_write_buffer(counts, 1, bw, rng) == (dram_writes(sum(counts), 1, bw), 0)


# ------------------------------------------------------------------ engine behaviour


def test_engine_protocol_and_errors():
    hw = make_hw(4, 4, "os", (1, 1, 1))
    shape = SHAPES["fc"]
    engine = AnalyticEngine()
    assert engine.name == "analytic"
    out = engine.counts([shape, shape], hw, progress=False)
    assert list(out) == [shape] and out[shape] == analytic_counts(shape, hw)
    bad = ConvShape(2, 2, 3, 3, 1, 1, 1)
    with pytest.raises(DDIError, match="layer stem: filter 3x3 larger than the ifmap 2x2"):
        engine.counts([bad], hw, progress=False, names={bad: "stem"})


# ------------------------------------------------------------------ slow: network sweeps

SWEEP_ARCHS = ("resnet38", "resnet74")  # channel granularity: each gated axis swept 1..full
LAYER_ARCHS = ("densenet100",)  # layer granularity: full layers only


def sweep_shapes() -> dict[str, ConvShape]:
    """Every unique shape of ResNet-38/74 with each gated axis swept over 1..full (320), plus
    every full layer of DenseNet-100 (55 unique shapes, none in the ResNets): 375 in all.
    Named `<arch>/<layer>[<axis>=<n>]` after the first row that has the shape."""
    from ddi_energy.models.zoo import walk_arch

    shapes: dict[ConvShape, str] = {}
    for arch in (*SWEEP_ARCHS, *LAYER_ARCHS):
        for layer in walk_arch(arch):
            shapes.setdefault(layer.shape(), f"{arch}/{layer.name}")
            if arch in LAYER_ARCHS:
                continue
            key = "in_channels" if layer.channel_axis == "in" else "out_channels"
            for n in range(1, (layer.gated_channels or 0) + 1):
                shapes.setdefault(layer.shape(**{key: n}), f"{arch}/{layer.name}[{key}={n}]")
    return {name: shape for shape, name in shapes.items()}


def sweep_cache(tmp_path_factory):
    """$DDI_ENERGY_CACHE if set (SCALE-Sim results then survive between runs), else a temp dir."""
    return os.environ.get("DDI_ENERGY_CACHE") or tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("kb", [(4, 4, 1), (128, 128, 128)], ids=["small", "large"])
@pytest.mark.parametrize("array", [(12, 14), (32, 32), (8, 8)], ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_network_sweeps_match_scalesim(dataflow, array, kb, tmp_path_factory):
    """Small: 4 K-word read buffers (2000-word epochs) and a 1 K-word ofmap buffer; large:
    128 K words each, above every ResNet footprint (at most 36864 filter words) and every
    DenseNet-100 filter and ofmap footprint (45000, 110592 words), but below its largest
    ifmaps (up to 221184 words), which are then re-fetched."""
    hw = make_hw(*array, dataflow, kb)
    assert_equal_counts(sweep_shapes(), hw, sweep_cache(tmp_path_factory), jobs=2)


@pytest.mark.parametrize("config", ["eyeriss", "edge_npu"])
def test_network_golden_subset_matches_scalesim(config, tmp_path):
    """Fast stand-in for the slow sweeps: 8 seeded network shapes (ResNet-38/74 channel rows and
    DenseNet-100 layers, the cheaper half by MACs) on a shipped config, os and ws."""
    import random

    shapes = sweep_shapes()
    cheap = sorted(shapes, key=lambda name: shapes[name].macs)[: len(shapes) // 2]
    picked = random.Random(0).sample(cheap, 8)
    assert any(name.startswith("densenet100/") for name in picked)
    assert_equal_counts({n: shapes[n] for n in picked}, load_hw(config)[0], tmp_path, jobs=2)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["eyeriss", "edge_npu"])
def test_bundled_configs_match_scalesim(config, tmp_path_factory):
    """The shipped configs: 12x14 os with 27/14/13 K words; 32x32 ws with 64 K words each."""
    hw = load_hw(config)[0]
    assert_equal_counts(sweep_shapes(), hw, sweep_cache(tmp_path_factory), jobs=2)


# ------------------------------------------------------------------ ImageNet-sized layers


def imagenet_config(dataflow: str) -> HardwareConfig:
    """The shipped configs (eyeriss os, edge_npu ws) and eyeriss as input stationary."""
    name = "edge_npu" if dataflow == "ws" else "eyeriss"
    return dataclasses.replace(load_hw(name)[0], dataflow=dataflow)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_imagenet_sized_layer_matches_scalesim(dataflow, tmp_path):
    """A stride-2 3x3 conv from a 112x112 map to 56x56 (3 channels, so SCALE-Sim runs it in
    seconds): 38307 ifmap words re-fetched over several epochs of each buffer, 12544 ofmap
    words drained twice through eyeriss's."""
    shape = ConvShape(113, 113, 3, 3, 3, 4, 2)
    assert_equal_counts({"conv3x3_s2_112": shape}, imagenet_config(dataflow), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_imagenet_layers_match_scalesim(dataflow, tmp_path_factory):
    """Small-channel variants of the largest ImageNet layers: a 3x3 conv at 56x56, the 7x7
    stride-2 stem at 112x112 (minutes of SCALE-Sim each)."""
    shapes = {
        "conv3x3_56": ConvShape(58, 58, 3, 3, 8, 4, 1),
        "stem7x7_s2_112": ConvShape(229, 229, 7, 7, 1, 2, 2),
    }
    config = imagenet_config(dataflow)
    assert_equal_counts(shapes, config, sweep_cache(tmp_path_factory), jobs=2)
