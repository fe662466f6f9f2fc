"""Name → model builder registry, so CLI flags and tables can name an architecture by string.

Builders are registered with `@register_model("resnet20")` and take `num_classes` (plus whatever
keyword arguments later features add); `get_model` passes keyword arguments straight through, so
an argument a builder does not know raises `TypeError`.

Gate annotations live here too because every model file needs them and the walker reads them:
a conv/linear module that a gate controls carries `ddi_gate = (layer_gate, channel_gate,
channel_axis)`; a module without the attribute is ungated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.workload import ChannelAxis

GATE_ATTR = "ddi_gate"
GateTriple = tuple[str, str, ChannelAxis]

# Modules whose import registers the built-in architectures. Imported on first lookup rather
# than at import time, because they import this module (register_model) themselves.
_BUILTIN_MODULES = ("ddi_energy.models.resnet", "ddi_energy.models.densenet")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_builtins_loaded = False

B = TypeVar("B", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[B], B]:
    """Decorator registering a builder under `name`; a duplicate name is a programming error."""

    def deco(builder: B) -> B:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return deco


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)
        _builtins_loaded = True


def list_models() -> list[str]:
    """All registered architecture names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build architecture `name`; the model has `input_size = (C, H, W)`."""
    _load_builtins()
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise DDIError(
            f"unknown arch {name!r} (available: {', '.join(sorted(_REGISTRY))})"
        ) from None
    model = builder(**kwargs)
    if not hasattr(model, "input_size"):
        raise TypeError(f"builder for {name!r} returned a model without input_size")
    return model


def set_gate(
    module: nn.Module, layer_gate: str, channel_gate: str, channel_axis: ChannelAxis
) -> None:
    """Mark `module` as controlled by the named gates (see module docstring)."""
    if channel_axis not in ("in", "out"):
        raise ValueError(f"channel_axis must be 'in' or 'out', not {channel_axis!r}")
    setattr(module, GATE_ATTR, (layer_gate, channel_gate, channel_axis))


def get_gate(module: nn.Module) -> GateTriple | None:
    """The module's gate triple, or None if it is ungated."""
    return getattr(module, GATE_ATTR, None)
