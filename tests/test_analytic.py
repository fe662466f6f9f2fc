"""The analytic engine against the real SCALE-Sim 3.0.0: every count must be equal.

Fast tests: small layers on small arrays, buffers both too small for the operands (1 kB: ~500
words per read-buffer epoch, so operands are re-fetched and the ofmap buffer drains often) and
large enough (64 kB); plus the two replays against SCALE-Sim's own buffer classes on random
demand. The slow tests cover every unique layer shape of the ResNet-38/74 channel sweeps and
every full layer of DenseNet-100 (layer granularity).
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from scalesim.memory.read_buffer_estimate_bw import ReadBufferEstimateBw
from scalesim.memory.read_port import read_port
from scalesim.memory.write_buffer import write_buffer
from scalesim.memory.write_port import write_port

from ddi_energy.engines.analytic import (
    AnalyticEngine,
    _epoch_words,
    _replay_read_buffer,
    _replay_write_buffer,
    analytic_counts,
)
from ddi_energy.engines.scalesim_engine import ScaleSimEngine
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


def scalesim_read_buffer(stream: np.ndarray, kb: int, width: int) -> int:
    """DRAM reads of SCALE-Sim's CALC read buffer fed `stream` in rows of `width` (-1 padded)."""
    buf = ReadBufferEstimateBw()
    buf.set_params(
        backing_buf_obj=read_port(),
        total_size_bytes=1024 * kb,
        word_size=1,
        active_buf_frac=0.5,
        backing_buf_default_bw=10,
    )
    padded = np.concatenate([stream, np.full(-stream.size % width, -1)]).reshape(-1, width)
    for i in range(padded.shape[0]):
        buf.service_reads(padded[i : i + 1], np.zeros((1, 1)) + i)
    buf.complete_all_prefetches()
    return buf.get_num_accesses()


def scalesim_write_buffer(row_counts: list[int], kb: int, bw: int, rng: random.Random):
    """(DRAM writes, stall cycles) of SCALE-Sim's write buffer, driven as service_memory_requests
    drives it: one row per cycle, -1 slots scattered, stalls delaying every later row."""
    buf = write_buffer()
    buf.set_params(
        backing_buf_obj=write_port(),
        total_size_bytes=1024 * kb,
        word_size=1,
        active_buf_frac=0.5,
        backing_buf_bw=bw,
    )
    stall, addr, out = 0, 0, None
    for i, n in enumerate(row_counts):
        line = np.full((1, bw), -1)
        for slot in sorted(rng.sample(range(bw), n)):
            line[0, slot], addr = addr, addr + 1
        cycle = np.zeros((1, 1)) + i + stall
        out = buf.service_writes(line, cycle)
        stall += int(out[0][0] - cycle[0][0])
    buf.empty_all_buffers(out[0])
    return buf.get_num_accesses(), stall


@pytest.mark.parametrize("seed", range(6))
def test_read_buffer_replay(seed):
    rng = np.random.default_rng(seed)
    kb = 1 + seed % 2
    kinds = [
        [(rng.integers(0, 700, 3000), 1)],  # random re-use across epochs
        [(rng.integers(0, 900, 800), 4)],  # one pass repeated, as over column folds
        [(np.arange(1100), 3)],  # cyclic sweep larger than an epoch
        [(rng.integers(0, 300, 400), 3), (rng.integers(300, 600, 500), 2)],  # disjoint folds
    ]
    for segments in kinds:
        stream = np.concatenate([np.tile(base, repeats) for base, repeats in segments])
        expected = scalesim_read_buffer(stream, kb, width=7)
        assert _replay_read_buffer(segments, _epoch_words(kb)) == expected


@pytest.mark.parametrize("bw", [4, 7, 16, 100, 600])
def test_write_buffer_replay(bw):
    """Power-of-two widths leave padded lines mid-chunk (SCALE-Sim counts their pads)."""
    rng = random.Random(bw)
    n = 1500 if bw < 100 else 300  # SCALE-Sim's buffer is slow on wide lines
    for dense in (True, False):
        rows = [bw if dense else rng.choice([0, bw, rng.randint(0, bw)]) for _ in range(n)]
        expected = scalesim_write_buffer(rows, 1, bw, rng)
        assert _replay_write_buffer(np.array(rows), 1, bw) == expected


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
