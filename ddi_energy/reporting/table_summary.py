"""Readable text views of a cost table: its count and energy models, per-layer summary and
full-network totals."""

from __future__ import annotations

import pandas as pd

from ddi_energy.tables.columns import network_totals

LEVELS = (("DRAM", "energy_dram_pj"), ("SRAM", "energy_sram_pj"), ("RF", "energy_rf_pj"),
          ("MAC", "energy_mac_pj"))  # fmt: skip


def sram_text(sram_pj: dict[str, float], auto: bool) -> str:
    """`SRAM auto: ifmap 3.396, filter 3.396, ofmap 3.396 pJ/word` (or `SRAM 1.25 pJ/word`)."""
    if not auto and len(set(sram_pj.values())) == 1:
        return f"SRAM {next(iter(sram_pj.values())):g} pJ/word"
    per = ", ".join(f"{op} {e:g}" for op, e in sram_pj.items())
    return f"SRAM {'auto' if auto else 'fixed'}: {per} pJ/word"


def models_short(meta: dict) -> str:
    """`physical counts, SRAM auto` (for figure titles)."""
    if not meta:
        return "no metadata"
    sram = meta.get("hw", {}).get("energy_pj", {}).get("sram")
    sram = "auto" if sram == "auto" else f"{sram:g} pJ" if isinstance(sram, (int, float)) else "?"
    return f"{meta.get('counts', 'scalesim')} counts, SRAM {sram}"


def table_models(meta: dict) -> str:
    """Which count model and energy model a table's numbers come from (from its metadata)."""
    if not meta:
        return "count and energy model unknown (no .json metadata beside the table)"
    counts = meta.get("counts", "scalesim")  # tables from before the physical model
    hw = meta.get("hw", {})
    energy = hw.get("energy_pj", {})
    sram = meta.get("sram_pj") or dict.fromkeys(("ifmap", "filter", "ofmap"), energy.get("sram"))
    dram = energy.get("dram")
    dram = f"{dram:g}" if isinstance(dram, (int, float)) else "?"
    return (f"{counts} counts; energy Eq. 6 with DRAM {dram} pJ/word, "
            f"{sram_text(sram, energy.get('sram') == 'auto')}")


def _fmt_energy(pj: float) -> str:
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3f} {unit}"
    return f"{pj:.1f} pJ"


def layer_summary(table: pd.DataFrame) -> str:
    """One line per layer (all channels active) with shape, MACs, cycles and energy by level.

    The kernel column reads RxS/stride, plus gG for a grouped and dD for a dilated conv.
    """
    full = table[table["is_full"]]
    gated_rows = table.groupby("layer_index").size()
    lines = [
        f"{'layer':<26} {'C->K':>9} {'in':>7} {'RxS/s':<10} {'MACs':>10} {'cycles':>9} "
        f"{'DRAM':>6} {'SRAM':>6} {'RF':>6} {'MAC':>6} {'energy':>11} {'rows':>5}"
    ]
    for _, r in full.iterrows():
        e = r["energy_pj"]
        shares = " ".join(f"{100 * r[col] / e:5.1f}%" for _, col in LEVELS)
        kernel = f"{r['filter_h']}x{r['filter_w']}/{r['stride']}" + (
            f" g{r['groups']}" if r["groups"] != 1 else "") + (
            f" d{r['dilation']}" if str(r["dilation"]) != "1" else "")  # fmt: skip
        lines.append(
            f"{r['layer']:<26} {r['in_channels']:>4}->{r['out_channels']:<4} "
            f"{r['ifmap_h']:>3}x{r['ifmap_w']:<3} {kernel:<10} "
            f"{r['macs']:>10,} {r['cycles']:>9,} {shares} {_fmt_energy(e):>11} "
            f"{gated_rows[r['layer_index']]:>5}"
        )
    return "\n".join(lines)


def totals_summary(table: pd.DataFrame) -> str:
    """Full-network totals: energy by memory level, MACs, cycles."""
    t = network_totals(table)
    total = t["energy_pj"]
    lines = [f"full network: {len(table[table['is_full']])} layers, {len(table)} table rows"]
    lines.append(f"  MACs    {int(t['macs']):>16,}   (FLOPs = 2 x MACs = {2 * t['macs']:.4g})")
    lines.append(f"  cycles  {int(t['cycles']):>16,}")
    for label, col in LEVELS:
        lines.append(f"  {label:<7} {_fmt_energy(t[col]):>16}   {100 * t[col] / total:5.1f} %")
    lines.append(f"  energy  {_fmt_energy(total):>16}")
    return "\n".join(lines)
