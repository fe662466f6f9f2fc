"""Cost tables on disk: find one by name or path, load it with its metadata, regenerate ours.

Ready tables for the zoo's CIFAR networks on every bundled hardware config ship in
`cost_tables/` (installed as `ddi_energy.cost_tables`), so training can use them without
profiling; `regenerate_shipped` rebuilds them and a test checks they still match the code.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd

from ddi_energy.errors import DDIError
from ddi_energy.profile import TABLE_COLUMNS

CIFAR_ARCHS = (
    "resnet8", "resnet14", "resnet20", "resnet26", "resnet38", "resnet74", "resnet110",
    "densenet100",
)  # fmt: skip


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
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise DDIError(f"{path}: not a cost table, missing column {missing[0]!r}")
    meta_path = path.with_suffix(".json")
    table.attrs["meta"] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    table.attrs["path"] = str(path)
    return table


def regenerate_shipped(out_dir: Path, *, progress: bool = True) -> list[Path]:
    """Write the channel-granularity table of every CIFAR net on every bundled config."""
    from tqdm import tqdm

    from ddi_energy.hardware import bundled_configs, load_hw
    from ddi_energy.profile import run_profile, table_stem, write_table

    jobs = [(arch, hw_name) for hw_name in sorted(bundled_configs()) for arch in CIFAR_ARCHS]
    paths = []
    for arch, hw_name in tqdm(jobs, desc="tables", unit="table", disable=not progress):
        hw, note = load_hw(hw_name)
        table, meta = run_profile(arch, hw, note, engine="analytic", progress=False)
        paths.append(write_table(table, meta, out_dir, table_stem(arch, hw, "channel"))[0])
    return paths
