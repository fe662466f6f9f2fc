"""Train DDI the paper's way (Sec. IV-A): optional backbone pre-training, IADI step 1 (backbone
frozen, gates trained toward zero skipping), IADI step 2 (joint, CE + α·E with α's sign flipped
per batch to hold the target), then the DDI stage (exits added, L_o + Σ L_i). E is
`ResourceLoss`: a fraction of the plain backbone's cost. Under `gating = none` there are no
gates: IADI step 1 is skipped and the other stages train on CE alone (a plain baseline).

Everything a step does is a pure function of (config, step): the batch (`batch_indices`) and its
augmentation (a generator seeded by the step), so a run resumed from a checkpoint takes exactly
the steps an uninterrupted run takes. Data-parallel under `torchrun` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from ddi_energy.costs.channel_groups import resolve_channel_group
from ddi_energy.costs.cost_model import CostModel
from ddi_energy.costs.resource_loss import ResourceLoss
from ddi_energy.errors import DDIError
from ddi_energy.files import atomic_write
from ddi_energy.models.pretrained import load_pretrained
from ddi_energy.models.registry import model_cfg
from ddi_energy.models.zoo import get_model
from ddi_energy.tables.lookup import cost_table_for
from ddi_energy.training.batches import train_batches
from ddi_energy.training.checkpoints import CHECKPOINT_FORMAT, Checkpoints, init_weights
from ddi_energy.training.config import TrainConfig
from ddi_energy.training.data import Dataset, load_dataset
from ddi_energy.training.distributed import dist_info, mean_across
from ddi_energy.training.imagenet import ImageFolderStream
from ddi_energy.training.metrics_log import MetricsLog, truncate_metrics
from ddi_energy.training.precise_bn import precise_bn


def run_cost_table(cfg: TrainConfig) -> pd.DataFrame | None:
    """The run's cost table: loaded, or profiled from `hw` now (seconds), or None."""
    return cost_table_for(cfg.arch, hw=cfg.hw, cost_table=cfg.cost_table, counts=cfg.counts,
                          who="profiled by the run")  # fmt: skip


def backbone_skip(costs: CostModel, out, col: int) -> Tensor:
    """(B,) fraction of the backbone's cost (metric `col`) each input skipped."""
    total, overhead = costs.per_input(out.decisions)
    return 1 - (total - overhead)[:, col] / costs.backbone_full()[col]


def run_dataset(cfg: TrainConfig, split: str) -> Dataset | ImageFolderStream:
    """The run's data at its network's input resolution (224 for the ImageNet networks)."""
    size = model_cfg(cfg.arch).input_size[-1]
    return load_dataset(cfg.data, split, cfg.data_dir, image_size=size)


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device | str) -> nn.Module:
    """The run's network, initialized from its seed (`channel_group` already a number: runs
    record the one `auto` resolved to)."""
    group = resolve_channel_group(cfg.channel_group, None)
    torch.manual_seed(cfg.seed)
    return get_model(cfg.arch, gating=cfg.gating, exits=cfg.ddi_steps > 0,
                     num_classes=num_classes, channel_group=group).to(device)  # fmt: skip


def _trainable(model: nn.Module, stage: str) -> list[nn.Parameter]:
    groups = model.parameter_groups()
    chosen = {"pretrain": ["backbone"], "gates": ["gates"], "joint": ["backbone", "gates"],
              "ddi": ["backbone", "gates", "exits"]}[stage]  # fmt: skip
    for name, params in groups.items():
        for p in params:
            p.requires_grad_(name in chosen)
    return [p for name in chosen for p in groups[name]]


def autocast(cfg: TrainConfig, device: torch.device):
    """Mixed precision if `cfg.amp`: bfloat16 on CPU (no scaler needed: float32's range),
    float16 elsewhere (with `GradScaler`)."""
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=cfg.amp)


def _steps(cfg: TrainConfig, start: int) -> Iterator[tuple[str, int, int, bool, float]]:
    """(stage, step, stage end, first step of the stage in this process, learning rate) from
    `start` on."""
    for stage, begin, end in cfg.stages:
        first = True
        for step in range(max(begin, start), end):
            yield stage, step, end, first, learning_rate(cfg, step - begin, end - begin)
            first = False


def learning_rate(cfg: TrainConfig, step: int, steps: int) -> float:
    """The rate of a stage's `step` of `steps`. Cosine decay lets the gates settle where α's sign
    flips (the target) instead of ending at a random phase of the ±α oscillation."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / steps))


def train(cfg: TrainConfig, *, resume: bool = False, stop_after: int | None = None,
          progress: bool = True) -> Path:  # fmt: skip
    """Run (or resume) the schedule of `cfg`; returns the run directory.

    `stop_after` ends the process after that many steps of this call (a deterministic stand-in
    for a kill, used to test resuming); the checkpoint of that step is written first.
    """
    rank, world = dist_info(cfg.device)
    run_dir = Path(cfg.out)
    checkpoints = Checkpoints(run_dir)
    device = torch.device(cfg.device)
    if cfg.device.startswith("cuda") and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if cfg.batch % world:
        raise DDIError(f"batch = {cfg.batch} must be divisible by the {world} processes")
    ds = run_dataset(cfg, "train")
    if cfg.epochs:
        steps = max(1, round(cfg.epochs * len(ds) / cfg.batch))
        cfg = TrainConfig(**{**asdict(cfg), "epochs": 0, "steps": steps,
                             "ddi_steps": steps if cfg.ddi_steps else 0})  # fmt: skip
    table = run_cost_table(cfg)
    cfg = replace(cfg, channel_group=resolve_channel_group(cfg.channel_group, table))
    model = build_model(cfg, ds.num_classes, device)
    if cfg.init and not resume:
        init_weights(model, cfg)
    if cfg.pretrained and not resume:  # the classifier too if it has the arch's own classes
        load_pretrained(model, cfg.pretrained,
                        classifier=ds.num_classes == model_cfg(cfg.arch).num_classes)
    start, opt_state = 0, None
    if resume:
        state = checkpoints.load(checkpoints.dir / "last.pt", cfg)
        model.load_state_dict(state["model"])
        start, opt_state = state["step"], state["optimizer"]
        if rank == 0:
            truncate_metrics(run_dir / "metrics.csv", start)
    elif rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    resource = ResourceLoss(model, table, mode=cfg.loss)
    costs, col = resource.costs, resource.col
    if table is not None and rank == 0:
        atomic_write(run_dir / "cost_table.json", json.dumps(table.attrs.get("meta", {}),
                                                             indent=2, default=str))
    log = MetricsLog(run_dir / "metrics.csv", cfg.log_every, enabled=rank == 0)
    if resume:
        log.rows = list(state.get("pending_metrics", []))  # a partly logged interval
    bar = tqdm(total=cfg.total_steps, initial=start, desc="train", unit="step",
               disable=not progress or rank != 0)
    net: nn.Module = model
    optimizer = None
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type != "cpu")
    if resume and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    batches = train_batches(ds, batch=cfg.batch, seed=cfg.seed, steps=range(start, cfg.total_steps),
                            rank=rank, world=world, workers=cfg.workers, device=device)
    done = 0
    for stage, step, end, first, lr in _steps(cfg, start):
        if first:
            params = _trainable(model, stage)
            model.force_on = stage == "pretrain"
            net = (nn.parallel.DistributedDataParallel(
                model, device_ids=[device] if device.type == "cuda" else None,
                find_unused_parameters=True) if world > 1 else model)  # fmt: skip
            optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                        weight_decay=cfg.weight_decay)
            if opt_state is not None:
                optimizer.load_state_dict(opt_state)
                opt_state = None
            net.train()
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        with autocast(cfg, device):
            out = net(x)
            ce = F.cross_entropy(out.logits, y)
            if stage == "ddi":
                ce = ce + sum(F.cross_entropy(logits, y) for logits in out.exit_logits)
        skip = mean_across(backbone_skip(costs, out, col).mean().detach(), world)
        sign = 0.0
        if stage != "pretrain" and model.gating != "none":
            target = 0.0 if stage == "gates" else cfg.target_skip
            sign = 1.0 if float(skip) < target else -1.0
        energy = resource(out)  # a fraction of the plain backbone's cost
        loss = ce + sign * cfg.alpha * energy
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        acc = (out.logits.argmax(1) == y).double().mean()
        log.add(step, stage, loss=float(loss.detach()), ce=float(ce.detach()),
                resource=float(energy.detach()),
                acc=float(acc), skip=float(skip), sign=sign, lr=lr)
        bar.update(1)
        bar.set_postfix(stage=stage, loss=f"{float(loss.detach()):.3f}", acc=f"{float(acc):.2f}",
                        skip=f"{float(skip):.2f}", sign="+" if sign > 0 else "-" if sign else "0")
        done += 1
        last = step + 1 == end
        if rank == 0 and step + 1 == cfg.total_steps and cfg.bn_batches:
            precise_bn(model, ds, cfg, device)  # before the final checkpoint, which keeps it
        if rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or last
                          or done == stop_after):  # fmt: skip
            checkpoints.save({"format": CHECKPOINT_FORMAT, "config": asdict(cfg),
                              "step": step + 1, "stage": stage,
                              "model": model.state_dict(),
                              "optimizer": optimizer.state_dict() if not last else None,
                              "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                              "pending_metrics": list(log.rows)},
                             final=step + 1 == cfg.total_steps)  # fmt: skip
        if last:
            opt_state = None  # the next stage starts its own optimizer
        if done == stop_after:
            break
    batches.close()  # stops its data workers
    bar.close()
    if start + done == cfg.total_steps:
        log.flush(cfg.total_steps - 1, cfg.stages[-1][0])  # the last, partial interval
    if world > 1:
        dist.barrier()
    return run_dir
