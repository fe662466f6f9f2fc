"""`ddi-energy train` / `eval`: the recipe's stages, resume, DDP, configs, checkpoints, reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from cli_helpers import run

import ddi_energy
from ddi_energy.errors import DDIError
from ddi_energy.training.checkpoints import Checkpoints
from ddi_energy.training.config import TrainConfig, load_config
from ddi_energy.training.evaluate import evaluate, load_run
from ddi_energy.training.loop import train

TINY = {"arch": "resnet8", "gating": "mgl2s", "batch": 16, "pretrain_steps": 2, "gate_steps": 2,
        "steps": 4, "ddi_steps": 2, "checkpoint_every": 2, "log_every": 2, "alpha": 0.05}




def tiny(tmp_path: Path, name: str, **changes) -> TrainConfig:
    return load_config(None, {**TINY, "out": str(tmp_path / name), **changes})


def test_resume_equals_uninterrupted(tmp_path: Path):
    whole = train(tiny(tmp_path, "whole"), progress=False)
    cfg = tiny(tmp_path, "killed")
    train(cfg, stop_after=5, progress=False)  # dies inside IADI step 2, after a checkpoint...
    assert Checkpoints.load(Path(cfg.out) / "checkpoints" / "last.pt")["step"] == 5
    assert not (Path(cfg.out) / "checkpoints" / "final.pt").exists()
    train(cfg, resume=True, progress=False)  # ...and continues
    a = Checkpoints.load(whole / "checkpoints" / "final.pt")
    b = Checkpoints.load(Path(cfg.out) / "checkpoints" / "final.pt")
    assert a["step"] == b["step"] == 10
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    pd.testing.assert_frame_equal(pd.read_csv(whole / "metrics.csv").drop(columns="time"),
                                  pd.read_csv(Path(cfg.out) / "metrics.csv").drop(columns="time"))


def test_stages_train_what_they_should(tmp_path: Path):
    """Pre-training moves only the backbone, IADI step 1 only the gates, DDI the exits too."""
    snapshots = {}
    for stop, name in ((2, "pretrain"), (4, "gates"), (10, "ddi")):
        cfg = tiny(tmp_path, name)
        train(cfg, stop_after=stop, progress=False)
        snapshots[name] = Checkpoints.load(Path(cfg.out) / "checkpoints" / "last.pt")["model"]
    torch.manual_seed(0)  # the runs' seed: the same initial weights
    init = ddi_energy.get_model("resnet8", gating="mgl2s", exits=True).state_dict()

    def moved(a: dict, b: dict, prefix: str) -> bool:
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix)
                   and "running" not in k and "num_batches" not in k)

    assert moved(init, snapshots["pretrain"], "stage1.0.conv1")
    assert not moved(init, snapshots["pretrain"], "layer_gate")
    assert not moved(snapshots["pretrain"], snapshots["gates"], "stage1.0.conv1")
    assert moved(snapshots["pretrain"], snapshots["gates"], "layer_gate")
    assert not moved(init, snapshots["gates"], "exits")
    assert moved(snapshots["gates"], snapshots["ddi"], "exits")


def test_eval_report(tmp_path: Path, capsys):
    cfg = tiny(tmp_path, "r", loss="energy", hw="edge_npu")
    train(cfg, progress=False)
    code, out, _ = run(["eval", "--run", cfg.out, "--budgets", "0.3,0.6"], capsys)
    assert code == 0, out
    report = json.loads((Path(cfg.out) / "report.json").read_text())
    for key in ("accuracy", "flops_savings", "energy_savings", "skip_ratio",
                "energy_breakdown_pj", "budgets"):
        assert key in report
    assert report["hw"]["name"] == "edge_npu"
    assert sum(report["energy_breakdown_pj"].values()) == pytest.approx(
        report["energy_pj_per_input"])
    assert [b["budget_fraction"] for b in report["budgets"]] == [0.3, 0.6] * 2
    budgets = pd.read_csv(Path(cfg.out) / "budgets.csv")
    # resnet8 on edge_npu: the first exit needs 0.46 (FLOPs) / 0.47 (energy) of the plain cost
    assert budgets["feasible"].tolist() == [False, True] * 2
    infeasible, feasible = budgets[~budgets["feasible"]], budgets[budgets["feasible"]]
    assert infeasible[["accuracy", "oracle_accuracy", "max_cost_fraction"]].isna().all().all()
    assert (feasible["max_cost_fraction"] <= feasible["budget_fraction"]).all()
    assert report["min_budget_fraction"]["flops"] == pytest.approx(0.464, abs=0.001)
    per_unit = pd.read_csv(Path(cfg.out) / "per_unit.csv")
    assert list(per_unit["unit"]) == ["stage1.0", "stage2.0", "stage3.0"]
    assert len(pd.read_csv(Path(cfg.out) / "per_difficulty.csv")) == 4
    assert "accuracy" in out and "energy by memory level" in out and "hard budgets" in out
    assert out.count("infeasible") == 2  # the printed budget rows say so instead of an accuracy


@pytest.mark.parametrize("loss,counts", [("flops", "scalesim"), ("energy", "scalesim"),
                                         ("latency", "scalesim"), ("energy", "physical")])
def test_resource_term_is_a_fraction_of_the_plain_cost(tmp_path: Path, loss: str, counts: str):
    """metrics.csv's `resource` is the hard cost over the plain backbone's, in every mode and
    under either count model: about 1 plus the gates' (and exits') share while the gates keep
    everything (training runs every exit)."""
    cfg = tiny(tmp_path, loss, loss=loss, hw="eyeriss", counts=counts)
    train(cfg, progress=False)
    assert json.loads((Path(cfg.out) / "cost_table.json").read_text())["counts"] == counts
    metrics = pd.read_csv(Path(cfg.out) / "metrics.csv")
    assert metrics["resource"].between(0, 1.5).all()
    assert metrics["resource"].max() > 1.0  # gates on at the start: the plain cost + the gates


def test_gating_none_trains_a_plain_baseline_with_default_options(tmp_path: Path):
    cfg = tiny(tmp_path, "plain", gating="none")  # gate_steps stays at its (nonzero) default
    assert [stage for stage, _, _ in cfg.stages] == ["pretrain", "joint", "ddi"]
    assert cfg.total_steps == 8
    train(cfg, progress=False)
    metrics = pd.read_csv(Path(cfg.out) / "metrics.csv")
    assert (metrics["sign"] == 0).all() and metrics["step"].max() == 8


def test_presets(tmp_path: Path):
    quick = load_config(None, {})
    assert (quick.preset, quick.total_steps, quick.batch, quick.ddi_steps) == ("quick", 625, 64, 0)
    paper = load_config(None, {"preset": "paper-cifar"})
    assert (paper.batch, paper.gate_steps, paper.steps, paper.ddi_steps) == (128, 2000, 50000,
                                                                            50000)
    assert paper.alpha == pytest.approx(2e-4 * 336.4, rel=1e-3)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "paper-cifar", "steps": 7}))
    cfg = load_config(path, {"ddi_steps": 0})
    assert (cfg.steps, cfg.ddi_steps, cfg.gate_steps, cfg.batch) == (7, 0, 2000, 128)
    with pytest.raises(DDIError, match="preset = 'paper'.*allowed: quick, paper-cifar, "
                       "paper-imagenet"):
        load_config(None, {"preset": "paper"})


def test_paper_imagenet_preset(tmp_path: Path):
    cfg = load_config(None, {"preset": "paper-imagenet"})
    assert (cfg.arch, cfg.gating, cfg.data, cfg.batch, cfg.lr, cfg.pretrain_steps) == (
        "densenet201", "mgl2s", "imagenet", 512, 0.05, 0)
    # 4e-6 per MFLOP × DenseNet-201's 8,582.7 plain MFLOPs (tests/test_imagenet.py measures it)
    assert cfg.alpha == pytest.approx(4e-6 * 8582.7, abs=5e-5)
    # IADI step 2 and the DDI stage 90 epochs each: of 1,281,167 images at batch 512 on ImageNet
    assert (cfg.epochs, cfg.steps, cfg.ddi_steps, cfg.gate_steps) == (90, 225205, 225205, 2000)
    assert cfg.total_steps == 452410
    assert [stage for stage, _, _ in cfg.stages] == ["gates", "joint", "ddi"]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "paper-imagenet", "arch": "resnet50",
                                    "data_dir": "/data/imagenet"}))  # fmt: skip
    cfg = load_config(path, {"batch": 256, "amp": True})
    assert (cfg.arch, cfg.batch, cfg.amp, cfg.data_dir, cfg.epochs) == (
        "resnet50", 256, True, "/data/imagenet", 90)
    # explicit steps drop the preset's epochs (which would set them from the data's size)
    cfg = load_config(path, {"steps": 7})
    assert (cfg.epochs, cfg.steps, cfg.ddi_steps) == (0, 7, 225205)
    cfg = load_config(path, {"steps": 7, "epochs": 2})
    assert (cfg.epochs, cfg.steps) == (2, 7)
    assert load_config(path, {"epochs": 0.5}).epochs == 0.5  # a float field takes fractions


def test_config_file_and_overrides(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"arch": "resnet14", "steps": 7, "alpha": 0.001}))
    cfg = load_config(path, {"steps": 9})
    assert (cfg.arch, cfg.steps, cfg.alpha, cfg.lr, cfg.batch) == ("resnet14", 9, 0.001, 0.05, 64)


@pytest.mark.parametrize(
    ("content", "overrides", "words"),
    [
        ({"arch": "resnet8", "stpes": 3}, {}, ["unknown key 'stpes'", "steps"]),
        ({"alpha": "lots"}, {}, ["alpha = 'lots' must be a number"]),
        ({"steps": 2.5}, {}, ["steps = 2.5 must be an integer"]),
        ({}, {"loss": "energy"}, ["needs --hw or --cost-table"]),
        ({}, {"target_skip": 1.2}, ["target_skip = 1.2", "[0, 1)"]),
        ({}, {"gating": "lstm"}, ["gating = 'lstm'", "mgl2s"]),
        ({}, {"data": "mnist"}, ["data = 'mnist'", "synthetic"]),
        ("- a\n- list\n", {}, ["a run config is a mapping"]),
    ],
)
def test_bad_configs_are_named(tmp_path: Path, content, overrides, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(DDIError) as err:
        load_config(path, overrides)
    for word in words:
        assert word in str(err.value)


def test_mismatched_or_foreign_checkpoints_are_refused(tmp_path: Path, capsys):
    cfg = tiny(tmp_path, "a", ddi_steps=0, steps=2)
    train(cfg, progress=False)
    code, _, err = run(["train", "--out", cfg.out, "--resume", "--gating", "layer"], capsys)
    assert code == 2 and "checkpoint has gating = 'mgl2s', the run asks for 'layer'" in err
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    code, _, err = run(["eval", "--checkpoint", str(foreign)], capsys)
    assert code == 2 and "not a ddi-energy checkpoint" in err
    code, _, err = run(["eval", "--run", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no checkpoints/final.pt" in err


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    Path(sys.executable).parent / "torchrun"), reason="torchrun not installed")
def test_two_process_gloo_ddp_trains_and_evaluates(tmp_path: Path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "ddi_energy",
           "train", "--arch", "resnet8", "--gating", "layer", "--batch", "16",
           "--pretrain-steps", "0", "--gate-steps", "2", "--steps", "3", "--ddi-steps", "0",
           "--checkpoint-every", "2", "--log-every", "1", "--alpha", "0.05",
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    state = Checkpoints.load(out / "checkpoints" / "final.pt")
    assert state["step"] == 5
    assert len(pd.read_csv(out / "metrics.csv")) == 5
    cfg, state = load_run(out, None)
    report = evaluate(cfg, state, budgets=())
    assert 0 <= report.summary["accuracy"] <= 1
