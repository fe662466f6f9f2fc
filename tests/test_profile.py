"""The table against independent SCALE-Sim CLI runs of the files `--emit` writes, row for row."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import scalesim_cli

from ddi_energy.engines.scalesim_engine import ScaleSimEngine
from ddi_energy.engines.scalesim_files import write_inputs
from ddi_energy.hardware.config import from_dict
from ddi_energy.models.zoo import walk_arch
from ddi_energy.tables.build import build_table
from ddi_energy.tables.columns import network_totals
from ddi_energy.tables.rows import row_specs
from ddi_energy.workload.shapes import COUNT_FIELDS, Layer

# A residual block in miniature: stem, a gated stride-2 block with a projection shortcut, an FC.
LAYERS = [
    Layer("stem", "conv", 8, 8, 1, 3, 3, 3, 4, 1),
    Layer("b.conv1", "conv", 8, 8, 1, 3, 3, 4, 5, 2, "b", "b", "out"),
    Layer("b.conv2", "conv", 4, 4, 1, 3, 3, 5, 5, 1, "b", "b", "in"),
    Layer("b.shortcut", "conv", 8, 8, 0, 1, 1, 4, 5, 2),
    Layer("fc", "fc", 1, 1, 0, 1, 1, 5, 3, 1),
]


def tiny_hw(dataflow: str):
    return from_dict(
        {
            "name": f"tiny_{dataflow}",
            "word_bits": 8,
            "array": {"rows": 4, "cols": 3},
            "dataflow": dataflow,
            # 1 kB ifmap buffer is smaller than some layers' footprints: DRAM re-fetches show.
            "sram_kB": {"ifmap": 1, "filter": 1, "ofmap": 1},
            "energy_pj": {"dram": 100.0, "sram": 2.0, "rf": 0.5, "mac": 0.25},
        },
        "test",
    )


def test_row_specs_sweep_the_gated_axis():
    specs = row_specs(LAYERS, "channel")
    conv1 = [(s.in_channels, s.out_channels) for s in specs if s.layer.name == "b.conv1"]
    conv2 = [(s.in_channels, s.out_channels) for s in specs if s.layer.name == "b.conv2"]
    assert conv1 == [(4, k) for k in range(1, 6)]
    assert conv2 == [(k, 5) for k in range(1, 6)]
    assert len(specs) == 3 + 5 + 5 and sum(s.is_full for s in specs) == len(LAYERS)
    assert len(row_specs(LAYERS, "layer")) == len(LAYERS)


def test_resnet74_channel_rows():
    specs = row_specs(walk_arch("resnet74"), "channel")
    # 12 blocks per stage, two gated convs each sweeping the block width; + stem, 2 shortcuts, fc.
    assert len(specs) == 12 * 2 * (16 + 32 + 64) + 4
    assert len({s.shape for s in specs}) < len(specs) / 8  # what de-duplication saves


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_table_equals_scalesim_cli_on_emitted_files(tmp_path: Path, dataflow: str):
    hw = tiny_hw(dataflow)
    specs = row_specs(LAYERS, "channel")
    table = build_table(specs, hw, ScaleSimEngine(cache_dir=tmp_path / "cache"), progress=False)
    emit = tmp_path / "emit"
    write_inputs(emit, [(s.name, s.shape) for s in specs], hw)
    reports = scalesim_cli(emit, tmp_path / "out")
    assert len(reports) == len(table)
    for (_, row), report in zip(table.iterrows(), reports, strict=True):
        assert [row[f] for f in COUNT_FIELDS] == [getattr(report, f) for f in COUNT_FIELDS]
    assert (table["dram_ifmap_reads"] > 0).all() and (table["cycles"] > 0).all()


def test_energy_columns_follow_eq6(tmp_path: Path):
    hw = tiny_hw("os")
    table = build_table(row_specs(LAYERS, "layer"), hw, ScaleSimEngine(tmp_path), progress=False)
    row = table.set_index("layer").loc["b.conv1"]
    # b.conv1: 4x4 outputs, 5 filters, window 3*3*4 = 36.
    assert row["macs"] == 16 * 5 * 36
    assert row["rf_accesses"] == 4 * row["macs"] + 16 * 5  # os drains each output once
    dram = row["dram_ifmap_reads"] + row["dram_filter_reads"] + row["dram_ofmap_writes"]
    sram = row["sram_ifmap_reads"] + row["sram_filter_reads"] + row["sram_ofmap_writes"]
    assert row["energy_dram_pj"] == pytest.approx(100.0 * dram)
    assert row["energy_sram_pj"] == pytest.approx(2.0 * sram)
    assert row["energy_pj"] == pytest.approx(
        100.0 * dram + 2.0 * sram + 0.5 * row["rf_accesses"] + 0.25 * row["macs"]
    )
    totals = network_totals(table)
    assert totals["energy_pj"] == pytest.approx(table["energy_pj"].sum())
    assert totals["macs"] == sum(layer.macs for layer in LAYERS)
