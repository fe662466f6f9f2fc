"""A user's own network, named on the command line as `FILE.py:FACTORY` or
`package.module:FACTORY` (a function or class that builds the `nn.Module` with no arguments)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from ddi_energy.errors import DDIError

FORMS = "FILE.py:FACTORY or package.module:FACTORY"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _import_file(path: Path) -> ModuleType:
    """Execute a Python file as a module of its own; its folder is importable meanwhile, so it
    can import its neighbours. The module is registered in `sys.modules` (under a name derived
    from its path), as an import would: dataclasses and pickling look their module up there."""
    if not path.is_file():
        raise DDIError(f"{path}: no such file")
    name = "ddi_energy_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DDIError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error is theirs, one line
        del sys.modules[name]
        raise DDIError(f"{path}: cannot import it: {_one_line(exc)}") from exc
    finally:
        sys.path.remove(folder)
    return module


def load_model(spec: str) -> tuple[nn.Module, str]:
    """The model `spec` builds, and its default table name (the factory's name)."""
    target, _, factory_name = spec.rpartition(":")
    if not target or not factory_name.isidentifier():
        raise DDIError(f"--model {spec!r}: expected {FORMS}")
    if target.endswith(".py"):
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise DDIError(f"{spec}: cannot import {target}: {_one_line(exc)}") from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)  # fmt: skip
        raise DDIError(f"{spec}: {target} has no factory {factory_name!r} (callables defined "
                       f"there: {', '.join(found) or 'none'})")  # fmt: skip
    try:
        model = factory()
    except Exception as exc:
        raise DDIError(f"{spec}: {factory_name}() failed: {_one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise DDIError(f"{spec}: {factory_name}() returned {type(model).__name__}, not an "
                       "nn.Module")  # fmt: skip
    return model, factory_name
