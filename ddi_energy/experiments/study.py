"""The paper's Fig. 12 experiment as one resumable command: one gated network trained with each
resource loss (FLOPs, energy, latency) at several skip targets, all from one shared pre-trained
backbone, evaluated on one hardware model, then a Table I-style CSV and the accuracy-vs-savings
figure.

Layout of the study directory::

    study.yaml                 the study config as run
    pretrain/                  the shared backbone (a run: config, checkpoints, metrics)
    <loss>-t<target>/          one run per (loss, target), e.g. energy-t0.50, with its report
    table1.csv                 per run: FLOPs and energy savings, accuracy, skip ratio
    figures/                   accuracy vs energy / FLOPs savings (PNG + PDF)

Every stage checks what is already on disk: a finished run is not retrained, a run with only
`last.pt` resumes, an evaluated run is not evaluated again. Killing and re-running the same
command therefore continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from ddi_energy.costs.cost_model import MODES
from ddi_energy.errors import DDIError
from ddi_energy.files import atomic_write, load_mapping
from ddi_energy.hardware.config import load_hw
from ddi_energy.reporting.plots import accuracy_vs_savings
from ddi_energy.training.config import TrainConfig, load_config
from ddi_energy.training.evaluate import evaluate, load_run
from ddi_energy.training.loop import train

# Short-run defaults: resnet8 on the `quick` preset's schedule and α (TrainConfig's defaults),
# so the study's 7 trainings take a few minutes on 2 CPU cores (synthetic data).
STUDY_TRAIN_DEFAULTS: dict[str, Any] = {"arch": "resnet8"}
# Keys the study sets per run; a study config may not fix them.
PER_RUN_KEYS = ("loss", "target_skip", "out", "init", "hw", "cost_table", "pretrain_steps")


@dataclass
class StudyConfig:
    """What to train: `losses` × `targets` runs, sharing `train` settings and one backbone."""

    out: str = "runs/study"
    hw: str = "eyeriss"  # every run is trained (energy, latency) and evaluated on this config
    losses: list[str] = field(default_factory=lambda: ["flops", "energy"])
    targets: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])
    pretrain_steps: int = 300  # of the shared backbone (gates forced on)
    train: dict[str, Any] = field(default_factory=dict)  # any TrainConfig key, for every run

    def validate(self) -> StudyConfig:
        if not self.losses:
            raise DDIError("losses: give at least one of " + ", ".join(MODES))
        for loss in self.losses:
            if loss not in MODES:
                raise DDIError(f"losses: {loss!r} is not one of {', '.join(MODES)}")
        if not self.targets:
            raise DDIError("targets: give at least one skip target in [0, 1)")
        for target in self.targets:
            if isinstance(target, bool) or not isinstance(target, (int, float)) \
                    or not 0 <= target < 1:
                raise DDIError(f"targets: {target!r} must be a number in [0, 1)")
        if self.pretrain_steps < 1:
            raise DDIError(f"pretrain_steps = {self.pretrain_steps!r}: must be >= 1")
        fixed = sorted(set(self.train) & set(PER_RUN_KEYS))
        if fixed:
            raise DDIError(f"train.{fixed[0]}: set per run by the study (use the study's "
                           "losses, targets, hw, out and pretrain_steps)")
        load_hw(self.hw)  # every run's config is checked before any work starts
        self.pretrain_config()
        self.run_configs()
        return self

    def base(self) -> dict[str, Any]:
        return {**STUDY_TRAIN_DEFAULTS, **self.train, "hw": self.hw}

    def pretrain_config(self) -> TrainConfig:
        return load_config(None, {**self.base(), "loss": "flops", "target_skip": 0.0,
                                  "pretrain_steps": self.pretrain_steps, "gate_steps": 0,
                                  "steps": 0, "ddi_steps": 0,
                                  "out": str(Path(self.out) / "pretrain")})  # fmt: skip

    def run_configs(self) -> list[TrainConfig]:
        pretrain = str(Path(self.out) / "pretrain")
        return [load_config(None, {**self.base(), "loss": loss, "target_skip": float(target),
                                   "pretrain_steps": 0, "init": pretrain,
                                   "out": str(Path(self.out) / f"{loss}-t{target:.2f}")})
                for loss in self.losses for target in self.targets]  # fmt: skip


def load_study_config(path: str | Path | None, overrides: dict[str, Any]) -> StudyConfig:
    """A YAML study config (keys = `StudyConfig` fields) with explicit overrides on top."""
    allowed = {f.name for f in fields(StudyConfig)}
    data = load_mapping(path, "study config", allowed)
    if not isinstance(data.get("train", {}), dict):
        raise DDIError(f"{path}: train must be a mapping of run settings (arch, steps, ...)")
    train = {**data.pop("train", {}), **overrides.pop("train", {})}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = StudyConfig(**data, train=train)
    except TypeError as exc:
        raise DDIError(f"{path or 'study config'}: {exc}") from None
    for key in ("losses", "targets"):
        if not isinstance(getattr(cfg, key), list):
            raise DDIError(f"{path or 'study config'}: {key} must be a list")
    return cfg.validate()


def _train_or_resume(cfg: TrainConfig, progress: bool) -> None:
    checkpoints = Path(cfg.out) / "checkpoints"
    if (checkpoints / "final.pt").exists():
        return
    train(cfg, resume=(checkpoints / "last.pt").exists(), progress=progress)


def _evaluated(cfg: TrainConfig, hw: str) -> dict[str, Any]:
    """The run's report (evaluated on `hw` now unless a report newer than its checkpoint is
    there)."""
    run = Path(cfg.out)
    report_path = run / "report.json"
    final = run / "checkpoints" / "final.pt"
    if report_path.exists() and report_path.stat().st_mtime >= final.stat().st_mtime:
        return json.loads(report_path.read_text())
    run_cfg, state = load_run(run, None)
    report = evaluate(run_cfg, state, hw=hw, budgets=())
    report.write(run)
    return report.summary


def table_one(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """Table I: per run its loss, target, accuracy, savings and energy saved per FLOP saved."""
    rows = []
    for r in reports:
        rows.append({
            "run": r["run"], "loss": r["loss"], "target_skip": r["target_skip"],
            "accuracy": r["accuracy"], "flops_savings": r["flops_savings"],
            "energy_savings": r["energy_savings"], "cycles_savings": r["cycles_savings"],
            "energy_per_flops_savings": (r["energy_savings"] / r["flops_savings"]
                                         if r["flops_savings"] > 0 else float("nan")),
            "skip_ratio": r["skip_ratio"], "skip_ratio_metric": r["skip_ratio_metric"],
            "unit_skip_ratio": r["unit_skip_ratio"], "channel_skip_ratio": r["channel_skip_ratio"],
            "energy_pj_per_input": r["energy_pj_per_input"],
            "flops_per_input": r["flops_per_input"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def run_study(cfg: StudyConfig, *, progress: bool = True) -> tuple[pd.DataFrame, list[Path]]:
    """Train, evaluate and summarize every run of the study; returns Table I and the figures."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "study.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
    runs = cfg.run_configs()
    bar = tqdm(total=1 + 2 * len(runs), desc="study", unit="stage", disable=not progress,
               position=0)  # fmt: skip
    pretrain = cfg.pretrain_config()
    bar.set_postfix_str("pretrain")
    _train_or_resume(pretrain, progress)
    bar.update(1)
    reports = []
    backbone = _evaluated(pretrain, cfg.hw)
    reports.append({**backbone, "run": "pretrain", "loss": "none", "target_skip": 0.0})
    for run in runs:
        bar.set_postfix_str(Path(run.out).name)
        _train_or_resume(run, progress)
        bar.update(1)
        reports.append({**_evaluated(run, cfg.hw), "run": Path(run.out).name})
        bar.update(1)
    bar.close()
    table = table_one(reports)
    atomic_write(out / "table1.csv", table.to_csv(index=False))
    figures = accuracy_vs_savings([Path(r.out) for r in runs], out / "figures",
                                  baseline=Path(pretrain.out))
    return table, figures
