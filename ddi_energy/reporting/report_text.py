"""Human-readable text of an evaluation report (the paper's Table I / II layout)."""

from __future__ import annotations

import pandas as pd

from ddi_energy.training.evaluate import Report


def _table(frame: pd.DataFrame) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):  # fmt: skip
        return frame.to_string(index=False, na_rep="-")


def _energy_lines(s: dict) -> list[str]:
    """Energy and cycles, if the report was priced with a cost table."""
    if "energy_pj_per_input" not in s:
        return []
    return [f"energy / input      {s['energy_pj_per_input'] / 1e6:.2f} µJ  (plain "
            f"{s['plain_network']['energy_pj'] / 1e6:.2f} µJ)  savings "
            f"{100 * s['energy_savings']:.1f} %",
            f"cycles / input      {s['cycles_per_input'] / 1e3:.1f} k   savings "
            f"{100 * s['cycles_savings']:.1f} %"]


def print_report(report: Report) -> str:
    s = report.summary
    lines = [
        f"{s['arch']} ({s['gating']}, trained on {s['loss']}) on {s['data']}, {s['inputs']} "
        f"test inputs, step {s['step']}; costs on {s['cost_table']}",
        "",
        f"accuracy            {100 * s['accuracy']:.2f} %",
        f"FLOPs / input       {s['flops_per_input'] / 1e6:.2f} M   (plain "
        f"{s['plain_network']['flops'] / 1e6:.2f} M)   savings {100 * s['flops_savings']:.1f} %",
        *_energy_lines(s),
        f"skip ratio          {100 * s['skip_ratio']:.1f} % of the backbone's "
        f"{s['skip_ratio_metric']} (target {100 * s['target_skip']:.0f} %); units skipped "
        f"{100 * s['unit_skip_ratio']:.1f} %, channels off {100 * s['channel_skip_ratio']:.1f} %",
        f"gates + exits       {100 * s['overhead_flops_share']:.2f} % of the plain FLOPs",
    ]
    if "energy_breakdown_pj" in s:
        levels = pd.DataFrame({
            "level": list(s["energy_breakdown_pj"]),
            "this model": [v / 1e6 for v in s["energy_breakdown_pj"].values()],
            "plain": [v / 1e6 for v in s["plain_energy_breakdown_pj"].values()],
        })  # fmt: skip
        levels["savings %"] = 100 * (1 - levels["this model"] / levels["plain"])
        lines += ["", "energy by memory level (µJ / input):", _table(levels)]
    if "per_difficulty" in report.frames:
        lines += ["", "per difficulty level:", _table(report.frames["per_difficulty"])]
    if "budgets" in report.frames:
        lines += ["", "accuracy under hard budgets (fraction of the plain network's cost; "
                  "oracle: each input at the deepest output that fits):",
                  _table(_budget_rows(report.frames["budgets"]))]
    return "\n".join(lines)


def _budget_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Budgets with infeasible rows saying so instead of showing an accuracy."""
    shown = frame.drop(columns="feasible")
    shown["accuracy"] = [f"{a:.4g}" if ok else "infeasible"
                         for a, ok in zip(frame["accuracy"], frame["feasible"], strict=True)]
    return shown
