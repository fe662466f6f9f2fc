"""Figures of evaluated runs, cost tables and sweeps (`ddi-energy plot`).

One function per kind of figure; each takes already-loaded data and returns a matplotlib
`Figure` (drawn on an Agg canvas, no pyplot state), so tests can count its series. `plot_all`
loads the inputs, draws every figure they support and writes each as PNG and PDF. Figures are
one paper column wide (3.5 in) with 7-8 pt text, so they stay readable printed at that size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ddi_energy.errors import DDIError
from ddi_energy.files import check_writable
from ddi_energy.reporting.table_summary import models_short, table_models
from ddi_energy.tables.io import load_cost_table
from ddi_energy.tables.pareto import pareto_front

COLUMN_IN = 3.5  # a paper column, inches
DPI = 300
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
    "figure.titlesize": 9, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "axes.axisbelow": True, "lines.linewidth": 1.2, "lines.markersize": 4,
    "pdf.fonttype": 42, "savefig.dpi": DPI,
}  # fmt: skip
LEVELS = {"dram": "DRAM", "sram": "SRAM", "rf": "RF", "mac": "MAC"}
LEVEL_COLORS = {"dram": "#4c72b0", "sram": "#dd8452", "rf": "#55a868", "mac": "#c44e52"}
LOSS_STYLE = {  # loss mode -> (label, marker, color)
    "flops": ("FLOPs loss", "o", "#4c72b0"),
    "energy": ("energy loss", "s", "#dd8452"),
    "latency": ("latency loss", "^", "#55a868"),
    "plain": ("plain (no gates)", "*", "black"),
}
FIRST_SHADE = "#d9d9d9"
MODE_STYLE = {  # budget mode -> (label, marker, color, line style): hollow and dashed for
    # energy, so that it stays visible where it lies on the FLOPs series
    "flops": ("FLOPs budget", "o", "#4c72b0", "-"),
    "energy": ("energy budget", "s", "#dd8452", "--"),
}


def styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under the paper style (fonts are fixed when the text is created)."""

    @wraps(func)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def new_figure(height: float, width: float = COLUMN_IN) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def scale(max_value: float, unit: str, prefixes: Sequence[tuple[float, str]]) -> tuple[float, str]:
    """(divisor, unit label) that keeps the largest value in 1..1000 of a readable unit."""
    for divisor, prefix in reversed(prefixes):
        if abs(max_value) >= divisor:
            return divisor, f"{prefix}{unit}"
    return prefixes[0][0], f"{prefixes[0][1]}{unit}"


def energy_scale(max_pj: float) -> tuple[float, str]:
    return scale(max_pj, "J", ((1, "p"), (1e3, "n"), (1e6, "µ"), (1e9, "m")))


def cycles_scale(max_cycles: float) -> tuple[float, str]:
    divisor, unit = scale(max_cycles, "", ((1, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")))
    return divisor, f"{unit} cycles".strip() if unit else "cycles"


def number(value: float) -> str:
    """3 significant digits, without an exponent up to 999,999."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """`<stem>.png` and `<stem>.pdf` in out_dir."""
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    with matplotlib.rc_context(STYLE):  # pdf.fonttype is read when saving
        for path in paths:
            fig.savefig(path, dpi=DPI)
    return paths


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"


def group_of(name: str) -> str:
    """`stage2.3` -> `stage2`, `stage2.3.conv1` -> `stage2`, `conv1` -> `conv1`."""
    return name.split(".")[0]


def group_ticks(ax, names: Sequence[str], centred: bool = False) -> list[int]:
    """Separate the groups (stages) by dashed lines and label either the first item of each
    group with its name, or (`centred`) each group's span with the group's name; a minor tick
    per item. Returns the positions of the groups' first items."""
    firsts = [i for i, n in enumerate(names) if i == 0 or group_of(n) != group_of(names[i - 1])]
    if centred:
        ends = [*firsts[1:], len(names)]
        ax.set_xticks([(a + b - 1) / 2 for a, b in zip(firsts, ends, strict=True)],
                      [group_of(names[i]) for i in firsts])  # fmt: skip
        ax.tick_params(axis="x", which="major", length=0)
    else:
        ax.set_xticks(firsts, [names[i] for i in firsts])
    ax.set_xticks(range(len(names)), minor=True)
    ax.grid(False, axis="x")
    if len(firsts) > 1:
        ax.vlines([i - 0.5 for i in firsts[1:]], 0, 1, transform=ax.get_xaxis_transform(),
                  colors="0.5", linestyles="--", linewidths=0.6)  # fmt: skip
    ax.set_xlim(-0.6, len(names) - 0.4)
    return firsts


# ------------------------------------------------------------------------------------- runs


REPORT_KEYS = ("accuracy", "flops_savings", "energy_savings")


@dataclass
class Run:
    """An evaluated run directory: report.json and the CSVs `ddi-energy eval` wrote."""

    dir: Path
    name: str
    report: dict[str, Any]
    per_unit: pd.DataFrame | None = None
    budgets: pd.DataFrame | None = None


def load_run_report(run_dir: Path, name: str | None = None) -> Run:
    path = run_dir / "report.json"
    if not path.is_file():
        what = "no such directory" if not run_dir.exists() else "no report.json"
        raise DDIError(f"{run_dir}: {what}; run `ddi-energy eval --run {run_dir}` first")
    try:
        report = json.loads(path.read_text())
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in REPORT_KEYS if k not in report]
        if missing:
            raise ValueError(f"no {missing[0]!r}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DDIError(f"{path}: not a ddi-energy report ({exc}); run `ddi-energy eval "
                       f"--run {run_dir}` again") from None  # fmt: skip
    frames = {}
    for key in ("per_unit", "budgets"):
        csv = run_dir / f"{key}.csv"
        try:
            frames[key] = pd.read_csv(csv) if csv.is_file() else None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DDIError(f"{csv}: unreadable ({exc})") from None
    if frames["budgets"] is None and report.get("budgets"):
        frames["budgets"] = pd.DataFrame(report["budgets"])
    return Run(run_dir, name or safe_name(run_dir.resolve().name), report, **frames)


def run_names(dirs: Sequence[Path]) -> list[str]:
    """Directory names, made unique with their parents' names where they clash."""
    names = [safe_name(d.resolve().name) for d in dirs]
    for i, d in enumerate(dirs):
        if names.count(names[i]) > 1:
            names[i] = safe_name("_".join(d.resolve().parts[-2:]))
    return unique(names)


def unique(names: list[str]) -> list[str]:
    """Names that clash get their position appended: no figure overwrites another."""
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def series_key(report: dict[str, Any]) -> str:
    return "plain" if report.get("gating") in (None, "none") else report.get("loss", "flops")


def accuracy_vs_savings(runs: Sequence[Run | Path], out_dir: Path | None = None, *,
                        baseline: Run | Path | None = None) -> Figure | list[Path]:  # fmt: skip
    """Fig. 12 of runs (`Run`s or evaluated run directories), with `baseline` (e.g. a
    study's shared backbone) as an extra black ✕ point. Returns the Figure; given out_dir,
    writes it there as accuracy_vs_savings.png and .pdf instead and returns their paths."""
    paths = [r for r in runs if not isinstance(r, Run)]
    named = iter(load_run_report(Path(d), n) for d, n in zip(paths, run_names(paths),
                                                             strict=True))  # fmt: skip
    runs = [r if isinstance(r, Run) else next(named) for r in runs]
    if baseline is not None and not isinstance(baseline, Run):
        baseline = load_run_report(Path(baseline))
    fig = accuracy_vs_savings_figure(runs, baseline)
    if out_dir is None:
        return fig

    check_writable(out_dir)
    return save(fig, out_dir, "accuracy_vs_savings")


@styled
def accuracy_vs_savings_figure(runs: Sequence[Run], baseline: Run | None = None) -> Figure:
    """Fig. 12: accuracy against energy savings (top) and FLOPs savings (bottom), one series
    per loss mode, points in order of savings; runs without gates are the plain point."""
    archs = sorted({r.report.get("arch", "?") for r in runs})
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        key = (r.report.get("arch", "?") if len(archs) > 1 else "", series_key(r.report))
        groups.setdefault(key, []).append(r)
    order = list(LOSS_STYLE)
    keys = sorted(groups, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99, k[1]))
    if baseline is not None:
        keys.append(("", "baseline"))
        groups[("", "baseline")] = [baseline]
    fig = new_figure(4.6)
    axes = fig.subplots(2, 1)
    for ax, column, what in ((axes[0], "energy_savings", "energy"),
                             (axes[1], "flops_savings", "FLOPs")):  # fmt: skip
        for key in keys:
            arch, mode = key
            label, marker, color = LOSS_STYLE.get(mode, (f"{mode} loss", "D", None))
            if mode == "baseline":
                label, marker, color = f"baseline ({baseline.name})", "X", "black"
            if arch:
                label = f"{arch}, {label}"
            points = sorted((100 * r.report[column], 100 * r.report["accuracy"])
                            for r in groups[key])  # fmt: skip
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker=marker, color=color, label=label,
                    markersize=8 if marker == "*" else 5)  # fmt: skip
        ax.set_xlabel(f"{what} savings vs the plain network (%)")
        ax.set_ylabel("accuracy (%)")
        ax.margins(x=0.12, y=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2),
               frameon=False)  # fmt: skip
    data = sorted({r.report.get("data", "?") for r in runs})
    fig.suptitle(f"Accuracy vs savings: {', '.join(archs)} on {', '.join(data)} "
                 f"({len(runs)} run{'s' * (len(runs) != 1)})")  # fmt: skip
    return fig


@styled
def skip_ratios(per_unit: pd.DataFrame, name: str, report: dict[str, Any] | None = None
                ) -> Figure:  # fmt: skip
    """Fig. 15: per unit, the share of inputs whose layer gate skipped it and the share of its
    gated channels that were off (both gates); the first block of each stage is shaded."""
    units = list(per_unit["unit"])
    x = range(len(units))
    fig = new_figure(2.9)
    ax = fig.subplots()
    firsts = group_ticks(ax, units)
    shade = len(firsts) < len(units)  # (not when every unit is the first of its stage)
    for i in firsts if shade else ():
        ax.axvspan(i - 0.5, i + 0.5, color=FIRST_SHADE, linewidth=0)
    width = 0.42
    layer = 100 * per_unit["layer_skip_ratio"]
    channel = 100 * per_unit["channel_skip_ratio"]
    ax.bar([i - width / 2 for i in x], layer, width, color="#4c72b0",
           label="layer gate: unit skipped")  # fmt: skip
    ax.bar([i + width / 2 for i in x], channel, width, color="#dd8452",
           label="channels off (both gates)")  # fmt: skip
    top = max(float(layer.max()), float(channel.max()), 0.0)
    ax.set_ylim(0, min(100.0, max(10.0, 1.25 * top)) if top < 80 else 105)
    if top == 0:
        ax.text(0.5, 0.5, "no unit skipped and no channel off", transform=ax.transAxes,
                ha="center", va="center", color="0.35")  # fmt: skip
    ax.set_ylabel("skip ratio (% of inputs / channels)")
    ax.set_xlabel("unit in execution order (first block of each stage labelled)")
    handles, _ = ax.get_legend_handles_labels()
    if shade:
        handles.append(Patch(facecolor=FIRST_SHADE, label="first block of a stage"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
              frameon=False)  # fmt: skip
    sub = ""
    if report:
        sub = (f"\n{report.get('arch')}, {report.get('gating')} gates, {report.get('loss')} "
               f"loss, skip ratio {100 * report.get('skip_ratio', 0):.0f} %")
    fig.suptitle(f"Skip ratios per unit: run {name}{sub}")
    return fig


@styled
def budgets(frame: pd.DataFrame, name: str, report: dict[str, Any] | None = None) -> Figure:
    """Table II: accuracy under hard budgets (top) and the mean cost actually used (bottom),
    per budget mode, against the budget as a % of the plain network's cost. Infeasible budgets
    (below the worst case up to the first exit) have no accuracy and are not drawn."""
    fig = new_figure(4.2)
    acc_ax, cost_ax = fig.subplots(2, 1, sharex=True)
    if "feasible" in frame:
        frame = frame[frame["feasible"].astype(bool)]
    for mode, rows in frame.groupby("mode", sort=False):
        label, marker, color, line = MODE_STYLE.get(str(mode), (f"{mode} budget", "D", None, "-"))
        rows = rows.sort_values("budget_fraction")
        x = 100 * rows["budget_fraction"]
        style = {"marker": marker, "color": color, "linestyle": line, "label": label,
                 "markerfacecolor": "none" if line != "-" else color}  # fmt: skip
        acc_ax.plot(x, 100 * rows["accuracy"], **style)
        cost_ax.plot(x, 100 * rows["mean_cost_fraction"], **style)
    if report and "accuracy" in report:
        acc_ax.axhline(100 * report["accuracy"], color="0.4", linestyle=":", linewidth=1,
                       label="no budget")  # fmt: skip
    lo, hi = 100 * frame["budget_fraction"].min(), 100 * frame["budget_fraction"].max()
    cost_ax.plot([lo, hi], [lo, hi], color="0.4", linestyle="--", linewidth=0.8,
                 label="cost = budget")  # fmt: skip
    acc_ax.set_ylabel("accuracy (%)")
    cost_ax.set_ylabel("mean cost used\n(% of plain network)")
    cost_ax.set_xlabel("budget (% of the plain network's FLOPs / energy)")
    handles, labels = acc_ax.get_legend_handles_labels()
    extra = cost_ax.get_legend_handles_labels()
    handles.append(extra[0][-1])
    labels.append(extra[1][-1])
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    for ax in (acc_ax, cost_ax):
        ax.margins(y=0.15)
    sub = f"\n{report.get('arch')}, {report.get('gating')} gates, exits" if report else ""
    fig.suptitle(f"Accuracy under hard budgets: run {name}{sub}")
    return fig


# ----------------------------------------------------------------------------------- tables


def table_name(table: pd.DataFrame) -> str:
    path = table.attrs.get("path")
    return safe_name(Path(path).stem) if path else "table"


def full_rows(table: pd.DataFrame) -> pd.DataFrame:
    full = table[table["is_full"].astype(str).str.lower() == "true"]
    return full.sort_values("layer_index", kind="stable").reset_index(drop=True)


@styled
def energy_by_level(table: pd.DataFrame, name: str | None = None) -> Figure:
    """Per-layer energy of the full network stacked by memory level (top) and the network's
    totals by level (bottom), from the table's `is_full` rows."""
    name = name or table_name(table)
    full = full_rows(table)
    levels = {k: full[f"energy_{k}_pj"].astype(float) for k in LEVELS}
    div, unit = energy_scale(float(full["energy_pj"].max()))
    fig = new_figure(4.4)
    layer_ax, total_ax = fig.subplots(2, 1, height_ratios=[2.6, 1])
    bottom = pd.Series(0.0, index=full.index)
    for key, label in LEVELS.items():
        layer_ax.bar(range(len(full)), levels[key] / div, 0.8, bottom=bottom / div,
                     color=LEVEL_COLORS[key], label=label)  # fmt: skip
        bottom = bottom + levels[key]
    group_ticks(layer_ax, list(full["layer"]), centred=True)
    layer_ax.set_ylabel(f"energy per layer ({unit})")
    layer_ax.set_xlabel(f"layer in execution order ({len(full)} layers)", labelpad=1)
    layer_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    totals = {k: float(v.sum()) for k, v in levels.items()}
    total = sum(totals.values())
    tdiv, tunit = energy_scale(max(totals.values()))
    names = list(LEVELS.values())
    values = [totals[k] / tdiv for k in LEVELS]
    total_ax.barh(names, values, color=[LEVEL_COLORS[k] for k in LEVELS], height=0.7)
    total_ax.invert_yaxis()
    for i, v in enumerate(values):
        total_ax.text(v, i, f" {number(v)} ({100 * totals[list(LEVELS)[i]] / total:.0f} %)",
                      va="center", fontsize=7)  # fmt: skip
    total_ax.set_xlim(0, 1.35 * max(values))
    total_ax.set_xlabel(f"network total per inference ({tunit})")
    total_ax.grid(False, axis="y")
    meta = table.attrs.get("meta", {})
    hw = meta.get("hw", {})
    hw_text = f" on {hw['name']}" if hw.get("name") else ""
    arch = meta.get("arch", name)
    fig.suptitle(f"Energy by memory level: {arch}{hw_text}\n{models_short(meta)}: "
                 f"{number(total / tdiv)} {tunit} per inference")  # fmt: skip
    return fig


def count_model_pairs(tables: Sequence[pd.DataFrame]) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(scalesim, physical) tables of the same arch, hardware config and granularity."""
    def key(t: pd.DataFrame) -> tuple:
        m = t.attrs.get("meta", {})
        return m.get("arch"), m.get("hw_digest"), m.get("granularity")

    by_model = {m: {key(t): t for t in tables if t.attrs.get("meta", {}).get("counts") == m}
                for m in ("scalesim", "physical")}  # fmt: skip
    return [(t, by_model["physical"][k]) for k, t in by_model["scalesim"].items()
            if k in by_model["physical"]]  # fmt: skip


@styled
def count_models(scalesim: pd.DataFrame, physical: pd.DataFrame) -> Figure:
    """Network energy per inference by memory level under SCALE-Sim's counts and the physical
    counts of the same mapping, with physical / SCALE-Sim above each pair."""
    totals = {name: {k: float(full_rows(t)[f"energy_{k}_pj"].astype(float).sum()) for k in LEVELS}
              for name, t in (("scalesim", scalesim), ("physical", physical))}  # fmt: skip
    for levels in totals.values():
        levels["total"] = sum(levels.values())
    keys = [*LEVELS, "total"]
    div, unit = energy_scale(max(totals["scalesim"]["total"], totals["physical"]["total"]))
    fig = new_figure(2.9)
    ax = fig.subplots()
    for offset, name, color in ((-0.2, "scalesim", "0.65"), (0.2, "physical", "#4c72b0")):
        ax.bar([i + offset for i in range(len(keys))], [totals[name][k] / div for k in keys],
               0.4, color=color, label=f"{name} counts")  # fmt: skip
    for i, k in enumerate(keys):
        ratio = totals["physical"][k] / totals["scalesim"][k] if totals["scalesim"][k] else 1
        top = max(totals["scalesim"][k], totals["physical"][k]) / div
        ax.text(i, top, f"×{ratio:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(keys)), [LEVELS.get(k, "total") for k in keys])
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_ylim(0, 1.15 * totals["scalesim"]["total"] / div)
    ax.grid(False, axis="x")
    ax.legend(loc="upper left", frameon=False)
    meta = physical.attrs.get("meta", {})
    hw = meta.get("hw", {})
    sram = models_short(meta).split(", ", 1)[1]
    fig.suptitle(f"SCALE-Sim vs physical counts: {meta.get('arch')} on {hw.get('name')}\n"
                 f"({hw.get('array', {}).get('rows')}×{hw.get('array', {}).get('cols')} "
                 f"{hw.get('dataflow')}, {sram}; physical / SCALE-Sim above)")  # fmt: skip
    return fig


def swept_layers(table: pd.DataFrame) -> dict[str, str]:
    """Layers with rows at several active channel counts -> the axis those rows sweep."""
    gated = table[table["channel_axis"].astype(str).isin(["in", "out"])]
    counts = gated.groupby("layer", sort=False).size()
    axes = gated.drop_duplicates("layer").set_index("layer")["channel_axis"]
    return {layer: str(axes[layer]) for layer, n in counts.items() if n > 1}


def default_staircase_layers(table: pd.DataFrame) -> list[str]:
    """The first gated layer sweeping output channels in each stage (ResNet: the first
    block's conv1), else the first swept layer of each stage."""
    swept = swept_layers(table)
    full = full_rows(table)
    chosen: dict[str, str] = {}
    for prefer_out in (True, False):
        for layer in full["layer"]:
            if layer in swept and (swept[layer] == "out" or not prefer_out):
                chosen.setdefault(group_of(layer), layer)
    order = list(full["layer"])
    return sorted(chosen.values(), key=order.index)


def staircase_layers(table: pd.DataFrame, layers: Sequence[str] | None, name: str) -> list[str]:
    """The --layers asked for (checked against the table), else the default ones."""
    swept = swept_layers(table)
    layers = list(layers) if layers else default_staircase_layers(table)
    unknown = [layer for layer in layers if layer not in swept]
    if unknown:
        shown = ", ".join(list(swept)[:6]) + (", ..." if len(swept) > 6 else "")
        raise DDIError(f"--layers: {', '.join(unknown)} has no rows at several channel counts "
                       f"in {name} (layers that have: {shown or 'none'})")  # fmt: skip
    if not layers:
        raise DDIError(f"{name}: no layer with rows at several channel counts")
    return layers


@styled
def staircase(table: pd.DataFrame, layers: Sequence[str] | None = None,
              name: str | None = None) -> Figure:  # fmt: skip
    """Energy (top) and cycles (bottom) of chosen layers against their active channel count;
    dotted lines at multiples of the array's column count, where the steps are."""
    name = name or table_name(table)
    swept = swept_layers(table)
    layers = staircase_layers(table, layers, name)
    fig = new_figure(4.4)
    e_ax, c_ax = fig.subplots(2, 1, sharex=True)
    rows = {layer: table[table["layer"] == layer].assign(
        active=lambda t, a=swept[layer]: t[f"{a}_channels"].astype(int)).sort_values("active")
        for layer in layers}  # fmt: skip
    ediv, eunit = energy_scale(max(float(r["energy_pj"].max()) for r in rows.values()))
    cdiv, cunit = cycles_scale(max(float(r["cycles"].max()) for r in rows.values()))
    for layer, r in rows.items():
        full = int(r[f"full_{swept[layer]}_channels"].iloc[0])
        label = f"{layer} ({swept[layer]}, {full} ch.)"
        e_ax.plot(r["active"], r["energy_pj"] / ediv, marker=".", markersize=3, label=label)
        c_ax.plot(r["active"], r["cycles"] / cdiv, marker=".", markersize=3, label=label)
    cols = table.attrs.get("meta", {}).get("hw", {}).get("array", {}).get("cols")
    top = max(int(r["active"].max()) for r in rows.values())
    handles = e_ax.get_legend_handles_labels()[0]
    marks = list(range(int(cols), top + 1, int(cols))) if cols else []
    for ax in (e_ax, c_ax):
        marked = ax.vlines(marks, 0, 1, transform=ax.get_xaxis_transform(), colors="0.45",
                           linestyles=":", linewidths=0.9,
                           label=f"multiples of the array width ({cols} columns)")
    if marks:
        handles.append(marked)
    elif cols:
        handles.append(Patch(color="none", label=f"array width {cols} columns > {top} "
                             "channels: no steps"))  # fmt: skip
    e_ax.set_ylabel(f"layer energy ({eunit})")
    c_ax.set_ylabel(f"layer latency ({cunit})")
    c_ax.set_xlabel("active channels (of the gated axis)")
    fig.legend(handles=handles, loc="outside lower center", ncol=1, frameon=False)
    for ax in (e_ax, c_ax):
        ax.set_xlim(0, top + 1)
        ax.set_ylim(bottom=0)
    hw = table.attrs.get("meta", {}).get("hw", {})
    where = (f" on {hw['name']}\n({hw['array']['rows']}×{hw['array']['cols']} array, "
             f"{hw.get('dataflow', '?')} dataflow)") if hw.get("array") else ""
    fig.suptitle(f"Cost vs active channels: {table.attrs.get('meta', {}).get('arch', name)}"
                 f"{where}")  # fmt: skip
    return fig


# ----------------------------------------------------------------------------------- sweeps

SWEEP_COLUMNS = ("point", "table", "energy_pj", "cycles", "utilization",
                 *(f"energy_{k}_pj" for k in LEVELS))  # fmt: skip


def load_sweep(path: Path) -> pd.DataFrame:
    """A sweep summary; one written before the `pareto` column gets it computed."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DDIError(f"{path}: no such sweep summary (`ddi-energy sweep` writes "
                       "<arch>_<hw>_sweep.csv)") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:  # fmt: skip
        raise DDIError(f"{path}: not a readable sweep summary ({exc})") from None
    missing = [c for c in SWEEP_COLUMNS if c not in frame.columns]
    if missing:
        raise DDIError(f"{path}: not a sweep summary, missing column {missing[0]!r}")
    if frame.empty:
        raise DDIError(f"{path}: a sweep summary without design points")
    if "pareto" not in frame.columns:
        frame["pareto"] = pareto_front(frame["energy_pj"], frame["cycles"])
    frame.attrs["path"] = str(path)
    return frame


def varied_columns(summary: pd.DataFrame) -> list[str]:
    """The --vary keys: the columns between `point` and `table`."""
    columns = list(summary.columns)
    return columns[columns.index("point") + 1:columns.index("table")]


def point_labels(summary: pd.DataFrame, sep: str = "\n") -> list[str]:
    """`rows=8` (the last part of each varied key), one line per key."""
    varied = varied_columns(summary)
    if not varied:
        return [str(p) for p in summary["point"]]
    return [sep.join(f"{k.split('.')[-1]}={row[k]}" for k in varied)
            for _, row in summary.iterrows()]  # fmt: skip


@styled
def sweep(summary: pd.DataFrame, name: str) -> Figure:
    """Per design point: energy per inference stacked by memory level (top), cycles (bars)
    and array utilization (line, right axis) (bottom)."""
    x = list(range(len(summary)))
    upright = len(summary) <= 4  # more labels side by side would collide: turn them
    labels = point_labels(summary, "\n" if upright else ", ")
    fig = new_figure(4.6 if upright else 5.2)
    e_ax, c_ax = fig.subplots(2, 1, sharex=True)
    div, unit = energy_scale(float(summary["energy_pj"].max()))
    bottom = pd.Series(0.0, index=summary.index)
    for key, label in LEVELS.items():
        values = summary[f"energy_{key}_pj"].astype(float)
        e_ax.bar(x, values / div, 0.6, bottom=bottom / div, color=LEVEL_COLORS[key],
                 label=label)  # fmt: skip
        bottom = bottom + values
    e_ax.set_ylabel(f"energy per inference ({unit})")
    e_ax.set_ylim(0, 1.12 * float(bottom.max()) / div)
    e_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    cdiv, cunit = cycles_scale(float(summary["cycles"].max()))
    c_ax.bar(x, summary["cycles"] / cdiv, 0.6, color="0.6", label="cycles")
    c_ax.set_ylabel(f"latency ({cunit})")
    c_ax.set_ylim(0, 1.12 * float(summary["cycles"].max()) / cdiv)
    u_ax = c_ax.twinx()
    u_ax.plot(x, 100 * summary["utilization"], color="#8172b3", marker="o",
              label="utilization")  # fmt: skip
    u_ax.set_ylabel("PE utilization (%)", color="#8172b3")
    u_ax.tick_params(axis="y", colors="#8172b3")
    u_ax.set_ylim(0, min(100.0, 1.12 * 100 * float(summary["utilization"].max())) or 1)
    u_ax.grid(False)
    handles = c_ax.get_legend_handles_labels()[0] + u_ax.get_legend_handles_labels()[0]
    c_ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                frameon=False)  # fmt: skip
    c_ax.set_xticks(x, labels, rotation=0 if upright else 90)
    c_ax.set_xlabel("design point")
    c_ax.grid(False, axis="x")
    e_ax.grid(False, axis="x")
    fig.suptitle(f"Hardware sweep: {name}\n({len(summary)} design points)")
    return fig


SWEEP_BARS_MAX = 24  # design points a bar chart can label; any number goes in the scatter
DATAFLOW_MARKERS = {"os": "o", "ws": "s", "is": "^"}
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd")  # fmt: skip
FRONT_LABELS_MAX = 6  # front points labelled one by one; a longer front gets its two ends
LEGEND_VALUES_MAX = 5  # numeric colour values listed in the legend; more get a colour bar


def colour_key(summary: pd.DataFrame) -> tuple[str, pd.Series] | None:
    """What the scatter colours by: PEs (rows x cols) when the array varies, else the first
    varied key other than the dataflow (the markers show that); None if nothing else varies."""
    varied = [k for k in varied_columns(summary) if k != "dataflow"]
    array = [k for k in ("array.rows", "array.cols") if k in varied]
    if array:
        values = summary[array[0]] * (summary[array[1]] if len(array) == 2 else 1)
        return ("PEs" if len(array) == 2 else array[0].split(".")[-1]), values
    return (varied[0].split(".")[-1], summary[varied[0]]) if varied else None


def log_if_wide(values: pd.Series) -> str:
    """A log scale when the values span more than 20x (sweeps over array sizes do)."""
    low = float(values.min())
    return "log" if low > 0 and float(values.max()) / low > 20 else "linear"


def scale_axis(axis, values: pd.Series) -> None:
    """Log or linear (`log_if_wide`); log ticks at 1, 2, 5 x 10^k written as plain numbers."""
    scale = log_if_wide(values)
    (axis.axes.set_xscale if axis.axis_name == "x" else axis.axes.set_yscale)(scale)
    if scale == "log":
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))
        axis.set_minor_formatter(NullFormatter())


def point_colours(fig: Figure, ax, summary: pd.DataFrame) -> tuple[list[Any], list[Any]]:
    """A colour per point and the legend entries saying what it means: numbers along viridis
    (a colour bar beyond LEGEND_VALUES_MAX values), anything else from the palette."""
    key = colour_key(summary)
    if key is None:
        return [PALETTE[0]] * len(summary), []
    label, values = key
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():  # names: one palette colour each (cycled beyond ten)
        names = sorted(values.astype(str).unique())
        index = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(names)}
        return ([index[v] for v in values.astype(str)],
                [Patch(color=c, label=f"{label}={v}") for v, c in index.items()])
    norm = (LogNorm if log_if_wide(numeric) == "log" else Normalize)(numeric.min(), numeric.max())
    mapping = ScalarMappable(norm=norm, cmap="viridis")
    distinct = sorted(numeric.unique())
    if len(distinct) > LEGEND_VALUES_MAX:
        bar = fig.colorbar(mapping, ax=ax, label=label, pad=0.01)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))
        return list(mapping.to_rgba(numeric)), []
    return (list(mapping.to_rgba(numeric)),
            [Patch(color=mapping.to_rgba(v), label=f"{label}={number(v)}") for v in distinct])


def label_front(ax, front: pd.DataFrame, varied: Sequence[str], cdiv: float,
                ediv: float) -> None:  # fmt: skip
    """Number the front's points from the fastest (the two ends of a front longer than
    FRONT_LABELS_MAX) and list their varied values in a box in the upper left, where fast
    designs that spend much energy would be and seldom are."""
    shown = front if len(front) <= FRONT_LABELS_MAX else front.iloc[[0, -1]]
    lines = []
    for number_, (_, row) in enumerate(shown.iterrows(), start=1):
        ax.annotate(str(number_), (row["cycles"] / cdiv, row["energy_pj"] / ediv),
                    xytext=(3, 3), textcoords="offset points", fontsize=6, weight="bold",
                    zorder=5)  # fmt: skip
        values = ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in varied) or str(row["point"])
        lines.append(f"{number_}: {values}")
    title = "Pareto front" if len(shown) == len(front) else "ends of the Pareto front"
    ax.text(0.02, 0.98, "\n".join([f"{title}:", *lines]), transform=ax.transAxes, va="top",
            fontsize=5.5, zorder=5, bbox={"boxstyle": "round,pad=0.3", "fc": "white",
                                          "ec": "0.7", "lw": 0.5, "alpha": 0.9})  # fmt: skip


@styled
def pareto(summary: pd.DataFrame, name: str) -> Figure:
    """Energy per inference vs latency of every design point, coloured by PEs (or the first
    varied key) with a marker per dataflow, small and rasterized so thousands of points stay
    readable (and the PDF small); the Pareto front (the `pareto` column) drawn over them as a
    step line, its points numbered and their varied values listed."""
    fig = new_figure(3.6)
    ax = fig.subplots()
    ediv, eunit = energy_scale(float(summary["energy_pj"].max()))
    cdiv, cunit = cycles_scale(float(summary["cycles"].max()))
    x, y = summary["cycles"] / cdiv, summary["energy_pj"] / ediv
    colours, handles = point_colours(fig, ax, summary)
    flows = summary["dataflow"] if "dataflow" in summary else pd.Series("", summary.index)
    for flow in sorted(flows.unique()):
        rows = (flows == flow).to_numpy()
        marker = DATAFLOW_MARKERS.get(flow, "o")
        ax.scatter(x[rows], y[rows], s=10 if len(summary) <= 100 else 4, marker=marker,
                   c=[c for c, r in zip(colours, rows, strict=True) if r], linewidths=0,
                   alpha=0.7, rasterized=True)  # fmt: skip
        if flow:
            handles.append(Line2D([], [], ls="", marker=marker, color="0.4", label=flow.upper()))
    front = summary[summary["pareto"].astype(bool)].sort_values(["cycles", "energy_pj"])
    fx, fy = front["cycles"] / cdiv, front["energy_pj"] / ediv
    ax.step(fx, fy, where="post", color="black", lw=0.8, zorder=3)
    ax.scatter(fx, fy, s=18, facecolors="none", edgecolors="black", linewidths=0.8, zorder=4)
    handles.append(Line2D([], [], color="black", lw=0.8, marker="o", ms=4, mfc="none",
                          label=f"Pareto front ({len(front)})"))  # fmt: skip
    scale_axis(ax.xaxis, x)
    scale_axis(ax.yaxis, y)
    ax.set_xlabel(f"latency ({cunit})")
    ax.set_ylabel(f"energy per inference ({eunit})")
    label_front(ax, front, varied_columns(summary), cdiv, ediv)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)),
               frameon=False)  # fmt: skip
    fig.suptitle(f"Energy vs latency: {name}\n({len(summary)} design points, {len(front)} on "
                 "the Pareto front)")  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------- driver


@dataclass
class PlotResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "kind (input): reason"
    tables: list[str] = field(default_factory=list)  # "table: its count and energy models"


def sweep_name(path: Path) -> str:
    return safe_name(path.stem.removesuffix("_sweep"))


def plot_all(run_dirs: Sequence[Path] = (), tables: Sequence[str] = (),
             sweeps: Sequence[Path] = (), out_dir: Path = Path("figures"),
             layers: Sequence[str] | None = None) -> PlotResult:  # fmt: skip
    """Load every input (any error stops here, before a file is written), then draw every
    figure the inputs support into out_dir, as PNG and PDF."""

    if not (run_dirs or tables or sweeps):
        raise DDIError("nothing to plot: give --runs DIR..., --table NAME_OR_CSV or "
                       "--sweep CSV")  # fmt: skip
    runs = [load_run_report(d, n) for d, n in zip(run_dirs, run_names(run_dirs), strict=True)]
    loaded = [load_cost_table(t) for t in tables]
    summaries = list(zip(unique([sweep_name(Path(s)) for s in sweeps]),
                         [load_sweep(Path(s)) for s in sweeps], strict=True))  # fmt: skip
    drawn: list[tuple[str, Callable[[], Figure]]] = []
    result = PlotResult()
    if runs:
        drawn.append(("accuracy_vs_savings", lambda: accuracy_vs_savings(runs)))
    else:
        result.skipped.append("accuracy_vs_savings, skip_ratios, budgets: no --runs given")
    for r in runs:
        if series_key(r.report) == "plain":
            result.skipped.append(f"skip_ratios ({r.name}): gating none, nothing is skipped")
        elif r.per_unit is None or r.per_unit.empty:
            result.skipped.append(f"skip_ratios ({r.name}): no per_unit.csv")
        else:
            drawn.append((f"skip_ratios_{r.name}",
                          lambda r=r: skip_ratios(r.per_unit, r.name, r.report)))
        if r.budgets is None or r.budgets.empty:
            result.skipped.append(f"budgets ({r.name}): no budgets.csv (a model without exits)")
        else:
            drawn.append((f"budgets_{r.name}", lambda r=r: budgets(r.budgets, r.name, r.report)))
    if not loaded:
        result.skipped.append("energy_by_level, staircase: no --table given")
    names = unique([table_name(t) for t in loaded])
    for scalesim, physical in count_model_pairs(loaded):
        name = table_name(scalesim)
        drawn.append((f"count_models_{name}", lambda s=scalesim, p=physical: count_models(s, p)))
    if loaded and not count_model_pairs(loaded):
        result.skipped.append("count_models: no scalesim and physical table of the same arch "
                              "and config among --table")  # fmt: skip
    for table, name in zip(loaded, names, strict=True):
        result.tables.append(f"{name}: {table_models(table.attrs.get('meta', {}))}")
        drawn.append((f"energy_by_level_{name}", lambda t=table, n=name: energy_by_level(t, n)))
        if swept_layers(table):
            staircase_layers(table, layers, name)  # check --layers before writing anything
            drawn.append((f"staircase_{name}", lambda t=table, n=name: staircase(t, layers, n)))
        else:
            result.skipped.append(f"staircase ({name}): no channel rows (a network without "
                                  "channel gates, or a layer-granularity table)")  # fmt: skip
    if not summaries:
        result.skipped.append("sweep, pareto: no --sweep given")
    for name, summary in summaries:
        drawn.append((f"pareto_{name}", lambda s=summary, n=name: pareto(s, n)))
        if len(summary) <= SWEEP_BARS_MAX:
            drawn.append((f"sweep_{name}", lambda s=summary, n=name: sweep(s, n)))
        else:
            result.skipped.append(f"sweep ({name}): {len(summary)} design points, bars are "
                                  f"drawn up to {SWEEP_BARS_MAX} (the pareto scatter has them "
                                  "all)")  # fmt: skip
    check_writable(out_dir)
    for stem, draw in drawn:
        result.written += save(draw(), out_dir, stem)
    return result
