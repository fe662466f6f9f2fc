"""Shipped cost tables: complete, found by name, and equal to what the code produces now."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import bundled_configs, load_hw
from ddi_energy.tables.build import run_profile
from ddi_energy.tables.io import load_cost_table, shipped_tables
from ddi_energy.tables.regenerate import PHYSICAL_ARCHS, shipped_archs


def test_every_cifar_net_on_every_bundled_config_ships():
    expected = {f"{a}_{h}" for a in shipped_archs() for h in bundled_configs()}
    expected |= {f"{a}_{h}_physical" for a in PHYSICAL_ARCHS for h in bundled_configs()}
    assert expected == set(shipped_tables())
    size = sum(p.stat().st_size for p in shipped_tables()["resnet8_eyeriss"].parent.iterdir())
    assert size < 15e6, f"cost_tables/ is {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", sorted(shipped_tables()))
def test_shipped_table_matches_the_code(name: str):
    """Byte for byte, as `regenerate-tables` writes it."""
    path = shipped_tables()[name]
    meta = load_cost_table(name).attrs["meta"]
    hw, note = load_hw(meta["hw"]["name"])
    assert meta["hw_digest"] == hw.digest(), "the bundled config changed: regenerate-tables"
    assert name.endswith("_physical") == (meta["counts"] == "physical")
    fresh, _ = run_profile(meta["arch"], hw, note, counts=meta["counts"], progress=False)
    assert fresh.to_csv(index=False) == path.read_text()


def test_table_found_by_name_and_path():
    by_name = load_cost_table("resnet74_eyeriss")
    by_path = load_cost_table(Path(by_name.attrs["path"]))
    assert len(by_name) == len(by_path) == 12 * 2 * (16 + 32 + 64) + 4
    assert by_name.attrs["meta"]["arch"] == "resnet74"


def test_unknown_or_broken_tables_are_refused(tmp_path: Path):
    with pytest.raises(DDIError, match="resnet75_eyeriss.*resnet74_eyeriss"):
        load_cost_table("resnet75_eyeriss")
    broken = tmp_path / "t.csv"
    broken.write_text("layer,macs\nconv1,5\n")
    with pytest.raises(DDIError, match="missing column 'in_channels'"):
        load_cost_table(broken)
