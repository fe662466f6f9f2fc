"""ddi-energy: SCALE-Sim-backed energy tables for dynamic (gated) CNNs.

The model/walker exports are resolved lazily so that `import ddi_energy.errors` (e.g. from the
CLI's error path or `--help`) does not pay for importing torch; scalesim is never imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "GATINGS", "ResourceLoss", "__version__", "cost_model", "get_model", "list_models",
    "load_cost_table", "sample_costs", "set_budget", "walk_layers",
]  # fmt: skip

_LAZY = {
    "GATINGS": "ddi_energy.models.dynamic",
    "ResourceLoss": "ddi_energy.costs",
    "cost_model": "ddi_energy.costs",
    "get_model": "ddi_energy.models.registry",
    "list_models": "ddi_energy.models.registry",
    "load_cost_table": "ddi_energy.tables",
    "sample_costs": "ddi_energy.costs",
    "set_budget": "ddi_energy.costs",
    "walk_layers": "ddi_energy.walker",
}

if TYPE_CHECKING:
    from ddi_energy.costs import ResourceLoss, cost_model, sample_costs, set_budget
    from ddi_energy.models.dynamic import GATINGS
    from ddi_energy.models.registry import get_model, list_models
    from ddi_energy.tables import load_cost_table
    from ddi_energy.walker import walk_layers


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'ddi_energy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
