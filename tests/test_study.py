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
from ddi_energy.experiments.study_tables import matched
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
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["run"]) == ["seed0/pretrain", "seed0/flops-t0.50", "seed0/energy-t0.50"]
    assert list(runs["loss"]) == ["none", "flops", "energy"]
    assert list(table["loss"]) == ["none", "flops", "energy"] and set(table["seeds"]) == {1}
    saved = pd.read_csv(out / "table1.csv")
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)
    ratio = (runs["energy_savings"] / runs["flops_savings"]).where(runs["flops_savings"] > 0)
    assert runs["energy_per_flops_savings"].tolist() == pytest.approx(ratio.tolist(), nan_ok=True)
    assert table["accuracy_mean"].tolist() == pytest.approx(runs["accuracy"].tolist())
    assert table["accuracy_std"].isna().all()  # one seed: no spread
    for run in ("pretrain", "flops-t0.50", "energy-t0.50"):
        assert (out / "seed0" / run / "report.json").exists()
    assert all(f.exists() and f.stat().st_size > 0 for f in figures)
    assert {f.suffix for f in figures} == {".png", ".pdf"}

    # Every run starts from the shared backbone: same backbone weights before IADI training.
    pretrain = out / "seed0" / "pretrain" / "checkpoints" / "final.pt"
    assert Checkpoints.load(pretrain)["step"] == 2

    # Rerunning does no work: checkpoints and reports are reused as they are.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed0/*/checkpoints/final.pt")}
    stamps |= {p: p.stat().st_mtime_ns for p in out.glob("seed0/*/report.json")}
    again, _ = run_study(cfg, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_study_with_seeds_and_channel_groups(tmp_path: Path):
    """Two seeds, each with its own backbone; single channels and aligned groups (auto = the
    14 columns of Eyeriss); Table I's mean and std are those of the per-seed rows."""
    cfg = load_study_config(None, tiny_study(tmp_path, hw="eyeriss", losses=["flops"], seeds=2,
                                             channel_groups=[1, "auto"]))  # fmt: skip
    table, _ = run_study(cfg, progress=False)
    out = Path(cfg.out)
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["run"]) == [f"seed{s}/{r}" for s in (0, 1) for r in (
        "pretrain", "flops-t0.50", "flops-t0.50-gauto")]
    assert list(runs["seed"]) == [0, 0, 0, 1, 1, 1]
    assert list(runs["channel_group"]) == [1, 1, 14] * 2
    backbones = [Checkpoints.load(out / f"seed{s}" / "pretrain" / "checkpoints" / "final.pt")
                 for s in (0, 1)]  # fmt: skip
    assert [b["config"]["seed"] for b in backbones] == [0, 1]
    conv = "stage1.0.conv1.weight"
    assert not torch.equal(backbones[0]["model"][conv], backbones[1]["model"][conv])
    assert list(zip(table["loss"], table["channel_group"], table["seeds"], strict=True)) == [
        ("none", 1, 2), ("flops", 1, 2), ("flops", 14, 2)]
    for _, row in table.iterrows():
        mine = runs[(runs["loss"] == row["loss"]) & (runs["channel_group"] == row["channel_group"])]
        for column in ("accuracy", "energy_savings", "cycles_savings"):
            assert row[f"{column}_mean"] == pytest.approx(mine[column].mean())
            assert row[f"{column}_std"] == pytest.approx(mine[column].std(ddof=1), nan_ok=True)
    for name in ("comparison.csv", "matched_flops.csv"):
        assert (out / name).exists()


def test_study_tables_interpolate_at_matched_savings():
    """Two seeds' curves over two targets: a value inside both is the mean of the two linear
    interpolations; outside a seed's range that seed does not count; no extrapolation."""
    rows = []
    for seed, (a, b) in enumerate(((0.2, 0.4), (0.3, 0.5))):
        for loss, shift in (("flops", 0.0), ("energy", 0.1)):
            for target, x, acc in ((0.3, a + shift, 0.9), (0.6, b + shift, 0.8)):
                rows.append({"seed": seed, "loss": loss, "target_skip": target,
                             "counts": "scalesim", "channel_group": 1, "energy_savings": x,
                             "accuracy": acc - 0.01 * seed})  # fmt: skip
    frame = matched(pd.DataFrame(rows), "energy_savings", ["accuracy"], points=3)
    # mean curves: flops 0.25..0.45, energy 0.35..0.55: overlap 0.35..0.45
    assert sorted(set(frame["energy_savings"].round(9))) == pytest.approx([0.35, 0.40, 0.45])
    flops = frame[frame["loss"] == "flops"].set_index(frame["energy_savings"].round(2)[
        frame["loss"] == "flops"])  # fmt: skip
    # at 0.35: seed 0 (0.2..0.4) gives 0.9 - 0.1 * 0.75 = 0.825; seed 1 (0.3..0.5): 0.89 - 0.025
    assert flops.loc[0.35, "accuracy_mean"] == pytest.approx((0.825 + 0.865) / 2)
    assert flops.loc[0.35, "seeds"] == 2
    assert flops.loc[0.45, "seeds"] == 1  # beyond seed 0's curve
    assert flops.loc[0.45, "accuracy_mean"] == pytest.approx(0.89 - 0.075)
    assert pd.isna(flops.loc[0.45, "accuracy_std"])
    apart = pd.DataFrame(rows).assign(energy_savings=lambda f: f["energy_savings"]
                                      + (f["loss"] == "energy") * 1.0)  # fmt: skip
    assert matched(apart, "energy_savings", ["accuracy"]).empty  # curves do not overlap


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
        ({"seeds": 0}, ["seeds = 0: a number >= 1"]),
        ({"seeds": [1, 1]}, ["a list of distinct seeds"]),
        ({"channel_groups": ["wide"]}, ["channel_groups = 'wide'", "'auto'"]),
        ({"train": {"seed": 3}}, ["train.seed: set per run by the study"]),
    ],
)
def test_bad_study_configs_are_named(tmp_path: Path, content: dict, words: list[str]):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"pretrain_steps": 2, **content}))
    with pytest.raises(DDIError) as err:
        load_study_config(path, {}).pretrain_config()
    for word in words:
        assert word in str(err.value)


def test_study_figure_draws_the_spread_over_seeds():
    """One curve per (loss, group) plus the backbone; each point's bars span mean ± std."""
    from ddi_energy.reporting.study_figure import study_figure

    rows = [("none", 0.0, 1, -0.19, 0.01, 0.90, 0.002)]
    rows += [(loss, t, g, s, 0.02, 0.89, 0.004) for loss in ("flops", "energy") for g in (1, 14)
             for t, s in ((0.4, 0.3), (0.6, 0.5))]  # fmt: skip
    table = pd.DataFrame(rows, columns=["loss", "target_skip", "channel_group",
                                        "energy_savings_mean", "energy_savings_std",
                                        "accuracy_mean", "accuracy_std"])  # fmt: skip
    table["flops_savings_mean"], table["flops_savings_std"] = table["energy_savings_mean"], 0.0
    table["counts"], table["seeds"] = "scalesim", 3
    fig = study_figure(table, "resnet8 on eyeriss")
    energy_ax = fig.axes[0]
    assert len(energy_ax.containers) == 5
    labels = [c.get_label() for c in energy_ax.containers]
    assert "energy loss, groups of 14" in labels and "FLOPs loss, single channels" in labels
    bars = energy_ax.containers[labels.index("energy loss, groups of 14")]
    _, _, (xbars, ybars) = bars
    for segment in xbars.get_segments():  # ±2 points of energy savings around the mean
        assert segment[1][0] - segment[0][0] == pytest.approx(4.0)
    for segment in ybars.get_segments():  # ±0.4 points of accuracy
        assert segment[1][1] - segment[0][1] == pytest.approx(0.8)
    assert "3 seeds" in fig.texts[0].get_text()
