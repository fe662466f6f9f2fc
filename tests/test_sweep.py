"""`ddi-energy sweep` and `ddi-energy validate` from the command line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import load_hw
from ddi_energy.tables.sweep import design_points, parse_vary


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
