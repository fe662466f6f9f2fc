"""Rebuild the shipped cost tables: every CIFAR network of the zoo on every bundled config.

`tests/test_tables.py` fails when a shipped table no longer equals what the code produces.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ddi_energy.hardware.config import bundled_configs, load_hw
from ddi_energy.models.zoo import list_models
from ddi_energy.tables.build import run_profile, table_stem
from ddi_energy.tables.io import write_table


def shipped_archs() -> list[str]:
    """The archs whose tables ship: every CIFAR network of the zoo."""
    return list_models(dataset="cifar")


def regenerate_shipped(out_dir: Path, *, progress: bool = True) -> list[Path]:
    """Write the channel-granularity table of every CIFAR net on every bundled config."""
    jobs = [(arch, hw_name) for hw_name in sorted(bundled_configs()) for arch in shipped_archs()]
    paths = []
    for arch, hw_name in tqdm(jobs, desc="tables", unit="table", disable=not progress):
        hw, note = load_hw(hw_name)
        table, meta = run_profile(arch, hw, note, engine="analytic", progress=False)
        paths.append(write_table(table, meta, out_dir, table_stem(arch, hw, "channel"))[0])
    return paths
