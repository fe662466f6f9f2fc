"""Fig. 12 of a study with seeds: accuracy against energy and FLOPs savings, one curve per
(loss, count model, channel group), each point the mean over seeds with ±1 standard deviation
bars on both axes, the shared backbones as one black point."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ddi_energy.reporting.plots import LOSS_STYLE, new_figure, styled


def _label(loss: str, counts: str, group: int, several_counts: bool) -> str:
    name = LOSS_STYLE.get(loss, (f"{loss} loss",))[0]
    grouping = "single channels" if group == 1 else f"groups of {group}"
    return f"{name}, {grouping}" + (f", {counts} counts" if several_counts else "")


@styled
def study_figure(table: pd.DataFrame, title: str) -> Figure:
    """`table` is the study's Table I (`*_mean`, `*_std` columns, loss `none` = backbone)."""
    fig = new_figure(5.0)
    axes = fig.subplots(2, 1)
    several_counts = table["counts"].nunique() > 1
    groups = sorted(table["channel_group"].unique())
    for ax, column, what in ((axes[0], "energy_savings", "energy"),
                             (axes[1], "flops_savings", "FLOPs")):  # fmt: skip
        for (loss, counts, group), series in table.groupby(["loss", "counts", "channel_group"]):
            series = series.sort_values(f"{column}_mean")
            if loss == "none":
                label, marker, color, line = "backbone (gates on)", "X", "black", ""
            else:
                _, marker, color = LOSS_STYLE.get(loss, ("", "D", None))
                label = _label(loss, counts, int(group), several_counts)
                line = "-" if groups.index(group) == 0 else "--"
            ax.errorbar(100 * series[f"{column}_mean"], 100 * series["accuracy_mean"],
                        xerr=100 * series[f"{column}_std"].fillna(0),
                        yerr=100 * series["accuracy_std"].fillna(0), marker=marker,
                        color=color, linestyle=line, label=label, capsize=2, markersize=4,
                        markerfacecolor="white" if line == "--" else color)  # fmt: skip
        ax.set_xlabel(f"{what} savings vs the plain network (%)")
        ax.set_ylabel("accuracy (%)")
        ax.margins(x=0.1, y=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    seeds = int(table["seeds"].max())
    fig.suptitle(f"{title}: mean ± 1 std over {seeds} seed{'s' * (seeds != 1)}")
    return fig
