"""Rebuild the shipped cost tables: every CIFAR network of the zoo on every bundled config with
SCALE-Sim's counts (`<arch>_<hw>`), and the networks training uses with physical counts too
(`<arch>_<hw>_physical`).

`tests/test_tables.py` fails when a shipped table no longer equals what the code produces.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ddi_energy.hardware.config import bundled_configs, load_hw
from ddi_energy.models.zoo import list_models
from ddi_energy.tables.build import run_profile, table_stem
from ddi_energy.tables.io import write_table

# Physical tables ship for the networks the training examples use and the README's sweep network
# (all of them would double cost_tables/ to ~20 MB).
PHYSICAL_ARCHS = ("resnet8", "resnet20", "resnet74")


def shipped_archs() -> list[str]:
    """The archs whose tables ship: every CIFAR network of the zoo."""
    return list_models(dataset="cifar")


def shipped_jobs() -> list[tuple[str, str, str]]:
    """(arch, bundled config, count model) of every shipped table."""
    return [(arch, hw_name, counts) for hw_name in sorted(bundled_configs())
            for counts in ("scalesim", "physical") for arch in shipped_archs()
            if counts == "scalesim" or arch in PHYSICAL_ARCHS]  # fmt: skip


def regenerate_shipped(out_dir: Path, *, progress: bool = True) -> list[Path]:
    """Write the channel-granularity table of every `shipped_jobs` entry."""
    jobs = shipped_jobs()
    paths = []
    for arch, hw_name, counts in tqdm(jobs, desc="tables", unit="table", disable=not progress):
        hw, note = load_hw(hw_name)
        table, meta = run_profile(arch, hw, note, counts=counts, progress=False)
        stem = table_stem(arch, hw, "channel", counts)
        paths.append(write_table(table, meta, out_dir, stem)[0])
    return paths
