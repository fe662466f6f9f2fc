"""`ddi-energy plot`: every kind of figure from real runs, tables and sweeps; series counted."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import torch
from cli_helpers import run
from ddi_energy.cli.main import cli
from PIL import Image

from ddi_energy.hardware.config import load_hw
from ddi_energy.reporting import plots
from ddi_energy.tables.build import run_profile
from ddi_energy.tables.io import load_cost_table, write_table
from ddi_energy.tables.sweep import run_sweep
from ddi_energy.training import data, loop
from ddi_energy.training.config import load_config
from ddi_energy.training.evaluate import evaluate, load_run
from ddi_energy.training.loop import train

TINY = {"arch": "resnet8", "gating": "mgl2s", "batch": 16, "pretrain_steps": 2, "gate_steps": 2,
        "steps": 4, "ddi_steps": 2, "checkpoint_every": 2, "log_every": 2, "alpha": 0.05}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"




@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Three real trained and evaluated runs (FLOPs and energy loss with exits, a plain one
    without), a real sweep summary and a real layer-granularity table, made once for the module.
    The synthetic splits are made smaller (1024 / 256 inputs) and torch runs one thread (tiny
    batches gain nothing from more, and lose a lot on a busy machine), to keep this to seconds."""
    root = tmp_path_factory.mktemp("plots")
    paths = {}
    small = functools.partial(data.load_dataset, synthetic_train=1024, synthetic_test=256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            # where training and evaluation look the datasets up (`loop.run_dataset`)
            patch.setattr(loop, "load_dataset", small)
            for name, changes in (("flops", {"loss": "flops"}),
                                  ("energy", {"loss": "energy", "hw": "edge_npu"}),
                                  ("plain", {"gating": "none", "ddi_steps": 0})):
                cfg = load_config(None, {**TINY, "out": str(root / name), **changes})
                run_dir = train(cfg, progress=False)
                config, state = load_run(run_dir, None)
                evaluate(config, state, budgets=(0.5, 1.0)).write(run_dir)
                paths[name] = run_dir
    finally:
        torch.set_num_threads(threads)
    hw, note = load_hw("eyeriss")
    for sub in ("sweep", "tables"):
        (root / sub).mkdir()
    _, paths["sweep"] = run_sweep("resnet8", hw, note, {"array.rows": [8, 16]}, root / "sweep",
                                  granularity="layer", progress=False)
    table, meta = run_profile("resnet8", hw, note, granularity="layer", progress=False)
    paths["layer_table"] = write_table(table, meta, root / "tables", "resnet8_eyeriss_layer")[0]
    paths["root"] = root
    return paths


def check_image(png: Path) -> None:
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 900  # 3.5 in at 300 dpi
    assert matplotlib.image.imread(png).ndim == 3
    assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def stack_tops(ax) -> list[float]:
    """Top of each stacked bar: the sum of its levels."""
    columns = zip(*ax.containers, strict=True)
    return [max(b.get_y() + b.get_height() for b in bars) for bars in columns]


def line_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_plot_command_draws_every_kind(inputs, tmp_path: Path, capsys):
    out = tmp_path / "figs" / "new"  # made with its parents
    code, stdout, err = run(
        ["plot", "--runs", str(inputs["flops"]), str(inputs["energy"]), str(inputs["plain"]),
         "--table", "resnet20_eyeriss", "--sweep", str(inputs["sweep"]), "--out", str(out)],
        capsys)  # fmt: skip
    assert code == 0, err
    stems = {"accuracy_vs_savings", "skip_ratios_flops", "skip_ratios_energy", "budgets_flops",
             "budgets_energy", "energy_by_level_resnet20_eyeriss", "staircase_resnet20_eyeriss",
             "sweep_resnet8_eyeriss", "pareto_resnet8_eyeriss"}  # fmt: skip
    assert {p.name for p in out.iterdir()} == {f"{s}.{e}" for s in stems for e in ("png", "pdf")}
    for stem in stems:
        check_image(out / f"{stem}.png")
        assert f"  {stem}\n" in stdout
    assert "wrote 9 figures" in stdout
    assert "skip_ratios (plain): gating none" in stdout
    assert "budgets (plain): no budgets.csv" in stdout


def test_accuracy_vs_savings_one_series_per_loss_mode(inputs):
    runs = [plots.load_run_report(inputs[n]) for n in ("energy", "flops", "plain")]
    fig = plots.accuracy_vs_savings(runs)
    energy_ax, flops_ax = fig.axes
    for ax, column in ((energy_ax, "energy_savings"), (flops_ax, "flops_savings")):
        assert line_labels(ax) == ["FLOPs loss", "energy loss", "plain (no gates)"]
        for line, r in zip(ax.get_lines(), (runs[1], runs[0], runs[2]), strict=True):
            assert list(line.get_xdata()) == pytest.approx([100 * r.report[column]])
            assert list(line.get_ydata()) == pytest.approx([100 * r.report["accuracy"]])
        assert "savings" in ax.get_xlabel() and "(%)" in ax.get_xlabel()
        assert ax.get_ylabel() == "accuracy (%)"
    assert flops_ax.get_lines()[2].get_xdata()[0] == 0  # the plain network saves nothing
    assert [t.get_text() for t in fig.legends[0].get_texts()] == line_labels(energy_ax)
    assert fig.get_suptitle().startswith("Accuracy vs savings: resnet8")


def test_accuracy_vs_savings_connects_points_in_order_of_savings(inputs):
    """Two more runs of the same loss, their savings changed: one line through 3 points."""
    base = plots.load_run_report(inputs["energy"])
    runs = [base]
    for shift in (0.3, 0.15):
        report = {**base.report, "energy_savings": base.report["energy_savings"] + shift,
                  "flops_savings": base.report["flops_savings"] - shift}
        runs.append(plots.Run(base.dir, f"e{shift}", report))
    energy_ax, flops_ax = plots.accuracy_vs_savings(runs).axes
    for ax in (energy_ax, flops_ax):
        (line,) = ax.get_lines()
        xs = list(line.get_xdata())
        assert len(xs) == 3 and xs == sorted(xs)


def test_accuracy_vs_savings_from_run_directories_with_a_baseline(inputs, tmp_path: Path):
    """The form `ddi-energy study` uses: directories in, a baseline point, files out."""
    dirs = [inputs["flops"], inputs["energy"]]
    fig = plots.accuracy_vs_savings(dirs, baseline=inputs["plain"])
    assert line_labels(fig.axes[0]) == ["FLOPs loss", "energy loss", "baseline (plain)"]
    written = plots.accuracy_vs_savings(dirs, tmp_path / "figures", baseline=inputs["plain"])
    assert [p.name for p in written] == ["accuracy_vs_savings.png", "accuracy_vs_savings.pdf"]
    check_image(written[0])


def test_skip_ratios_bars_per_unit(inputs):
    r = plots.load_run_report(inputs["flops"])
    fig = plots.skip_ratios(r.per_unit, r.name, r.report)
    (ax,) = fig.axes
    assert len(ax.containers) == 2
    layer, channel = ax.containers
    assert [b.get_height() for b in layer] == pytest.approx(list(100 * r.per_unit[
        "layer_skip_ratio"]))  # fmt: skip
    assert [b.get_height() for b in channel] == pytest.approx(list(100 * r.per_unit[
        "channel_skip_ratio"]))  # fmt: skip
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stage1.0", "stage2.0", "stage3.0"]
    assert "%" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["layer gate: unit skipped", "channels off (both gates)"]  # all first


def test_first_block_of_each_stage_is_marked():
    units = [f"stage{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    frame = pd.DataFrame({"unit": units, "channels": 16, "layer_skip_ratio": 0.2,
                          "channel_skip_ratio": 0.4, "mean_active_channels": 9.6})
    (ax,) = plots.skip_ratios(frame, "r").axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stage1.0", "stage2.0", "stage3.0"]
    assert list(ax.get_xticks()) == [0, 3, 6]
    bars = {id(b) for c in ax.containers for b in c}
    shaded = [p for p in ax.patches if id(p) not in bars]
    assert len(shaded) == 3  # one span behind each first block
    assert len(ax.collections) == 1 and len(ax.collections[0].get_segments()) == 2  # separators
    assert "first block of a stage" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_budgets_per_mode(inputs):
    r = plots.load_run_report(inputs["energy"])
    fig = plots.budgets(r.budgets, r.name, r.report)
    acc_ax, cost_ax = fig.axes
    assert line_labels(acc_ax) == ["FLOPs budget", "energy budget", "no budget"]
    assert line_labels(cost_ax) == ["FLOPs budget", "energy budget", "cost = budget"]
    for line, mode in zip(acc_ax.get_lines()[:2], ("flops", "energy"), strict=True):
        rows = r.budgets[r.budgets["mode"] == mode]
        assert list(line.get_xdata()) == pytest.approx([50, 100])
        assert list(line.get_ydata()) == pytest.approx(list(100 * rows["accuracy"]))
    assert "%" in cost_ax.get_xlabel() and "%" in acc_ax.get_ylabel()


def test_energy_by_level_stacks_the_full_rows():
    table = load_cost_table("resnet20_eyeriss")
    fig = plots.energy_by_level(table)
    layer_ax, total_ax = fig.axes
    full = table[table["is_full"]]
    assert [c.get_label() for c in layer_ax.containers] == ["DRAM", "SRAM", "RF", "MAC"]
    assert all(len(c) == len(full) == 22 for c in layer_ax.containers)
    in_order = full.sort_values("layer_index")
    assert stack_tops(layer_ax) == pytest.approx(list(in_order["energy_pj"] / 1e6))
    assert layer_ax.get_ylabel() == "energy per layer (µJ)"
    (totals,) = total_ax.containers
    assert sum(b.get_width() for b in totals) == pytest.approx(
        table.attrs["meta"]["totals_full_network"]["energy_pj"] / 1e6)
    assert [t.get_text() for t in layer_ax.get_xticklabels()] == [
        "conv1", "stage1", "stage2", "stage3", "fc"]


def test_staircase_default_and_chosen_layers():
    table = load_cost_table("resnet20_eyeriss")
    assert plots.default_staircase_layers(table) == [
        "stage1.0.conv1", "stage2.0.conv1", "stage3.0.conv1"]
    energy_ax, cycles_ax = plots.staircase(table).axes
    for ax in (energy_ax, cycles_ax):
        assert len(ax.get_lines()) == 3
        assert list(ax.get_lines()[0].get_xdata()) == list(range(1, 17))
        (marks,) = ax.collections  # the array is 14 columns wide
        assert [seg[0][0] for seg in marks.get_segments()] == [14, 28, 42, 56]
    assert energy_ax.get_ylabel() == "layer energy (µJ)"
    assert cycles_ax.get_ylabel() == "layer latency (k cycles)"
    rows = table[table["layer"] == "stage2.0.conv1"].sort_values("out_channels")
    assert list(cycles_ax.get_lines()[1].get_ydata()) == pytest.approx(list(rows["cycles"] / 1e3))
    chosen = plots.staircase(table, ["stage1.0.conv2", "stage3.2.conv1"])
    assert line_labels(chosen.axes[0]) == ["stage1.0.conv2 (in, 16 ch.)",
                                           "stage3.2.conv1 (out, 64 ch.)"]  # fmt: skip


def test_sweep_energy_by_level_and_cycles(inputs):
    summary = plots.load_sweep(inputs["sweep"])
    energy_ax, cycles_ax, util_ax = plots.sweep(summary, "resnet8_eyeriss").axes
    assert [c.get_label() for c in energy_ax.containers] == ["DRAM", "SRAM", "RF", "MAC"]
    assert all(len(c) == 2 for c in energy_ax.containers)
    assert stack_tops(energy_ax) == pytest.approx(list(summary["energy_pj"] / 1e6))
    assert len(cycles_ax.containers) == 1 and len(cycles_ax.containers[0]) == 2
    assert line_labels(util_ax) == ["utilization"]
    assert [t.get_text() for t in cycles_ax.get_xticklabels()] == ["rows=8", "rows=16"]
    assert "µJ" in energy_ax.get_ylabel() and "cycles" in cycles_ax.get_ylabel()
    assert util_ax.get_ylabel() == "PE utilization (%)"


@pytest.fixture(scope="module")
def wide_sweep(tmp_path_factory) -> Path:
    """A real summary-only sweep of 48 points: 7 PE counts, 3 dataflows."""
    hw, note = load_hw("edge_npu")
    grid = {"array.rows": [4, 8, 16, 32], "array.cols": [4, 8, 16, 32],
            "dataflow": ["os", "ws", "is"]}  # fmt: skip
    return run_sweep("resnet8", hw, note, grid, tmp_path_factory.mktemp("wide"),
                     summary_only=True, progress=False)[1]  # fmt: skip


def test_pareto_scatter_draws_every_point_and_the_front(wide_sweep):
    summary = plots.load_sweep(wide_sweep)
    fig = plots.pareto(summary, "resnet8_edge_npu")
    ax, colour_bar = fig.axes  # 7 PE counts: a colour bar, not 7 legend entries
    assert colour_bar.get_ylabel() == "PEs"
    *points, front_dots = ax.collections
    assert [len(c.get_offsets()) for c in points] == [16, 16, 16]  # one per dataflow
    assert all(c.get_rasterized() for c in points)
    front = summary[summary["pareto"]].sort_values(["cycles", "energy_pj"])
    assert 0 < len(front) < len(summary)
    cdiv, cunit = plots.cycles_scale(summary["cycles"].max())
    ediv, _ = plots.energy_scale(summary["energy_pj"].max())
    offsets = front_dots.get_offsets()
    assert list(offsets[:, 0]) == pytest.approx(list(front["cycles"] / cdiv))
    assert list(offsets[:, 1]) == pytest.approx(list(front["energy_pj"] / ediv))
    (step,) = ax.get_lines()
    assert list(step.get_xdata()) == pytest.approx(list(front["cycles"] / cdiv))
    assert ax.get_xlabel() == f"latency ({cunit})"
    assert ax.get_xscale() == "log"  # 4x4 to 32x32 PEs: cycles span more than 20x
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["IS", "OS", "WS", f"Pareto front ({len(front)})"]
    assert f"48 design points, {len(front)} on the Pareto front" in fig._suptitle.get_text()


def test_old_summary_gets_its_front_and_a_wide_one_no_bars(wide_sweep, tmp_path: Path, capsys):
    summary = pd.read_csv(wide_sweep)
    old = tmp_path / "old_sweep.csv"
    summary.drop(columns="pareto").to_csv(old, index=False)
    assert plots.load_sweep(old)["pareto"].tolist() == summary["pareto"].tolist()
    code, stdout, _ = run(["plot", "--sweep", str(wide_sweep), "--out", str(tmp_path / "f")],
                          capsys)  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "pareto_resnet8_edge_npu.pdf", "pareto_resnet8_edge_npu.png"]
    assert "sweep (resnet8_edge_npu): 48 design points, bars are drawn up to 24" in stdout
    check_image(tmp_path / "f" / "pareto_resnet8_edge_npu.png")


def test_inputs_without_support_are_skipped_and_said(inputs, tmp_path: Path, capsys):
    code, stdout, _ = run(["plot", "--table", str(inputs["layer_table"]), "--runs",
                           str(inputs["plain"]), "--out", str(tmp_path)], capsys)  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "accuracy_vs_savings.pdf", "accuracy_vs_savings.png",
        "energy_by_level_resnet8_eyeriss_layer.pdf", "energy_by_level_resnet8_eyeriss_layer.png"]
    assert "staircase (resnet8_eyeriss_layer): no channel rows" in stdout
    assert "sweep, pareto: no --sweep given" in stdout
    assert "skip_ratios (plain)" in stdout and "budgets (plain)" in stdout


def test_errors_are_one_line_and_write_nothing(inputs, tmp_path: Path, capsys):
    trained_only = tmp_path / "trained"
    shutil.copytree(inputs["flops"], trained_only)
    (trained_only / "report.json").unlink()
    out = tmp_path / "figs"
    code, _, err = run(["plot", "--runs", str(inputs["flops"]), str(trained_only),
                        "--out", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert err == (f"ddi-energy: error: {trained_only}: no report.json; run `ddi-energy eval "
                   f"--run {trained_only}` first\n")  # fmt: skip
    assert not out.exists()
    empty = tmp_path / "empty_sweep.csv"
    empty.write_text(inputs["sweep"].read_text().splitlines()[0] + "\n")  # the header alone
    for argv, words in (
        ([], "nothing to plot"),
        (["--sweep", str(inputs["layer_table"])], "not a sweep summary"),
        (["--sweep", str(empty)], "a sweep summary without design points"),
        (["--table", "resnet20_eyeriss", "--layers", "stage1.0.conv1,fc"], "--layers: fc"),
        (["--table", "no_such_table"], "no such cost table"),
    ):
        code, _, err = run(["plot", *argv, "--out", str(out)], capsys)
        assert code == 2 and words in err and err.count("\n") == 1, err
        assert not out.exists()


def test_spread_and_repeated_options_are_the_same():
    """`--runs A B`, `--runs A --runs B` and `--runs=A B` name the same runs (and tables)."""
    command = cli.commands["plot"]
    for argv in (["--runs", "a", "b", "--table", "t", "u", "--out", "o"],
                 ["--runs", "a", "--table", "t", "--runs", "b", "--table", "u", "--out", "o"],
                 ["--runs=a", "b", "--out", "o", "--table=t", "u"]):
        params = command.make_context("plot", argv).params
        assert params["run_dirs"] == (Path("a"), Path("b")), argv
        assert params["tables"] == ("t", "u") and params["out_dir"] == Path("o")
