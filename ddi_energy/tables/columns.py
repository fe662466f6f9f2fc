"""What a cost table holds: its columns, in order, and the full-network totals read off it.

Kept apart from profiling so that reading a table needs neither torch nor an engine.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from ddi_energy.hardware.energy import ENERGY_COLUMNS

TABLE_COLUMNS = (
    "layer", "in_channels", "out_channels", "full_in_channels", "full_out_channels",
    "ifmap_h", "ifmap_w", "filter_h", "filter_w", "stride", "macs", "cycles",
    "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes", "sram_ofmap_reads",
    "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes", "dram_ofmap_reads",
    "rf_accesses",
    "energy_dram_pj", "energy_sram_pj", "energy_rf_pj", "energy_mac_pj", "energy_pj",
    # Beyond the required columns: what a consumer of the table needs to map rows to gates.
    "layer_index", "kind", "is_full", "layer_gate", "channel_gate", "channel_axis",
    "ofmap_h", "ofmap_w", "padding",
    # Grouped and dilated convs: how the row's SCALE-Sim layers were formed, and how many.
    "groups", "dilation", "sim_layers",
)  # fmt: skip

# Columns tables gained later, with the value every table written before them implies: no
# partial-sum reads (SCALE-Sim counts none; the physical count model added them) and dense
# layers (grouped and dilated convs came later).
ADDED_COLUMNS = {"sram_ofmap_reads": 0, "dram_ofmap_reads": 0, "groups": 1, "dilation": 1,
                 "sim_layers": 1}  # fmt: skip


def network_totals(table: pd.DataFrame) -> dict[str, float]:
    """Totals of the full network (every layer with all channels active)."""
    full = table[table["is_full"]]
    keys = ("macs", "cycles", "rf_accesses", *ENERGY_COLUMNS, "energy_pj")
    return {k: float(full[k].sum()) for k in keys}


# Columns that hold text; every other column of a table is a number (or the bool is_full).
# stride, padding and dilation are a number, or "HxW" where a layer's axes differ.
TEXT_COLUMNS = ("layer", "kind", "layer_gate", "channel_gate", "channel_axis", "stride", "padding",
                "dilation")  # fmt: skip


def content_digest(table: pd.DataFrame) -> str:
    """SHA-256 of a table's parsed content (its canonical CSV), recorded in the metadata so that
    a table changed since it was profiled can be told; a table written and read back gives the
    same digest."""
    return csv_digest(table.to_csv(index=False))


def csv_digest(text: str) -> str:
    """`content_digest` of the table whose canonical CSV is `text`."""
    return hashlib.sha256(text.encode()).hexdigest()
