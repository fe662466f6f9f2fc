"""`ddi-energy sweep` and `ddi-energy validate` from the command line; sweeps that share work
across points, run on worker processes or write only the summary give the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import load_hw
from ddi_energy.tables.build import run_profile
from ddi_energy.tables.pareto import pareto_front
from ddi_energy.tables.sweep import design_points, parse_vary, run_sweep

# Two dataflows x two DRAM energies: 4 points, each pair that differs only in energy shares its
# counts (one engine call).
GRID = {"dataflow": ["os", "ws"], "energy_pj.dram": [42.0, 100.0]}


def test_sweep_writes_one_table_per_point_and_a_summary(tmp_path: Path, capsys):
    out_dir = tmp_path / "sweep"
    code, out, _ = run(
        ["sweep", "--arch", "resnet8", "--hw", "eyeriss", "--granularity", "layer",
         "--vary", "array.rows=8,16", "--vary", "dataflow=os,ws", "--out", str(out_dir)],
        capsys,
    )  # fmt: skip
    assert code == 0
    summary = pd.read_csv(out_dir / "resnet8_eyeriss_sweep.csv")
    assert len(summary) == 4
    assert list(summary["array.rows"]) == [8, 8, 16, 16]
    assert list(summary["dataflow"]) == ["os", "ws", "os", "ws"]
    for _, point in summary.iterrows():
        table = pd.read_csv(out_dir / point["table"])
        assert point["energy_pj"] == pytest.approx(table["energy_pj"].sum())
        assert point["cycles"] == table["cycles"].sum()
        assert 0 < point["utilization"] <= 1
        assert point["latency_ms"] == pytest.approx(point["cycles"] / 200e3)
    assert summary["macs"].nunique() == 1  # same network everywhere
    assert summary["cycles"].nunique() == 4  # but every design point runs it differently
    assert "eyeriss-p03" in out


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (["array.depth=4"], ["unknown key 'array.depth'", "array.rows"]),
        (["array.rows"], ["expected KEY=V1,V2"]),
        (["array.rows=8", "array.rows=16"], ["given twice"]),
        (["array.rows=8,-16"], ["--vary array.rows=-16", "array.rows = -16 must be > 0"]),
        (["dataflow=os,rs"], ["--vary dataflow=rs", "os, ws, is"]),
        (["sram_kB.ifmap=big"], ["sram_kB.ifmap", "a number"]),
    ],
)
def test_bad_vary_is_named(items: list[str], words: list[str]):
    base, _ = load_hw("eyeriss")
    with pytest.raises(DDIError) as err:
        design_points(base, parse_vary(items))
    for word in words:
        assert word in str(err.value)


def test_bad_vary_from_cli_writes_nothing(tmp_path: Path, capsys):
    code, _, err = run(
        ["sweep", "--arch", "resnet8", "--hw", "eyeriss", "--vary", "array.rows=8,0",
         "--out", str(tmp_path / "never")],
        capsys,
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "array.rows" in err
    assert not (tmp_path / "never").exists()


def test_validate_reports_zero_mismatches(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("DDI_ENERGY_CACHE", str(tmp_path))
    code, out, _ = run(
        ["validate", "--arch", "resnet8", "--hw", "edge_npu", "--granularity", "layer",
         "--sample", "4", "--jobs", "1"],
        capsys,
    )  # fmt: skip
    assert code == 0, out
    assert "4 unique shapes" in out and "0 mismatches" in out
    assert "dram_filter_reads" in out


def brute_force_front(energy: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Every pair compared: on the front unless another point is <= on both and < on one."""
    le = (energy[None, :] <= energy[:, None]) & (cycles[None, :] <= cycles[:, None])
    lt = (energy[None, :] < energy[:, None]) | (cycles[None, :] < cycles[:, None])
    return ~(le & lt).any(axis=1)


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_equals_brute_force_dominance(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    # Few distinct values: many ties on one cost or both, where the sweep line can go wrong.
    energy = rng.integers(0, 12, n).astype(float)
    cycles = rng.integers(0, 12, n).astype(float)
    front = pareto_front(energy, cycles)
    assert front.tolist() == brute_force_front(energy, cycles).tolist()
    assert front.any()


def test_pareto_front_of_a_line_and_of_equal_points():
    assert pareto_front([1, 2, 3], [3, 2, 1]).tolist() == [True, True, True]
    assert pareto_front([1, 2, 3], [1, 2, 3]).tolist() == [True, False, False]
    assert pareto_front([2, 2, 1], [1, 1, 5]).tolist() == [True, True, True]
    assert pareto_front([2, 2, 2], [1, 1, 3]).tolist() == [True, True, False]


@pytest.fixture(scope="module", params=["scalesim", "physical"])
def sweeps(request, tmp_path_factory) -> dict[str, object]:
    """The same resnet8 grid swept with tables on 1 and 2 processes and summary only, under one
    count model."""
    counts = request.param
    root = tmp_path_factory.mktemp(f"sweep_{counts}")
    base, note = load_hw("eyeriss")
    out = {"counts": counts, "base": base, "note": note}
    for name, summary_only, jobs in (("full", False, 1), ("full_jobs2", False, 2),
                                     ("summary", True, 1)):  # fmt: skip
        (root / name).mkdir()
        out[name] = run_sweep("resnet8", base, note, GRID, root / name, counts=counts,
                              summary_only=summary_only, jobs=jobs, progress=False)  # fmt: skip
    return out


def test_pareto_column_is_the_dominance_check_of_the_summary(sweeps):
    summary, _ = sweeps["full"]
    expected = brute_force_front(summary["energy_pj"].to_numpy(), summary["cycles"].to_numpy())
    assert summary["pareto"].tolist() == expected.tolist()
    assert pd.read_csv(sweeps["full"][1])["pareto"].tolist() == expected.tolist()


def test_summary_only_gives_the_full_sweeps_numbers_and_no_tables(sweeps):
    full, _ = sweeps["full"]
    summary, path = sweeps["summary"]
    pd.testing.assert_frame_equal(summary.drop(columns="table"), full.drop(columns="table"),
                                  check_exact=True)  # fmt: skip
    assert (summary["table"] == "").all() and (full["table"] != "").all()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name,
                                                             path.with_suffix(".json").name]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["points"] == 4 and meta["counts"] == sweeps["counts"]
    assert meta["pareto_points"] == int(summary["pareto"].sum())
    assert meta["tables"].startswith("none")


def test_two_processes_write_the_same_files_as_one(sweeps):
    _, one = sweeps["full"]
    _, two = sweeps["full_jobs2"]
    csvs = sorted(p.name for p in one.parent.glob("*.csv"))
    assert len(csvs) == 5 and csvs == sorted(p.name for p in two.parent.glob("*.csv"))
    for name in csvs:
        assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes(), name


def test_points_that_share_counts_get_their_own_profile(sweeps):
    """Points 2 and 3 differ only in DRAM energy (one engine call): each table equals a profile
    of that point alone."""
    summary, path = sweeps["full"]
    points = design_points(sweeps["base"], GRID)
    assert points[2][1].sim_key() == points[3][1].sim_key()
    for index in (2, 3):
        table, _ = run_profile("resnet8", points[index][1], sweeps["note"],
                               counts=sweeps["counts"], progress=False)  # fmt: skip
        written = (path.parent / summary["table"][index]).read_text()
        assert written == table.to_csv(index=False)
    assert summary["energy_pj"][2] < summary["energy_pj"][3]
    assert summary["cycles"][2] == summary["cycles"][3]


def test_summary_only_from_cli_on_two_processes(tmp_path: Path, capsys):
    """50 points: enough for two worker processes (25 summary points each); the same summary
    as one process, byte for byte."""
    grid = ["--vary", "array.rows=4,8,16,32,64", "--vary", "array.cols=4,8,16,32,64",
            "--vary", "dataflow=os,ws"]  # fmt: skip
    written = []
    for jobs in ("2", "1"):
        out_dir = tmp_path / jobs
        code, out, _ = run(["sweep", "--arch", "resnet8", "--hw", "eyeriss", *grid,
                            "--summary-only", "--jobs", jobs, "--out", str(out_dir)], capsys)
        assert code == 0, out
        assert sorted(p.name for p in out_dir.iterdir()) == ["resnet8_eyeriss_sweep.csv",
                                                              "resnet8_eyeriss_sweep.json"]
        written.append((out_dir / "resnet8_eyeriss_sweep.csv").read_bytes())
    assert written[0] == written[1]
    summary = pd.read_csv(tmp_path / "1" / "resnet8_eyeriss_sweep.csv")
    assert len(summary) == 50 and summary["pareto"].dtype == bool
    front = summary[summary["pareto"]]
    assert f"the {len(front)} Pareto-optimal points (energy vs cycles) of 50:" in out
    assert all(name in out for name in front["point"])
    assert f"({len(front)} Pareto-optimal points)" in out


@pytest.mark.parametrize("jobs", ["0", "-2", "two"])
def test_bad_jobs_is_one_line_and_writes_nothing(tmp_path: Path, capsys, jobs: str):
    code, _, err = run(
        ["sweep", "--arch", "resnet8", "--hw", "eyeriss", "--vary", "array.rows=8,16",
         "--summary-only", "--jobs", jobs, "--out", str(tmp_path / "never")],
        capsys,
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--jobs" in err
    assert not (tmp_path / "never").exists()
