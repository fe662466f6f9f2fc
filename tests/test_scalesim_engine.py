"""ScaleSimEngine against the real SCALE-Sim CLI, closed-form counts, its cache and its errors.

Tiny layers on a 4x6 array (rows != cols, so a swapped axis shows) keep the file fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from math import ceil
from pathlib import Path

import pytest

from ddi_energy.engines import scalesim_engine as sse
from ddi_energy.engines.scalesim_engine import ScaleSimEngine, cache_key
from ddi_energy.engines.scalesim_files import read_reports, topology_csv, write_inputs
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig, from_dict
from ddi_energy.workload.shapes import AccessCounts, ConvShape

ROWS, COLS = 4, 6
SMALL_KB, LARGE_KB = 1, 64  # 1 kB: operands above ~500 words are re-fetched from DRAM

SHAPES = {
    "stage1.DP.conv3x3": ConvShape(8, 8, 3, 3, 5, 6, 1),  # "DP" must not make it depthwise
    "stage2.conv3x3_s2": ConvShape(9, 9, 3, 3, 6, 7, 2),
    "stage2.shortcut": ConvShape(7, 7, 1, 1, 10, 9, 2),  # 1x1 stride 2 reads 4x4 of 7x7
    "fc": ConvShape(1, 1, 1, 1, 20, 11, 1),
    "big": ConvShape(10, 10, 3, 3, 16, 14, 1),  # 1600 ifmap / 2016 filter words: re-fetched
}
NAMES = {shape: name for name, shape in SHAPES.items()}


def make_hw(dataflow: str = "os", kb: float = SMALL_KB, dram: float = 100.0) -> HardwareConfig:
    return from_dict(
        {
            "name": "tiny",
            "word_bits": 8,
            "array": {"rows": ROWS, "cols": COLS},
            "dataflow": dataflow,
            "sram_kB": {"ifmap": kb, "filter": kb, "ofmap": kb},
            "energy_pj": {"dram": dram, "sram": 2.0, "rf": 1.0, "mac": 1.0},
        },
        "test",
    )


def run_cli(directory: Path, hw: HardwareConfig) -> list[AccessCounts]:
    """All shapes in one topology through `python -m scalesim.scale`, as a user would."""
    write_inputs(directory, list(SHAPES.items()), hw)
    out = directory / "out"
    cmd = [sys.executable, "-m", "scalesim.scale", "-c", str(directory / "scalesim.cfg"),
           "-t", str(directory / "topology.csv"), "-l", str(directory / "layout.csv"),
           "-p", str(out)]
    subprocess.run(cmd, cwd=directory, capture_output=True, check=True, timeout=120)
    return read_reports(out / "ddi")


@pytest.fixture(scope="module", params=[(df, kb) for df in ("os", "ws", "is")
                                         for kb in (SMALL_KB, LARGE_KB)],
                ids=lambda p: f"{p[0]}-{p[1]}kB")
def both(request, tmp_path_factory):
    """(hw, engine counts, CLI counts in topology order) for one dataflow and buffer size."""
    hw = make_hw(*request.param)
    tmp = tmp_path_factory.mktemp("cli")
    engine = ScaleSimEngine(tmp / "cache").counts(SHAPES.values(), hw, progress=False)
    return hw, engine, run_cli(tmp / "run", hw)


def test_engine_matches_cli(both):
    hw, engine, cli = both
    assert len(cli) == len(SHAPES)  # a depthwise split would add rows
    assert [engine[s] for s in SHAPES.values()] == cli


def closed_form(s: ConvShape, dataflow: str) -> dict[str, int]:
    """The counts scalesim.md derives per dataflow (CALC mode, any buffer size)."""
    n_p, t, k = s.ofmap_pixels, s.window, s.filters
    if dataflow == "os":
        rf, cf = ceil(n_p / ROWS), ceil(k / COLS)
        return {"cycles": rf * cf * (t + ROWS + COLS - 2) - 1, "sram_ifmap_reads": cf * n_p * t,
                "sram_filter_reads": rf * t * k,
                "sram_ofmap_writes": n_p * k + rf * cf * (ROWS + COLS),
                "dram_ofmap_writes": n_p * k}
    if dataflow == "ws":
        rf, cf = ceil(t / ROWS), ceil(k / COLS)
        return {"cycles": rf * cf * (2 * ROWS + COLS + n_p - 2) - 1,
                "sram_ifmap_reads": cf * n_p * t, "sram_filter_reads": t * k,
                "sram_ofmap_writes": rf * n_p * k, "dram_ofmap_writes": rf * n_p * k}
    return {"sram_ifmap_reads": t * n_p, "sram_filter_reads": ceil(n_p / COLS) * t * k,
            "sram_ofmap_writes": ceil(t / ROWS) * n_p * k}


def test_counts_follow_closed_forms(both):
    hw, engine, _ = both
    for shape, counts in engine.items():
        got = {f: getattr(counts, f) for f in closed_form(shape, hw.dataflow)}
        assert got == closed_form(shape, hw.dataflow), NAMES[shape]


def test_dram_reads_refetch_only_in_small_buffers(both):
    hw, engine, _ = both
    for shape, c in engine.items():
        ifmap_words = shape.ifmap_h * shape.ifmap_w * shape.channels
        filter_words = shape.window * shape.filters
        refetch = c.dram_ifmap_reads > ifmap_words or c.dram_filter_reads > filter_words
        assert refetch == (hw.scalesim_kb()[0] == SMALL_KB and NAMES[shape] == "big"), NAMES[shape]
    strided = engine[SHAPES["stage2.shortcut"]]
    assert strided.dram_ifmap_reads == 4 * 4 * 10  # only the pixels a 1x1 stride-2 conv reads


def test_topology_rows_sanitize_names():
    text = topology_csv([("a.DP,b", ConvShape(3, 4, 1, 2, 5, 6, 1))])
    header, row = text.splitlines()
    assert header.endswith("Strides,")
    assert row == "a_dp_b, 3, 4, 1, 2, 5, 6, 1,"


# ----------------------------------------------------------------------------- cache

TINY = [ConvShape(6, 6, 3, 3, 3, 4, 1), ConvShape(5, 5, 1, 1, 7, 5, 2),
        ConvShape(1, 1, 1, 1, 9, 3, 1)]


@pytest.fixture
def calls(monkeypatch):
    """Counts real simulations (the in-process path, jobs=1)."""
    seen: list[ConvShape] = []
    real = sse.simulate

    def counting(shape, hw, workdir=None):
        seen.append(shape)
        return real(shape, hw, workdir)

    monkeypatch.setattr(sse, "simulate", counting)
    return seen


def test_second_call_is_served_from_cache(tmp_path, calls, monkeypatch, capfd):
    hw = make_hw()
    first = ScaleSimEngine(tmp_path).counts(TINY + TINY[:1], hw, progress=False)
    assert list(first) == TINY and sorted(calls) == sorted(TINY)
    assert capfd.readouterr() == ("", "")  # SCALE-Sim's own output is silenced
    assert not list((tmp_path / "scalesim").glob("*.tmp"))

    def fail(*args):
        raise AssertionError("simulated a cached shape")

    monkeypatch.setattr(sse, "simulate", fail)
    assert ScaleSimEngine(tmp_path).counts(TINY, hw, progress=False) == first
    # energies are not part of the key: a what-if on pJ values reuses the counts
    assert ScaleSimEngine(tmp_path).counts(TINY, make_hw(dram=5.0), progress=False) == first


def test_corrupt_entry_is_resimulated_and_rewritten(tmp_path, calls):
    hw = make_hw()
    engine = ScaleSimEngine(tmp_path)
    first = engine.counts(TINY, hw, progress=False)
    path = tmp_path / "scalesim" / f"{cache_key(TINY[1], hw, sse.scalesim_version())}.json"
    path.write_text('{"counts": {"cycles": ')
    calls.clear()
    assert engine.counts(TINY, hw, progress=False) == first
    assert calls == [TINY[1]]
    assert json.loads(path.read_text())["counts"]["cycles"] == first[TINY[1]].cycles


def test_interrupted_run_keeps_finished_shapes(tmp_path, monkeypatch):
    hw = make_hw()
    real, started = sse.simulate, []

    def interrupt_second(shape, hw, workdir=None):
        started.append(shape)
        if len(started) == 2:
            raise KeyboardInterrupt
        return real(shape, hw, workdir)

    monkeypatch.setattr(sse, "simulate", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        ScaleSimEngine(tmp_path).counts(TINY, hw, progress=False)
    assert len(list((tmp_path / "scalesim").iterdir())) == 1  # one entry, no temp file
    monkeypatch.setattr(sse, "simulate", real)
    ScaleSimEngine(tmp_path).counts(TINY, hw, progress=False)
    assert len(list((tmp_path / "scalesim").glob("*.json"))) == len(TINY)


def test_cache_key_follows_sram_size(tmp_path, calls):
    shape, version = TINY[0], sse.scalesim_version()
    assert cache_key(shape, make_hw(kb=1), version) != cache_key(shape, make_hw(kb=2), version)
    assert cache_key(shape, make_hw(), version) != cache_key(shape, make_hw(), "9.9.9")
    ScaleSimEngine(tmp_path).counts([shape], make_hw(kb=1), progress=False)
    ScaleSimEngine(tmp_path).counts([shape], make_hw(kb=2), progress=False)
    assert calls == [shape, shape]


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DDI_ENERGY_CACHE", str(tmp_path))
    assert ScaleSimEngine().directory == tmp_path / "scalesim"


# ----------------------------------------------------------------------------- errors, jobs


@pytest.mark.parametrize("jobs", [1, 2])
def test_failing_simulation_names_the_layer(tmp_path, jobs):
    bad = ConvShape(2, 2, 3, 3, 4, 4, 1)  # filter larger than the input
    with pytest.raises(DDIError) as err:
        ScaleSimEngine(tmp_path).counts([TINY[0], bad], make_hw(), jobs=jobs, progress=False,
                                        names={bad: "stage3.block1.conv2"})
    msg = str(err.value)
    assert msg.startswith("SCALE-Sim failed on layer stage3.block1.conv2 (ifmap 2x2, filter 3x3")
    assert "Filter height cannot be larger than IFMAP height" in msg and "\n" not in msg


def test_scalesim_exit_becomes_ddierror(tmp_path, monkeypatch):
    def exits(directory):
        print("ERROR: scalesim.scale.py: Topology file not found")
        exit()

    monkeypatch.setattr(sse, "_run_scalesim", exits)
    with pytest.raises(DDIError, match=r"layer 6x6x3\*3x3x4/s1 .*: ERROR: .*Topology file"):
        ScaleSimEngine(tmp_path).counts(TINY[:1], make_hw(), progress=False)


def test_two_jobs_match_one(tmp_path):
    hw = make_hw("ws")
    one = ScaleSimEngine(tmp_path / "a").counts(TINY, hw, jobs=1, progress=False)
    two = ScaleSimEngine(tmp_path / "b").counts(TINY, hw, jobs=2, progress=False)
    assert two == one and list(two) == TINY
    assert len(list((tmp_path / "b" / "scalesim").glob("*.json"))) == len(TINY)
