"""`--counts scalesim|physical` and `energy_pj.sram: auto` through profile, sweep, validate,
pricing, training configs and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run

import ddi_energy
from ddi_energy.costs.pricing import Pricer
from ddi_energy.engines.physical import PhysicalEngine
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import load_hw
from ddi_energy.hardware.energy import SRAM_BY_BUFFER
from ddi_energy.models.zoo import walk_arch
from ddi_energy.reporting import plots
from ddi_energy.tables.build import build_table, run_profile
from ddi_energy.tables.columns import TABLE_COLUMNS
from ddi_energy.tables.io import load_cost_table
from ddi_energy.tables.rows import row_specs
from ddi_energy.training.config import load_config


def test_profile_physical_table_and_metadata(tmp_path: Path, capsys):
    out = tmp_path / "t"
    code, stdout, err = run(["profile", "--arch", "resnet8", "--hw", "edge_npu", "--counts",
                             "physical", "--granularity", "layer", "--out", str(out),
                             "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    assert "physical count model" in err and "SRAM auto: ifmap 3.3964" in err
    table = pd.read_csv(out / "resnet8_edge_npu_physical_layer.csv")
    meta = json.loads((out / "resnet8_edge_npu_physical_layer.json").read_text())
    assert tuple(table.columns) == TABLE_COLUMNS
    assert meta["counts"] == "physical" and meta["engine"] == "physical"
    assert meta["sram_pj"] == {"ifmap": 3.3964, "filter": 3.3964, "ofmap": 3.3964}
    assert "Horowitz" in meta["sram_model"] and "reads them back" in meta["count_model"]
    outputs = table["ofmap_h"] * table["ofmap_w"] * table["out_channels"]
    assert (table["dram_ofmap_writes"] == outputs).all()  # 64 kB holds every tile of resnet8
    assert (table["sram_ofmap_reads"] > 0).any() and (table["dram_ofmap_reads"] == 0).all()
    sram = sum(meta["sram_pj"][b] * table[list(c)].sum(axis=1) for b, c in SRAM_BY_BUFFER.items())
    assert table["energy_sram_pj"].tolist() == pytest.approx(sram.tolist(), rel=1e-12)
    scalesim, _ = run_profile("resnet8", load_hw("edge_npu")[0], "", granularity="layer",
                              progress=False)  # fmt: skip
    assert (scalesim[["sram_ofmap_reads", "dram_ofmap_reads"]] == 0).all().all()
    assert table["energy_pj"].sum() < 0.6 * scalesim["energy_pj"].sum()


def test_physical_counts_need_the_analytic_engine(tmp_path: Path, capsys):
    code, _, err = run(["profile", "--arch", "resnet8", "--hw", "edge_npu", "--counts",
                        "physical", "--engine", "scalesim", "--out", str(tmp_path / "no")],
                       capsys)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--engine analytic" in err
    assert not (tmp_path / "no").exists()


def test_gates_and_exits_are_priced_with_the_tables_count_model():
    model = ddi_energy.get_model("resnet20", gating="mgl2s", exits=True)
    structure = model.cost_structure(walk_arch("resnet20"))
    table = load_cost_table("resnet20_edge_npu_physical")
    layers = [*structure.units[0].channel_gate, *structure.exits[0]]
    priced = Pricer(structure, table).overhead(layers)
    hw = load_hw("edge_npu")[0]
    expected = build_table(row_specs(layers, "layer"), hw, PhysicalEngine(), progress=False)
    assert float(priced[1]) == pytest.approx(expected["energy_pj"].sum(), rel=1e-12)
    replica = Pricer(structure, load_cost_table("resnet20_edge_npu")).overhead(layers)
    assert float(priced[1]) < float(replica[1])


def test_tables_from_before_the_physical_model_still_load(tmp_path: Path):
    table = load_cost_table("resnet8_eyeriss")
    old = tmp_path / "old.csv"
    table.drop(columns=["sram_ofmap_reads", "dram_ofmap_reads"]).to_csv(old, index=False)
    again = load_cost_table(old)
    assert (again["sram_ofmap_reads"] == 0).all() and (again["dram_ofmap_reads"] == 0).all()


def test_train_config_counts():
    cfg = load_config(None, {"arch": "resnet8", "hw": "eyeriss", "loss": "energy",
                             "counts": "physical"})  # fmt: skip
    assert cfg.counts == "physical"
    with pytest.raises(DDIError, match="counts = 'exact'"):
        load_config(None, {"counts": "exact"})
    with pytest.raises(DDIError, match="a cost table brings its own"):
        load_config(None, {"cost_table": "resnet8_eyeriss", "counts": "physical"})


def test_runs_profile_and_evaluate_with_their_count_model():
    from ddi_energy.experiments.study import load_study_config
    from ddi_energy.training.evaluate import eval_table
    from ddi_energy.training.loop import run_cost_table

    study = load_study_config(None, {"train": {"counts": "physical"}})
    runs = [study.pretrain_config(), *study.run_configs()]
    assert {cfg.counts for cfg in runs} == {"physical"}
    table = run_cost_table(runs[1])
    assert table.attrs["meta"]["counts"] == "physical" and "physical counts" in table.attrs["path"]
    assert eval_table(runs[1], "edge_npu", None).attrs["meta"]["counts"] == "physical"
    shipped = eval_table(runs[1], None, "resnet8_edge_npu")  # a table brings its own model
    assert shipped.attrs["meta"]["counts"] == "scalesim"


def test_inspect_names_the_models(capsys):
    code, out, _ = run(["inspect", "--arch", "resnet8", "--gating", "mgl2s", "--cost-table",
                        "resnet8_eyeriss_physical", "--no-per-unit"], capsys)  # fmt: skip
    assert code == 0
    assert "physical counts; energy Eq. 6 with DRAM 42 pJ/word, SRAM 1.26 pJ/word" in out


# ------------------------------------------------------------------ sweeps and validate


def test_buffers_swept_together_with_auto_sram(tmp_path: Path, capsys):
    """8 kB -> 512 kB: SRAM energy per access (energy_sram_pj over the SRAM count columns)
    rises 64^0.473 = 7.1x, at least the 3x asked for."""
    code, _, err = run(["sweep", "--arch", "resnet8", "--hw", "edge_npu", "--counts", "physical",
                        "--granularity", "layer", "--vary", "sram_kB=8,512",
                        "--out", str(tmp_path)], capsys)  # fmt: skip
    assert code == 0 and "warning" not in err
    summary = pd.read_csv(tmp_path / "resnet8_edge_npu_physical_sweep.csv")
    assert summary["sram_pj_ofmap"].tolist() == [1.2702, 9.0819]
    per_access = []
    for name in summary["table"]:
        table = pd.read_csv(tmp_path / name)
        accesses = table[[c for cols in SRAM_BY_BUFFER.values() for c in cols]].sum().sum()
        per_access.append(table["energy_sram_pj"].sum() / accesses)
    assert per_access[1] / per_access[0] == pytest.approx(64**0.473, rel=1e-3)


def test_fixed_sram_energy_in_a_buffer_sweep_warns(tmp_path: Path, capsys):
    code, _, err = run(["sweep", "--arch", "resnet8", "--hw", "edge_npu", "--granularity",
                        "layer", "--vary", "sram_kB.ifmap=16,64", "--vary",
                        "energy_pj.sram=1.25", "--out", str(tmp_path)], capsys)  # fmt: skip
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("ddi-energy: warning")]
    assert len(warnings) == 1 and "fixed at 1.25 pJ" in warnings[0]


def test_resnet74_buffer_sweep_has_an_interior_optimum():
    """Physical counts, auto SRAM: small buffers re-fetch and spill, big ones cost more per
    access, so 64 kB beats both 8 kB and 1 MB (the README's sweep, at layer granularity)."""
    from ddi_energy.tables.sweep import design_points

    base, note = load_hw("edge_npu")
    energy = {}
    for setting, hw in design_points(base, {"sram_kB": [8, 64, 1024]}):
        table, _ = run_profile("resnet74", hw, note, counts="physical", granularity="layer",
                               progress=False)  # fmt: skip
        energy[setting["sram_kB"]] = table["energy_pj"].sum()
    assert energy[64] < energy[8] and energy[64] < energy[1024]


def test_validate_physical_against_scalesim(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("DDI_ENERGY_CACHE", str(tmp_path))
    code, out, _ = run(["validate", "--arch", "resnet8", "--hw", "edge_npu", "--counts",
                        "physical", "--granularity", "layer", "--sample", "3", "--jobs", "1"],
                       capsys)  # fmt: skip
    assert code == 0, out
    assert "physical counts: 3 unique shapes" in out and "0 violations" in out
    assert "physical <= scalesim" in out and "physical == scalesim" in out


# ------------------------------------------------------------------ figures


def test_plot_names_each_tables_models(tmp_path: Path, capsys):
    code, out, _ = run(["plot", "--table", "resnet8_tpu_like", "resnet8_tpu_like_physical",
                        "--out", str(tmp_path)], capsys)  # fmt: skip
    assert code == 0 and "count_models_resnet8_tpu_like\n" in out
    assert "resnet8_tpu_like: scalesim counts; energy Eq. 6 with DRAM 160 pJ/word, SRAM auto: " \
        "ifmap 40.8337, filter 24.2851, ofmap 33.7075 pJ/word" in out
    assert "resnet8_tpu_like_physical: physical counts;" in out


def test_count_models_figure_pairs_tables():
    scalesim, physical = (load_cost_table(n) for n in ("resnet20_tpu_like",
                                                       "resnet20_tpu_like_physical"))
    assert plots.count_model_pairs([physical, scalesim, load_cost_table("resnet8_eyeriss")]) \
        == [(scalesim, physical)]
    (ax,) = plots.count_models(scalesim, physical).axes
    bars = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    for name, table in (("scalesim counts", scalesim), ("physical counts", physical)):
        totals = table.attrs["meta"]["totals_full_network"]
        levels = [totals[f"energy_{k}_pj"] / 1e6 for k in ("dram", "sram", "rf", "mac")]
        assert bars[name] == pytest.approx([*levels, totals["energy_pj"] / 1e6])
    assert "physical counts, SRAM auto" in plots.energy_by_level(physical)._suptitle.get_text()
