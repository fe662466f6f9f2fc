"""`ddi-energy study`: shared backbone, one run per (loss, target), Table I, figures, resuming;
and `init`, which the study's runs use to start from the shared backbone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ddi_energy.errors import DDIError
from ddi_energy.experiments.study import load_study_config, run_study
from ddi_energy.training.checkpoints import Checkpoints
from ddi_energy.training.config import load_config
from ddi_energy.training.loop import train

TINY_TRAIN = {"arch": "resnet8", "batch": 16, "gate_steps": 1, "steps": 2,
              "checkpoint_every": 2, "log_every": 1, "alpha": 0.05}  # fmt: skip


def tiny_study(tmp_path: Path, **changes) -> dict:
    return {"out": str(tmp_path / "study"), "hw": "edge_npu", "losses": ["flops", "energy"],
            "targets": [0.5], "pretrain_steps": 2, "train": dict(TINY_TRAIN), **changes}


def test_study_trains_evaluates_tabulates_and_resumes(tmp_path: Path):
    cfg = load_study_config(None, tiny_study(tmp_path))
    table, figures = run_study(cfg, progress=False)
    out = Path(cfg.out)
    assert list(table["run"]) == ["pretrain", "flops-t0.50", "energy-t0.50"]
    assert list(table["loss"]) == ["none", "flops", "energy"]
    saved = pd.read_csv(out / "table1.csv")
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)
    ratio = (saved["energy_savings"] / saved["flops_savings"]).where(saved["flops_savings"] > 0)
    assert saved["energy_per_flops_savings"].tolist() == pytest.approx(ratio.tolist(), nan_ok=True)
    for run in ("pretrain", "flops-t0.50", "energy-t0.50"):
        assert (out / run / "report.json").exists()
    assert all(f.exists() and f.stat().st_size > 0 for f in figures)
    assert {f.suffix for f in figures} == {".png", ".pdf"}

    # Every run starts from the shared backbone: same backbone weights before IADI training.
    backbone = Checkpoints.load(out / "pretrain" / "checkpoints" / "final.pt")["model"]
    assert Checkpoints.load(out / "pretrain" / "checkpoints" / "final.pt")["step"] == 2

    # Rerunning does no work: checkpoints and reports are reused as they are.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoints/final.pt")}
    stamps |= {p: p.stat().st_mtime_ns for p in out.glob("*/report.json")}
    again, _ = run_study(cfg, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert backbone.keys()


def test_study_resumes_a_killed_run(tmp_path: Path):
    cfg = load_study_config(None, tiny_study(tmp_path, losses=["energy"]))
    run_cfg = cfg.run_configs()[0]
    train(cfg.pretrain_config(), progress=False)
    train(run_cfg, stop_after=2, progress=False)  # killed inside the run
    assert not (Path(run_cfg.out) / "checkpoints" / "final.pt").exists()
    run_study(cfg, progress=False)
    assert Checkpoints.load(Path(run_cfg.out) / "checkpoints" / "final.pt")["step"] == 3


def test_init_starts_from_another_run(tmp_path: Path):
    base = load_config(None, {**TINY_TRAIN, "gating": "mgl2s", "pretrain_steps": 2,
                              "gate_steps": 0, "steps": 0, "ddi_steps": 0,
                              "out": str(tmp_path / "base")})  # fmt: skip
    train(base, progress=False)
    start = load_config(None, {**TINY_TRAIN, "gating": "mgl2s", "ddi_steps": 1,
                               "init": base.out, "lr": 1e-12, "momentum": 0, "weight_decay": 0,
                               "out": str(tmp_path / "child")})  # fmt: skip
    train(start, stop_after=1, progress=False)
    parent = Checkpoints.load(Path(base.out) / "checkpoints" / "final.pt")["model"]
    child = Checkpoints.load(Path(start.out) / "checkpoints" / "last.pt")["model"]
    conv = "stage1.0.conv1.weight"
    assert torch.allclose(parent[conv], child[conv], atol=1e-9)  # lr ~ 0: still the parent's
    assert any(k.startswith("exits.") for k in child) and not any(
        k.startswith("exits.") for k in parent)
    other = load_config(None, {**TINY_TRAIN, "gating": "layer", "init": base.out,
                               "out": str(tmp_path / "other")})  # fmt: skip
    with pytest.raises(DDIError, match="checkpoint has gating = 'mgl2s', the run asks for 'layer'"):
        train(other, progress=False)
    with pytest.raises(DDIError, match="no checkpoints/final.pt"):
        train(load_config(None, {**TINY_TRAIN, "init": str(tmp_path),
                                 "out": str(tmp_path / "x")}), progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"losses": ["flops", "joules"]}, ["losses: 'joules'", "energy"]),
        ({"targets": [0.5, 1.5]}, ["targets: 1.5", "[0, 1)"]),
        ({"targets": 0.5}, ["targets must be a list"]),
        ({"train": {"loss": "energy"}}, ["train.loss: set per run by the study"]),
        ({"train": {"stpes": 3}}, ["unknown key 'stpes'"]),
        ({"hw": "no_such_chip"}, ["no_such_chip"]),
        ({"colour": "red"}, ["unknown key 'colour'"]),
    ],
)
def test_bad_study_configs_are_named(tmp_path: Path, content: dict, words: list[str]):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"pretrain_steps": 2, **content}))
    with pytest.raises(DDIError) as err:
        load_study_config(path, {}).pretrain_config()
    for word in words:
        assert word in str(err.value)
