"""ddi-energy: SCALE-Sim-backed energy tables for dynamic (gated) CNNs.

The package is laid out by the stages data flows through (see the README's "Code map"):
hardware → workload → engines → models → tables → costs → training → reporting → experiments.

The public names below are resolved lazily, so that `import ddi_energy.errors` (e.g. from the
CLI's error path or `--help`) does not pay for importing torch; scalesim is never imported here.
The map holds module paths as strings only, so this module imports none of the stages.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "GATINGS": "ddi_energy.models.dynamic",
    "ResourceLoss": "ddi_energy.costs.resource_loss",
    "cost_model": "ddi_energy.costs.cost_model",
    "for_inference": "ddi_energy.models.inference",
    "get_model": "ddi_energy.models.zoo",
    "list_models": "ddi_energy.models.zoo",
    "load_pretrained": "ddi_energy.models.pretrained",
    "load_cost_table": "ddi_energy.tables.io",
    "profile_model": "ddi_energy.tables.profile_model",
    "sample_costs": "ddi_energy.costs.cost_model",
    "set_budget": "ddi_energy.costs.budget",
    "walk_layers": "ddi_energy.workload.walker",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'ddi_energy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
