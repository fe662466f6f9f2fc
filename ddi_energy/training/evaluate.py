"""Evaluate a trained run: accuracy, FLOPs and energy per input and their savings against the
plain network, energy by memory level, skip ratios per unit, cost per class and per difficulty
level, and accuracy under hard budgets for exit models (the paper's Tables I and II).

Savings are against the plain backbone (no gates, no exits) and include the gates' and exits'
own costs: what runs is what is counted. Without a budget exits neither run nor are charged.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ddi_energy.costs.budget import min_budget, set_budget
from ddi_energy.costs.cost_model import MODES, CostModel, cost_model
from ddi_energy.errors import DDIError
from ddi_energy.files import atomic_write_all
from ddi_energy.hardware.energy import ENERGY_COLUMNS
from ddi_energy.models.dynamic import Decisions
from ddi_energy.training.batches import eval_batches
from ddi_energy.training.checkpoints import Checkpoints, checkpoint_of
from ddi_energy.training.config import TrainConfig
from ddi_energy.training.loop import build_model, run_cost_table, run_dataset

DEFAULT_BUDGETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # × the plain network's cost
DEFAULT_HW = "eyeriss"  # prices energy for runs trained without a hardware model


@dataclass
class Report:
    """`summary` goes to report.json; every frame to `<name>.csv`."""

    summary: dict[str, Any]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {out_dir / "report.json": json.dumps(self.summary, indent=2) + "\n"}
        files |= {out_dir / f"{name}.csv": frame.to_csv(index=False)
                  for name, frame in self.frames.items()}  # fmt: skip
        atomic_write_all(files)  # a report and its CSVs change together or not at all
        return list(files)


def load_run(run: Path | None, checkpoint: Path | None) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and checkpoint of a run directory (final, else last) or a checkpoint file."""
    if checkpoint is None:
        if run is None:
            raise DDIError("give --run DIR or --checkpoint FILE")
        checkpoint = checkpoint_of(run)
    state = Checkpoints.load(checkpoint)
    return TrainConfig(**state["config"]), state


def eval_table(cfg: TrainConfig, hw: str | None, cost_table: str | None) -> pd.DataFrame:
    """The one given, else the run's own hardware model, else the bundled Eyeriss config. A
    config given or defaulted here is profiled with the run's count model."""
    if hw or cost_table:
        counts = "scalesim" if cost_table else cfg.counts  # a table brings its own
        cfg = TrainConfig(**{**cfg.__dict__, "hw": hw, "cost_table": cost_table,
                             "counts": counts})  # fmt: skip
    elif not (cfg.hw or cfg.cost_table):
        cfg = TrainConfig(**{**cfg.__dict__, "hw": DEFAULT_HW})
    return run_cost_table(cfg)


@torch.no_grad()
def predict(model: torch.nn.Module, ds, device: torch.device, batch: int = 256,
            workers: int = 0
            ) -> tuple[torch.Tensor, Decisions, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Predicted classes, hard decisions, per-exit predictions ((N, E), -1 where the exit did
    not run) and labels of every input (eval mode: real skipping). Labels come from the stream:
    unreadable images of a streamed dataset are left out."""
    model.eval()
    preds, decisions, exits, labels = [], [], [], []
    chunks = torch.arange(len(ds)).split(batch)
    for x, y in eval_batches(ds, chunks, workers=workers, device=device):
        out = model(x)
        preds.append(out.logits.argmax(1).cpu())
        decisions.append(_to_cpu(out.decisions))
        exits.append(torch.stack([torch.where(logits.isnan().any(1), -1, logits.argmax(1)).cpu()
                                  for logits in out.exit_logits], 1) if out.exit_logits
                     else torch.zeros((len(x), 0), dtype=torch.long))  # fmt: skip
        labels.append(y.cpu())
    return torch.cat(preds), Decisions.cat(decisions), torch.cat(exits), torch.cat(labels)


def _to_cpu(d: Decisions) -> Decisions:
    return Decisions(d.reached.cpu(), d.executed.cpu(), [c.cpu() for c in d.channels],
                     d.channel_gate_ran.cpu(), d.exits_run.cpu(), d.exit_index.cpu())


def _savings(costs: pd.DataFrame, plain: dict[str, float], column: str) -> float:
    return 1 - costs[column].mean() / plain[column]


def per_unit(costs: CostModel, d: Decisions) -> pd.DataFrame:
    """Skip ratios per unit: whole-unit skips (layer gate) and gated channels off (all gates)."""
    active = d.active_channels().double()
    return pd.DataFrame({
        "unit": [u.name for u in costs.structure.units],
        "channels": costs.widths.numpy(),
        "layer_skip_ratio": 1 - d.executed.double().mean(0).numpy(),
        "channel_skip_ratio": 1 - (active.mean(0) / costs.widths.double()).numpy(),
        "mean_active_channels": active.mean(0).numpy(),
    })  # fmt: skip


def grouped(samples: pd.DataFrame, by: str, plain: dict[str, float]) -> pd.DataFrame:
    """Accuracy, mean costs and savings per value of `by` (class or difficulty level)."""
    metrics = [m for m in ("flops", "energy_pj", "cycles") if m in samples]
    frame = samples.groupby(by).agg(inputs=("correct", "size"), accuracy=("correct", "mean"),
                                    **{m: (m, "mean") for m in metrics})  # fmt: skip
    for m in ("flops", "energy_pj"):
        if m in frame:
            frame[f"{m.removesuffix('_pj')}_savings"] = 1 - frame[m] / plain[m]
    return frame.reset_index()


BUDGET_COLUMNS = ("mode", "budget_fraction", "budget", "feasible", "accuracy", "oracle_accuracy",
                  "mean_cost_fraction", "max_cost_fraction", "mean_exit", "final_output_share")


def budget_sweep(model: torch.nn.Module, ds, device: torch.device, costs: CostModel,
                 labels: torch.Tensor, plain: dict[str, float],
                 fractions: tuple[float, ...], workers: int = 0) -> pd.DataFrame:  # fmt: skip
    """Accuracy and cost under hard budgets (fractions of the plain network's FLOPs/energy).

    A budget below `min_budget` is infeasible: its row has `feasible` False and no accuracy or
    cost. `oracle_accuracy` lets every input take the deepest output whose real cost fits the
    budget, known only after running it through every exit: where the look-ahead would halt if
    it knew each input's real cost (it never halts deeper). The gap to `accuracy` is what the
    look-ahead's caution costs. A FLOPs-only `costs` (no cost table) has no energy rows.
    """
    on_device = copy.deepcopy(costs).to(device)  # for the forward; `costs` stays on the CPU
    set_budget(model, math.inf, costs=on_device)  # every exit runs, no input halts
    final, anytime, exit_preds, _ = predict(model, ds, device, workers=workers)
    reach = costs.output_costs(anytime)  # (N, E + 1, M): cost of stopping at each output
    correct = torch.cat([exit_preds, final[:, None]], 1) == labels[:, None]
    rows = []
    for mode, column in _budget_modes(costs):
        col, minimum = costs.index(column), min_budget(costs, column)
        for fraction in fractions:
            limit = fraction * plain[column]
            row = {"mode": mode, "budget_fraction": fraction, "budget": limit,
                   "feasible": limit >= minimum}  # fmt: skip
            if row["feasible"]:
                set_budget(model, limit, mode, costs=on_device)
                preds, d, _, _ = predict(model, ds, device, workers=workers)
                spent = costs.frame(d)
                deepest = (reach[..., col] <= limit).sum(1) - 1
                oracle = correct[torch.arange(len(correct)), deepest]
                row |= {"accuracy": float((preds == labels).double().mean()),
                        "oracle_accuracy": float(oracle.double().mean()),
                        "mean_cost_fraction": spent[column].mean() / plain[column],
                        "max_cost_fraction": spent[column].max() / plain[column],
                        "mean_exit": spent["exit"].mean(),
                        "final_output_share": float((spent["exit"] == len(model.exits)).mean())}
            rows.append(row)
    set_budget(model, None)
    return pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))


def _budget_modes(costs: CostModel) -> list[tuple[str, str]]:
    """(budget mode, metric) pairs the cost model prices: energy needs a cost table."""
    return [(m, c) for m, c in (("flops", "flops"), ("energy", "energy_pj"))
            if c in costs.metrics]


def evaluate(cfg: TrainConfig, state: dict[str, Any], *, hw: str | None = None,
             cost_table: str | None = None, budgets: tuple[float, ...] = DEFAULT_BUDGETS,
             device: str = "cpu", flops_only: bool = False) -> Report:  # fmt: skip
    """The full report of a trained model on its dataset's test split. `flops_only`: no cost
    table (no energy or cycles), for networks whose channel tables take long to profile."""
    if flops_only and (hw or cost_table):
        raise DDIError("give flops_only or hw / cost_table, not both")
    if flops_only and cfg.loss != "flops":
        raise DDIError(f"flops_only: the run was trained on loss = {cfg.loss!r}, whose skip "
                       "ratio needs a cost table")  # fmt: skip
    ds = run_dataset(cfg, "test")
    table = None if flops_only else eval_table(cfg, hw, cost_table)
    dev = torch.device(device)
    model = build_model(cfg, ds.num_classes, dev)
    model.load_state_dict(state["model"])
    costs = cost_model(model, table).cpu()
    # no budget: exits neither run nor charged
    preds, d, _, labels = predict(model, ds, dev, workers=cfg.workers)
    samples = costs.frame(d)
    samples["label"] = labels.numpy()
    samples["correct"] = (preds == labels).numpy()
    if ds.difficulty is not None:
        samples["difficulty"] = ds.difficulty.numpy()
    full = costs.backbone_full()
    plain = {m: float(full[i]) for i, m in enumerate(costs.metrics)}
    col = costs.index(MODES[cfg.loss])
    levels = {c.removeprefix("energy_").removesuffix("_pj"): c for c in ENERGY_COLUMNS}
    meta = table.attrs if table is not None else {"path": "FLOPs only (no cost table)"}
    summary: dict[str, Any] = {
        "arch": cfg.arch, "gating": cfg.gating, "loss": cfg.loss, "data": cfg.data,
        "inputs": len(labels), "step": state["step"], "target_skip": cfg.target_skip,
        "seed": cfg.seed, "channel_group": cfg.channel_group,
        "counts": meta.get("meta", {}).get("counts", "scalesim") if table is not None else None,
        "cost_table": meta.get("path"), "hw": meta.get("meta", {}).get("hw"),
        "accuracy": float(samples["correct"].mean()),
        **{f"{m}_per_input": float(samples[m].mean()) for m in costs.metrics},
        "plain_network": plain,
        **{f"{m.removesuffix('_pj')}_savings": float(_savings(samples, plain, m))
           for m in costs.metrics},
        "skip_ratio": _skip_ratio(samples, costs.metrics[col], plain),
        "skip_ratio_metric": costs.metrics[col],
        "unit_skip_ratio": float(1 - d.executed.double().mean()),
        "channel_skip_ratio": float(samples["channel_skip_ratio"].mean()),
        "overhead_flops_share": float(samples["overhead_flops"].mean() / plain["flops"]),
    }  # fmt: skip
    if table is not None:
        summary["energy_breakdown_pj"] = {k: float(samples[c].mean()) for k, c in levels.items()}
        summary["plain_energy_breakdown_pj"] = {k: plain[c] for k, c in levels.items()}
    frames = {"per_unit": per_unit(costs, d), "per_class": grouped(samples, "label", plain),
              "samples": samples}
    if ds.difficulty is not None:
        frames["per_difficulty"] = grouped(samples, "difficulty", plain)
        summary["per_difficulty"] = frames["per_difficulty"].to_dict(orient="records")
    summary["budgets"] = []
    if len(getattr(model, "exits", [])):
        frames["budgets"] = budget_sweep(model, ds, dev, costs, labels, plain, budgets,
                                         cfg.workers)
        summary["budgets"] = frames["budgets"].to_dict(orient="records")
        summary["min_budget_fraction"] = {
            mode: min_budget(costs, column) / plain[column]
            for mode, column in _budget_modes(costs)}
    return Report(summary, frames)


def _skip_ratio(samples: pd.DataFrame, metric: str, plain: dict[str, float]) -> float:
    """Mean fraction of the backbone's cost (the loss's metric) skipped: what --target-skip
    holds. Gates and exits are excluded, as in training."""
    return float(1 - (samples[metric] - samples[f"overhead_{metric}"]).mean() / plain[metric])
