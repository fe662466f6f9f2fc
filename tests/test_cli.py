"""`ddi-energy profile` end to end: outputs, metadata, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_helpers import run

from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.columns import TABLE_COLUMNS

HW = {
    "name": "small",
    "word_bits": 8,
    "array": {"rows": 32, "cols": 32},
    "dataflow": "ws",
    "sram_kB": {"ifmap": 16, "filter": 16, "ofmap": 16},
    "energy_pj": {"dram": 100.0, "sram": 2.0, "rf": 0.5, "mac": 0.25},
}




@pytest.fixture
def hw_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(HW))
    return path


def test_profile_writes_table_and_metadata(tmp_path: Path, hw_file: Path, capsys, monkeypatch):
    monkeypatch.setenv("DDI_ENERGY_CACHE", str(tmp_path / "cache"))
    out_dir = tmp_path / "tables"
    code, out, _ = run(
        ["profile", "--arch", "resnet8", "--hw", str(hw_file), "--granularity", "layer",
         "--out", str(out_dir), "--jobs", "1", "--engine", "scalesim"],
        capsys,
    )  # fmt: skip
    assert code == 0
    table = pd.read_csv(out_dir / "resnet8_small_layer.csv")
    assert tuple(table.columns) == TABLE_COLUMNS
    layers = walk_arch("resnet8")
    assert list(table["layer"]) == [layer.name for layer in layers]
    assert table["is_full"].all()
    meta = json.loads((out_dir / "resnet8_small_layer.json").read_text())
    assert meta["arch"] == "resnet8" and meta["engine"] == "scalesim"
    assert meta["hw"]["array"]["rows"] == 32 and len(meta["hw_digest"]) == 16
    assert meta["scalesim_version"] == "3.0.0" and meta["granularity"] == "layer"
    assert meta["totals_full_network"]["macs"] == sum(layer.macs for layer in layers)
    assert meta["totals_full_network"]["energy_pj"] == pytest.approx(table["energy_pj"].sum())
    assert "full network" in out and "conv1" in out and "DRAM" in out
    assert not list(out_dir.glob(".*tmp"))  # no temp files left
    # The default (analytic) engine writes the same table, and says so in the metadata.
    code, _, _ = run(["profile", "--arch", "resnet8", "--hw", str(hw_file), "--granularity",
                      "layer", "--out", str(tmp_path / "fast"), "--quiet"], capsys)
    assert code == 0
    fast = pd.read_csv(tmp_path / "fast" / "resnet8_small_layer.csv")
    pd.testing.assert_frame_equal(fast, table)
    assert json.loads((tmp_path / "fast" / "resnet8_small_layer.json").read_text())[
        "engine"] == "analytic"


def test_emit_writes_scalesim_inputs(tmp_path: Path, hw_file: Path, capsys, monkeypatch):
    monkeypatch.setenv("DDI_ENERGY_CACHE", str(tmp_path / "cache"))
    emit = tmp_path / "emit"
    code, _, _ = run(
        ["profile", "--arch", "resnet8", "--hw", str(hw_file), "--granularity", "layer",
         "--out", str(tmp_path / "t"), "--emit", str(emit), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    topo = (emit / "topology.csv").read_text().splitlines()
    assert len(topo) == 1 + len(walk_arch("resnet8"))
    assert all(line.endswith(",") for line in topo)
    assert "ArrayHeight" in (emit / "scalesim.cfg").read_text()
    assert (emit / "layout.csv").exists()


def _bad_hw(tmp_path: Path, **changes) -> str:
    data = {k: v for k, v in {**HW, **changes}.items() if v is not None}  # None: key missing
    return _text(tmp_path, yaml.safe_dump(data))


def _text(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (lambda p, hw: ["--arch", "resnet75", "--hw", hw], ["resnet75", "resnet74"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _bad_hw(p, dataflow="rs")],
         ["bad.yaml", "dataflow", "os, ws, is"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _bad_hw(p, word_bits="wide")],
         ["bad.yaml", "word_bits"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _bad_hw(p, array={"rows": -1, "cols": 4})],
         ["array.rows", "> 0"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", str(p / "missing.yaml")],
         ["missing.yaml", "no such file"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", hw, "--out", str(hw) + "/sub"],
         ["cannot create output directory"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _bad_hw(p, sram_kB=None)],
         ["bad.yaml", "sram_kB"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _bad_hw(p, colour="red")],
         ["bad.yaml", "colour"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", _text(p, "array: [1, 2\n")],
         ["bad.yaml"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", hw, "--emit", str(hw) + "/sub"],
         ["cannot create output directory"]),
        (lambda p, hw: ["--arch", "resnet8", "--hw", hw, "--engine", "fast"],
         ["--engine", "fast"]),
    ],
)
def test_bad_input_is_one_line_exit_2_no_output(tmp_path: Path, hw_file: Path, capsys, args,
                                                 words):
    out_dir = tmp_path / "never"
    argv = ["profile", "--out", str(out_dir), *args(tmp_path, str(hw_file))]
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddi-energy"), err
    assert "error: " in lines[0] and "Traceback" not in err
    for word in words:
        assert word in lines[0]
    assert not out_dir.exists()


def test_module_entry_point_has_no_traceback(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [oops\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ddi_energy", "profile", "--arch", "resnet8", "--hw", str(bad),
         "--out", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "not valid YAML" in proc.stderr and not (tmp_path / "t").exists()


def test_inspect_prints_gate_overheads_and_energy(capsys):
    code, out, _ = run(["inspect", "--arch", "resnet20", "--gating", "mgl2s", "--exits",
                        "--cost-table", "resnet20_edge_npu"], capsys)
    assert code == 0
    assert "stage3.2" in out and "channel gate 12.5" in out and "energy_pj" in out
    assert "exit branches" in out and "gated network, all on" in out
    code, _, err = run(["inspect", "--arch", "resnet20", "--gating", "mgl2s",
                        "--cost-table", "resnet38_eyeriss"], capsys)
    assert code == 2 and "built for arch 'resnet38'" in err


def test_failed_write_leaves_no_table(tmp_path: Path, hw_file: Path, capsys):
    """A table whose CSV cannot be written leaves neither file (nor a temp file) behind."""
    out = tmp_path / "out"
    (out / "resnet8_small.csv").mkdir(parents=True)  # the CSV's name is taken by a directory
    code, _, err = run(["profile", "--arch", "resnet8", "--hw", str(hw_file), "--out", str(out),
                        "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "resnet8_small.csv: cannot write" in err
    assert sorted(p.name for p in out.iterdir()) == ["resnet8_small.csv"]
