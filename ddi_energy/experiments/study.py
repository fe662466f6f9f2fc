"""The paper's Fig. 12 experiment as one resumable command: per seed, one gated network trained
with each resource loss (FLOPs, energy, latency) at several skip targets and channel groups, all
from that seed's shared pre-trained backbone, evaluated on one hardware model, then Table I
(mean and spread over seeds), curves compared at matched savings, and the figure.

Layout of the study directory::

    study.yaml                       the study config as run
    seed<s>/pretrain/                seed s's shared backbone (a run: config, checkpoints, ...)
    seed<s>/<loss>-t<target>[-g<G>]/ one run per (loss, target, channel group), e.g.
                                     energy-t0.50 (single channels) or energy-t0.50-gauto
    runs.csv                         per run: seed, accuracy, savings, skip ratios
    table1.csv                       per (loss, target, counts, group): *_mean and *_std
    comparison.csv                   accuracy at matched energy savings, per series
    matched_flops.csv                energy and cycles savings (and accuracy) at matched FLOPs
    figures/                         accuracy vs energy / FLOPs savings with ±1 std bars

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

from ddi_energy.costs.channel_groups import parse_channel_group
from ddi_energy.costs.cost_model import MODES
from ddi_energy.errors import DDIError
from ddi_energy.experiments.study_tables import matched, run_rows, table_one
from ddi_energy.files import atomic_write_all, check_writable, load_mapping
from ddi_energy.hardware.config import load_hw
from ddi_energy.reporting.plots import save
from ddi_energy.reporting.study_figure import study_figure
from ddi_energy.training.config import TrainConfig, load_config
from ddi_energy.training.evaluate import evaluate, load_run
from ddi_energy.training.loop import train

# Short-run defaults: resnet8 on the `quick` preset's schedule and α (TrainConfig's defaults),
# so the study's 7 trainings take a few minutes on 2 CPU cores (synthetic data).
STUDY_TRAIN_DEFAULTS: dict[str, Any] = {"arch": "resnet8"}
# Keys the study sets per run; a study config may not fix them.
PER_RUN_KEYS = ("loss", "target_skip", "out", "init", "hw", "cost_table", "pretrain_steps",
                "seed", "channel_group")


@dataclass
class StudyConfig:
    """What to train: per seed, `losses` × `targets` × `channel_groups` runs, sharing `train`
    settings and the seed's backbone. `seeds`: a number N (seeds 0..N-1) or a list of seeds."""

    out: str = "runs/study"
    hw: str = "eyeriss"  # every run is trained (energy, latency) and evaluated on this config
    losses: list[str] = field(default_factory=lambda: ["flops", "energy"])
    targets: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])
    pretrain_steps: int = 300  # of the shared backbone (gates forced on)
    seeds: int | list[int] = 1
    channel_groups: list[int | str] = field(default_factory=lambda: [1])  # numbers or "auto"
    train: dict[str, Any] = field(default_factory=dict)  # any TrainConfig key, for every run

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

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
        if not _valid_seeds(self.seeds):
            raise DDIError(f"seeds = {self.seeds!r}: a number >= 1 or a list of distinct "
                           "seeds >= 0")  # fmt: skip
        if not self.channel_groups:
            raise DDIError("channel_groups: give at least one (a number >= 1 or auto)")
        self.channel_groups = [parse_channel_group(g, "channel_groups") for g in
                               self.channel_groups]  # fmt: skip
        if self.pretrain_steps < 1:
            raise DDIError(f"pretrain_steps = {self.pretrain_steps!r}: must be >= 1")
        fixed = sorted(set(self.train) & set(PER_RUN_KEYS))
        if fixed:
            raise DDIError(f"train.{fixed[0]}: set per run by the study (use the study's "
                           "losses, targets, hw, out and pretrain_steps)")
        load_hw(self.hw)  # every run's config is checked before any work starts
        for seed in self.seed_list:
            self.pretrain_config(seed)
        self.run_configs()
        return self

    def base(self) -> dict[str, Any]:
        return {**STUDY_TRAIN_DEFAULTS, **self.train, "hw": self.hw}

    def seed_dir(self, seed: int) -> Path:
        return Path(self.out) / f"seed{seed}"

    def pretrain_config(self, seed: int | None = None) -> TrainConfig:
        """The backbone of `seed` (default the first): single channels, since its gates are
        forced on and not trained; runs with other groups start their channel gates fresh."""
        seed = self.seed_list[0] if seed is None else seed
        return load_config(None, {**self.base(), "loss": "flops", "target_skip": 0.0,
                                  "pretrain_steps": self.pretrain_steps, "gate_steps": 0,
                                  "steps": 0, "ddi_steps": 0, "seed": seed, "channel_group": 1,
                                  "out": str(self.seed_dir(seed) / "pretrain")})  # fmt: skip

    def run_configs(self, seed: int | None = None) -> list[TrainConfig]:
        """The runs of `seed`, or of every seed."""
        seeds = self.seed_list if seed is None else [seed]
        return [load_config(None, {
            **self.base(), "loss": loss, "target_skip": float(target), "pretrain_steps": 0,
            "seed": s, "channel_group": group, "init": str(self.seed_dir(s) / "pretrain"),
            "out": str(self.seed_dir(s) / run_name(loss, target, group))})
            for s in seeds for loss in self.losses for target in self.targets
            for group in self.channel_groups]  # fmt: skip


def _valid_seeds(seeds: object) -> bool:
    def integer(s: object) -> bool:
        return isinstance(s, int) and not isinstance(s, bool)

    if integer(seeds):
        return seeds >= 1
    return (isinstance(seeds, list) and bool(seeds) and len(set(seeds)) == len(seeds)
            and all(integer(s) and s >= 0 for s in seeds))  # fmt: skip


def run_name(loss: str, target: float, group: int | str) -> str:
    """e.g. energy-t0.50 (single channels), energy-t0.50-g14, energy-t0.50-gauto."""
    return f"{loss}-t{target:.2f}" + ("" if group == 1 else f"-g{group}")


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
    for key in ("losses", "targets", "channel_groups"):
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


def run_study(cfg: StudyConfig, *, progress: bool = True) -> tuple[pd.DataFrame, list[Path]]:
    """Train, evaluate and summarize every run of the study; returns Table I and the figures."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_all({out / "study.yaml": yaml.safe_dump(asdict(cfg), sort_keys=False)})
    seeds = cfg.seed_list
    bar = tqdm(total=len(seeds) * (2 + 2 * len(cfg.run_configs(seeds[0]))), desc="study",
               unit="stage", disable=not progress, position=0)  # fmt: skip
    reports = []
    for seed in seeds:
        pretrain = cfg.pretrain_config(seed)
        bar.set_postfix_str(f"seed {seed} pretrain")
        _train_or_resume(pretrain, progress)
        bar.update(1)
        reports.append({**_evaluated(pretrain, cfg.hw), "run": f"seed{seed}/pretrain",
                        "loss": "none", "target_skip": 0.0})  # fmt: skip
        bar.update(1)
        for run in cfg.run_configs(seed):
            name = f"seed{seed}/{Path(run.out).name}"
            bar.set_postfix_str(name)
            _train_or_resume(run, progress)
            bar.update(1)
            reports.append({**_evaluated(run, cfg.hw), "run": name})
            bar.update(1)
    bar.close()
    runs = run_rows(reports)
    table = table_one(runs)
    atomic_write_all({
        out / "runs.csv": runs.to_csv(index=False),
        out / "table1.csv": table.to_csv(index=False),
        out / "comparison.csv": matched(runs, "energy_savings", ["accuracy"]).to_csv(index=False),
        out / "matched_flops.csv": matched(
            runs, "flops_savings", ["energy_savings", "cycles_savings", "accuracy"]
        ).to_csv(index=False),
    })  # fmt: skip
    figures = out / "figures"
    check_writable(figures)
    arch = cfg.base()["arch"]
    return table, save(study_figure(table, f"{arch} on {cfg.hw}"), figures,
                       "accuracy_vs_savings")
