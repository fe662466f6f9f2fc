"""Hostile inputs, tried as a new user would: each gets one line naming the file, key or value,
exit code 2, no traceback and nothing left behind; a command that fails in any other way (an
unexpected exception, Ctrl-C) leaves no new output directory or file either."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from cli_helpers import run

from ddi_energy.tables.io import shipped_tables

HW = """\
name: tiny
word_bits: 8
array: {rows: 8, cols: 8}
dataflow: ws
sram_kB: {ifmap: 16, filter: 16, ofmap: 16}
energy_pj: {dram: 100.0, sram: 2.0, rf: 0.5, mac: 0.5}
"""
TINY_RUN = ["--arch", "resnet8", "--gating", "mgl2s", "--batch", "8", "--pretrain-steps", "1",
            "--gate-steps", "1", "--steps", "2", "--ddi-steps", "0", "--bn-batches", "0",
            "--checkpoint-every", "1", "--log-every", "1"]  # fmt: skip


def refused(code: int, err: str, *words: str) -> None:
    """Exit 2, one line on stderr naming `words`, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddi-energy: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def hw_file(tmp_path: Path, old: str = "", new: str = "") -> Path:
    path = tmp_path / "hw.yaml"
    path.write_text(HW.replace(old, new) if old else HW)
    return path


@pytest.mark.parametrize(("old", "new", "words"), [
    ("dram: 100.0", "dram: .inf", ["energy_pj.dram", "inf", "finite"]),
    ("sram: 2.0", "sram: .nan", ["energy_pj.sram", "finite"]),
    ("rows: 8, cols: 8", "rows: 100000, cols: 100000", ["array 100000 x 100000", "2^24"]),
    ("rows: 8, cols: 8", "rows: 4097, cols: 4096", ["16,781,312 PEs", "16,777,216"]),
])  # fmt: skip
def test_bad_hardware_values_are_refused_before_any_output(tmp_path, capsys, old, new, words):
    out = tmp_path / "out" / "tables"
    code, _, err = run(["profile", "--arch", "resnet8", "--hw", str(hw_file(tmp_path, old, new)),
                        "--out", str(out)], capsys)  # fmt: skip
    refused(code, err, str(tmp_path / "hw.yaml"), *words)
    assert not (tmp_path / "out").exists()


def test_scientific_notation_is_a_number(tmp_path, capsys):
    # YAML 1.1 (PyYAML) reads 1e3 as the string "1e3"; it is still a number of kB.
    path = hw_file(tmp_path, "ifmap: 16", "ifmap: 1e3")
    assert yaml.safe_load(path.read_text())["sram_kB"]["ifmap"] == "1e3"
    code, _, err = run(["profile", "--arch", "resnet8", "--hw", str(path), "--out",
                        str(tmp_path), "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    meta = json.loads((tmp_path / "resnet8_tiny.json").read_text())
    assert meta["hw"]["sram_kB"]["ifmap"] == 1000.0
    code, _, err = run(["sweep", "--arch", "resnet8", "--hw", str(path), "--vary",
                        "energy_pj.dram=1.5e2,2e2", "--out", str(tmp_path / "sw")], capsys)
    assert code == 0, err


def copy_table(tmp_path: Path, name: str = "resnet8_eyeriss") -> Path:
    csv = shipped_tables()[name]
    shutil.copy(csv, tmp_path / csv.name)
    shutil.copy(csv.with_suffix(".json"), tmp_path / f"{name}.json")
    return tmp_path / csv.name


def inspect(table: Path, capsys) -> tuple[int, str, str]:
    return run(["inspect", "--arch", "resnet8", "--gating", "mgl2s", "--cost-table", str(table),
                "--no-per-unit"], capsys)  # fmt: skip


@pytest.mark.parametrize("cut", ["rows", "mid-row"])
def test_truncated_table_is_refused_as_truncated(tmp_path, capsys, cut):
    table = copy_table(tmp_path)
    text = table.read_text()
    lines = text.splitlines(keepends=True)
    if cut == "rows":  # a copy that stopped at a row boundary: 100 of 228 rows
        table.write_text("".join(lines[:101]))
        code, _, err = inspect(table, capsys)
        refused(code, err, str(table), "truncated", "100 rows", "records 228")
    else:  # cut inside the last row: as many rows, the last one short
        table.write_text(text[: len(text) - len(lines[-1]) // 2])
        code, _, err = inspect(table, capsys)
        refused(code, err, str(table), "damaged", "row 229", "not a number")


def test_edited_table_warns_and_proceeds(tmp_path, capsys):
    table = copy_table(tmp_path)
    lines = table.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    row = lines[5].strip().split(",")
    row[header.index("energy_dram_pj")] = "1.0"
    lines[5] = ",".join(row) + "\n"
    table.write_text("".join(lines))
    code, out, err = inspect(table, capsys)
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warning) == 1 and "edited" in warning[0] and str(table) in warning[0]
    assert "totals at full execution" in out


def test_unedited_copy_loads_silently(tmp_path, capsys):
    code, _, err = inspect(copy_table(tmp_path), capsys)
    assert code == 0 and "warning" not in err


def test_train_with_another_arch_table_leaves_no_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "r8"
    code, _, err = run(["train", *TINY_RUN, "--loss", "energy", "--cost-table",
                        "resnet20_eyeriss", "--out", str(run_dir)], capsys)  # fmt: skip
    refused(code, err, "resnet20", "resnet8")
    assert not (tmp_path / "runs").exists()


# --- any failure, expected or not, leaves nothing new behind ------------------------------------

class Boom(RuntimeError):
    """An unexpected exception from deep inside a command."""


def explode(*_args, **_kwargs):
    raise Boom("unexpected")


def explode_after(real, calls: int):
    """`real`, except that call number `calls` raises."""
    count = [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise Boom("unexpected")
        return real(*args, **kwargs)

    return wrapper


def test_profile_failing_midway_leaves_nothing(tmp_path, capsys, monkeypatch):
    from ddi_energy.tables import build

    monkeypatch.setattr(build, "run_profile", explode)  # after the SCALE-Sim inputs are emitted
    out, emit = tmp_path / "new" / "tables", tmp_path / "emit"
    with pytest.raises(Boom):
        run(["profile", "--arch", "resnet8", "--hw", "eyeriss", "--out", str(out), "--emit",
             str(emit)], capsys)  # fmt: skip
    assert sorted(tmp_path.iterdir()) == []


def test_profile_into_existing_dir_keeps_what_was_there(tmp_path, capsys, monkeypatch):
    from ddi_energy.tables import build

    (tmp_path / "mine.txt").write_text("keep me")
    monkeypatch.setattr(build, "run_profile", explode)
    with pytest.raises(Boom):
        run(["profile", "--arch", "resnet8", "--hw", "eyeriss", "--out", str(tmp_path),
             "--emit", str(tmp_path / "emit")], capsys)  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_sweep_failing_at_a_later_point_leaves_no_tables(tmp_path, capsys, monkeypatch):
    from ddi_energy.tables import sweep

    monkeypatch.setattr(sweep, "fill_table", explode_after(sweep.fill_table, 2))
    with pytest.raises(Boom):  # --jobs 1: the points run in this process, patched
        run(["sweep", "--arch", "resnet8", "--hw", "eyeriss", "--vary", "array.rows=8,12,16",
             "--jobs", "1", "--out", str(tmp_path / "sweeps")], capsys)  # fmt: skip
    assert not (tmp_path / "sweeps").exists()


def test_train_failing_before_a_checkpoint_leaves_no_run_dir(tmp_path, capsys, monkeypatch):
    from ddi_energy.training import loop

    monkeypatch.setattr(loop.MetricsLog, "add", explode)  # first step, before any checkpoint
    with pytest.raises(Boom):
        run(["train", *TINY_RUN, "--out", str(tmp_path / "run")], capsys)
    assert not (tmp_path / "run").exists()


def test_interrupted_train_keeps_its_checkpoint_for_resume(tmp_path, capsys, monkeypatch):
    from ddi_energy.training import loop

    monkeypatch.setattr(loop.MetricsLog, "add", explode_after(loop.MetricsLog.add, 3))
    with pytest.raises(Boom):
        run(["train", *TINY_RUN, "--out", str(tmp_path / "run")], capsys)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    monkeypatch.undo()
    code, _, err = run(["train", "--out", str(tmp_path / "run"), "--resume"], capsys)
    assert code == 0, err


def test_eval_failing_while_writing_leaves_no_report_dir(tmp_path, capsys, monkeypatch):
    from ddi_energy.training import evaluate

    code, _, err = run(["train", *TINY_RUN, "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    monkeypatch.setattr(evaluate, "atomic_write_all", explode)
    with pytest.raises(Boom):
        run(["eval", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "report")], capsys)
    assert not (tmp_path / "report").exists()


def test_study_failing_in_its_first_run_leaves_nothing(tmp_path, capsys, monkeypatch):
    from ddi_energy.experiments import study

    monkeypatch.setattr(study, "train", explode)
    with pytest.raises(Boom):
        run(["study", "--out", str(tmp_path / "study"), "--pretrain-steps", "1", "--steps",
             "1"], capsys)  # fmt: skip
    assert not (tmp_path / "study").exists()


def test_plot_failing_after_a_figure_leaves_no_figures(tmp_path, capsys, monkeypatch):
    from ddi_energy.reporting import plots

    monkeypatch.setattr(plots, "save", explode_after(plots.save, 2))
    with pytest.raises(Boom):
        run(["plot", "--table", "resnet8_eyeriss", "--out", str(tmp_path / "figs")], capsys)
    assert not (tmp_path / "figs").exists()
