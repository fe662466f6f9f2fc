"""Cost tables on disk: write one (CSV + JSON metadata, atomically), find one by name or path,
load it with its metadata.

Ready tables for the zoo's CIFAR networks on every bundled hardware config ship in
`cost_tables/` (installed as `ddi_energy.cost_tables`), so training can use them without
profiling (`ddi_energy.tables.regenerate` rebuilds them).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ddi_energy.errors import DDIError, warn
from ddi_energy.files import atomic_write_all
from ddi_energy.tables.columns import (
    ADDED_COLUMNS,
    TABLE_COLUMNS,
    TEXT_COLUMNS,
    content_digest,
    csv_digest,
)


def shipped_dir() -> Path:
    """Where the shipped tables live (the repo's cost_tables/ in an editable install)."""
    return Path(str(resources.files("ddi_energy.cost_tables")))


def shipped_tables() -> dict[str, Path]:
    return {p.stem: p for p in sorted(shipped_dir().glob("*.csv"))}


def resolve_table(spec: str | Path) -> Path:
    """A CSV path if it exists, else a shipped table by name (`resnet74_eyeriss`)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_tables()
    name = path.name.removesuffix(".csv")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    raise DDIError(
        f"{spec}: no such cost table file and no shipped table of that name "
        f"(shipped: {', '.join(shipped) or 'none'})"
    )


def load_cost_table(spec: str | Path) -> pd.DataFrame:
    """A cost table with its JSON metadata in `table.attrs["meta"]` (empty if none beside it)."""
    path = resolve_table(spec)
    try:
        table = pd.read_csv(path, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DDIError(f"{path}: not a readable CSV cost table ({exc})") from None
    missing = [c for c in TABLE_COLUMNS if c not in table.columns and c not in ADDED_COLUMNS]
    if missing:
        raise DDIError(f"{path}: not a cost table, missing column {missing[0]!r}")
    meta_path = path.with_suffix(".json")
    meta = _metadata(meta_path)
    _check_content(table, meta, path, meta_path)  # as written: before the added columns
    for column, value in ADDED_COLUMNS.items():
        if column not in table.columns:
            table[column] = value
    table.attrs["meta"] = meta
    table.attrs["path"] = str(path)
    return table


def _metadata(meta_path: Path) -> dict[str, Any]:
    if not meta_path.exists():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DDIError(f"{meta_path}: not readable JSON table metadata "
                       f"({type(exc).__name__})") from None  # fmt: skip
    if not isinstance(meta, dict):
        raise DDIError(f"{meta_path}: table metadata must be a JSON object")
    return meta


def _check_content(table: pd.DataFrame, meta: dict[str, Any], path: Path,
                   meta_path: Path) -> None:  # fmt: skip
    """Refuse a table that lost or gained rows since profiling (e.g. a copy cut off mid-file) or
    whose numbers are not numbers; warn about one edited by hand."""
    recorded = meta.get("rows")
    if isinstance(recorded, int) and recorded != len(table):
        raise DDIError(f"{path}: truncated cost table: {len(table)} rows, but {meta_path.name} "
                       f"records {recorded}; profile it again")  # fmt: skip
    for column in TABLE_COLUMNS:
        if column in TEXT_COLUMNS or column not in table or pd.api.types.is_numeric_dtype(
                table[column]):  # fmt: skip
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        row = int(values.isna().to_numpy().nonzero()[0][0])
        raise DDIError(f"{path}: damaged cost table: row {row + 2} has {column} = "
                       f"{table[column].iloc[row]!r}, not a number (truncated?)")  # fmt: skip
    digest = meta.get("content_sha256")
    if digest and digest != content_digest(table):
        warn(f"{path}: edited since it was profiled (its content no longer matches "
             f"{meta_path.name}); using it as it is")  # fmt: skip


def write_table(
    table: pd.DataFrame, meta: dict[str, Any], out_dir: Path, stem: str
) -> tuple[Path, Path]:
    """Write `<stem>.csv` and `<stem>.json` atomically; returns their paths. The JSON records the
    CSV's `content_sha256` (`content_digest`), taken from the text written (formatting a large
    table is most of the cost of writing it: done once)."""
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    text = table.to_csv(index=False)
    meta = {**meta, "content_sha256": csv_digest(text)}
    atomic_write_all({csv_path: text, json_path: json.dumps(meta, indent=2) + "\n"})
    return csv_path, json_path
