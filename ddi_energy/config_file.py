"""YAML config files (run and study configs): read safely, refused with one line naming the
file and the key when they are not a mapping of known keys."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from ddi_energy.errors import DDIError


def load_mapping(path: str | Path | None, what: str, allowed: Collection[str]) -> dict[str, Any]:
    """The mapping in YAML file `path` ({} for None), every key one of `allowed`."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise DDIError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError:
        raise DDIError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise DDIError(f"{path}: a {what} is a mapping of {', '.join(sorted(allowed))}")
    check_keys(data, allowed, str(path))
    return data


def check_keys(data: dict[str, Any], allowed: Collection[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise DDIError(f"{where}: unknown key {unknown[0]!r} (allowed: "
                       f"{', '.join(sorted(allowed))})")  # fmt: skip
