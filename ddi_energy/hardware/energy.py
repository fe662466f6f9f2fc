"""Eq. 6 of the DDI paper: E = sum_i #acc_i * e_i + #MAC * e_MAC, per memory level.

SCALE-Sim reports DRAM and SRAM (buffer) accesses but nothing inside the PEs, so the register
file level is modelled here from the MAC count and the dataflow's mapping (see `rf_accesses`).
SRAM energy is summed per operand buffer, each at its own pJ per word (`HardwareConfig.sram_pj`:
a buffer's energy follows its capacity when `energy_pj.sram` is auto).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping

import numpy as np

from ddi_energy.hardware.config import HardwareConfig

# Accesses of each operand buffer; the partial-sum reads are 0 in SCALE-Sim's counts.
SRAM_BY_BUFFER = {
    "ifmap": ("sram_ifmap_reads",),
    "filter": ("sram_filter_reads",),
    "ofmap": ("sram_ofmap_writes", "sram_ofmap_reads"),
}
SRAM_COLUMNS = tuple(c for cols in SRAM_BY_BUFFER.values() for c in cols)
DRAM_COLUMNS = ("dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes", "dram_ofmap_reads")
ENERGY_COLUMNS = ("energy_dram_pj", "energy_sram_pj", "energy_rf_pj", "energy_mac_pj")

# Per MAC a PE reads its ifmap operand, its weight and the partial sum, and writes the partial sum
# back: 3 reads + 1 write (Eyeriss's accounting, Chen et al. ISCA 2016, Sec. III).
RF_PER_MAC = 4

RF_MODEL = (
    "rf_accesses = 4 x MACs (per MAC: ifmap, weight and psum read, psum write; Eyeriss ISCA 2016) "
    "+ one register access per element of the stationary operand as it is loaded or drained: "
    "os = ofmap pixels x filters (outputs drained), ws = R*S*C x filters (weights loaded), "
    "is = R*S*C x ofmap pixels (inputs loaded); per SCALE-Sim layer, so a grouped or dilated "
    "conv sums those of its groups and phases (C = channels per group)"
)


def rf_accesses(macs: int, pixels: int, window: int, filters: int, dataflow: str) -> int:
    """Register-file accesses of one SCALE-Sim layer (ofmap `pixels`, R·S·C `window`, `filters`):
    per MAC, plus one per element of the dataflow's stationary operand."""
    stationary = {"os": pixels * filters, "ws": window * filters, "is": window * pixels}
    return RF_PER_MAC * macs + stationary[dataflow]


def energy_columns(columns: Mapping[str, np.ndarray], hw: HardwareConfig) -> dict[str, np.ndarray]:
    """The Eq. 6 energy columns (pJ) and their sum `energy_pj`, per row of a table's count
    columns (SRAM and DRAM accesses, `rf_accesses`, `macs`).

    Computed on the columns' arrays, not through pandas operations: a sweep prices thousands of
    tables. Sums run left to right over the levels and buffers, as listed.
    """
    e, sram = hw.energy_pj, hw.sram_pj()
    energy = {
        "energy_dram_pj": e["dram"] * _row_sum(columns, DRAM_COLUMNS),
        "energy_sram_pj": sum(sram[buf] * _row_sum(columns, cols)
                              for buf, cols in SRAM_BY_BUFFER.items()),  # fmt: skip
        "energy_rf_pj": e["rf"] * columns["rf_accesses"],
        "energy_mac_pj": e["mac"] * columns["macs"],
    }
    return {**energy, "energy_pj": _row_sum(energy, ENERGY_COLUMNS)}


def _row_sum(columns: Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return functools.reduce(operator.add, (columns[n] for n in names))
