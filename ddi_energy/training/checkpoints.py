"""Checkpoints of a run: written atomically, loaded weights-only and checked against the run,
and a run started from another run's weights (`init`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.files import load_torch_file
from ddi_energy.training.config import TrainConfig

CHECKPOINT_FORMAT = 1


class Checkpoints:
    """`<run>/checkpoints/last.pt` (and `final.pt`), written atomically, loaded weights-only."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "checkpoints"

    def save(self, state: dict[str, Any], final: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "final.pt") if final else ("last.pt",):
            tmp = self.dir / f".{name}.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.dir / name)

    @staticmethod
    def load(path: Path, cfg: TrainConfig | None = None) -> dict[str, Any]:
        """A checkpoint, checked against the run's arch and gating if `cfg` is given."""
        state = load_torch_file(path, "ddi-energy checkpoint")
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise DDIError(f"{path}: not a ddi-energy checkpoint (format {CHECKPOINT_FORMAT})")
        if cfg is not None:
            saved = state["config"]
            for key in ("arch", "gating", "data"):
                if saved[key] != getattr(cfg, key):
                    raise DDIError(f"{path}: checkpoint has {key} = {saved[key]!r}, the run asks "
                                   f"for {getattr(cfg, key)!r}")  # fmt: skip
            if saved.get("channel_group", 1) != cfg.channel_group:
                raise DDIError(f"{path}: checkpoint has channel_group = "
                               f"{saved.get('channel_group', 1)!r}, the run asks for "
                               f"{cfg.channel_group!r}")  # fmt: skip
            if (saved["ddi_steps"] > 0) != (cfg.ddi_steps > 0):
                raise DDIError(f"{path}: checkpoint and run differ in exits (ddi_steps > 0)")
        return state


def checkpoint_of(path: str | Path) -> Path:
    """A checkpoint file, or the final (else last) checkpoint of a run directory."""
    path = Path(path)
    if path.is_file() or path.suffix == ".pt":
        return path
    for name in ("final.pt", "last.pt"):
        if (path / "checkpoints" / name).exists():
            return path / "checkpoints" / name
    raise DDIError(f"{path}: no checkpoints/final.pt or last.pt (not a trained run?)")


def init_weights(model: nn.Module, cfg: TrainConfig) -> None:
    """Start from `cfg.init` (e.g. a pre-trained backbone shared by several runs). Exit branches
    may be absent from it (they are trained in the DDI stage); anything else must match, except
    the channel gates of a checkpoint with another `channel_group`: those start fresh (their
    outputs switch other groups)."""
    path = checkpoint_of(cfg.init)
    state = Checkpoints.load(path)
    saved = state["config"]
    for key in ("arch", "gating"):
        if saved[key] != getattr(cfg, key):
            raise DDIError(f"init {path}: checkpoint has {key} = {saved[key]!r}, the run asks "
                           f"for {getattr(cfg, key)!r}")  # fmt: skip
    regroup = saved.get("channel_group", 1) != cfg.channel_group
    weights = {k: v for k, v in state["model"].items() if not (regroup and _channel_gate_key(k))}
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shapes differ, e.g. another number of classes
        lines = str(exc).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise DDIError(f"init {path}: weights do not fit the model ({detail})") from None
    odd = [k for k in result.missing_keys
           if not (k.startswith("exits.") or (regroup and _channel_gate_key(k)))] + [
        k for k in result.unexpected_keys if not k.startswith("exits.")]
    if odd:
        raise DDIError(f"init {path}: weights do not fit the model (e.g. {odd[0]!r})")


def _channel_gate_key(key: str) -> bool:
    """A state-dict key of a channel gate (a unit's CNN gate or the recurrent channel gate)."""
    return ".cgate." in f".{key}" or key.startswith("channel_gate.")
