"""Name → model config registry, so CLI flags and tables can name an architecture by string.

Each architecture is registered with a `ModelCfg`: its builder and what a caller needs to know
without building it (dataset, input size, classes, whether gated versions exist, the paper's
FLOPs). This module only stores configs; `ddi_energy.models.zoo` registers the built-in ones and
owns which gated class builds which arch, so base models stay plain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ddi_energy.errors import DDIError


@dataclass(frozen=True)
class ModelCfg:
    """What a registered architecture is. `builder(num_classes=..., gating=..., exits=...)`."""

    name: str
    builder: Callable[..., nn.Module]
    dataset: str  # "cifar" | "imagenet": the input size and default classes follow
    input_size: tuple[int, int, int]
    num_classes: int
    gated: bool  # gated (MGL2S) and early-exit versions exist
    paper_flops: float | None = None  # FLOPs the DDI paper quotes (2 × conv+FC MACs)
    description: str = ""


_REGISTRY: dict[str, ModelCfg] = {}


def register_model(cfg: ModelCfg) -> ModelCfg:
    """Add `cfg`; a duplicate name is a programming error."""
    if cfg.name in _REGISTRY:
        raise ValueError(f"model {cfg.name!r} registered twice")
    _REGISTRY[cfg.name] = cfg
    return cfg


def registered(dataset: str | None = None, gated: bool | None = None) -> list[ModelCfg]:
    """Registered configs, sorted by name, optionally only of a dataset or gated ones."""
    return [cfg for name, cfg in sorted(_REGISTRY.items())
            if (dataset is None or cfg.dataset == dataset)
            and (gated is None or cfg.gated == gated)]  # fmt: skip


def model_cfg(name: str) -> ModelCfg:
    """The config of architecture `name`; an unknown name lists the available ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DDIError(
            f"unknown arch {name!r} (available: {', '.join(sorted(_REGISTRY))})"
        ) from None
