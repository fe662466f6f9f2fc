"""A table in two halves: its rows laid out once (everything no hardware changes, and the
de-duplicated SCALE-Sim layers the engine must count), then filled with one config's counts and
Eq. 6.

A sweep lays the rows out once and fills them per design point; `build_table` does both for a
single config, so a sweep's tables are the profiler's tables, value for value. A row's counts,
MACs and RF accesses are the sums over its SCALE-Sim layers (one for a dense layer; every group
and dilation phase of a grouped or dilated conv). This module needs no torch, so sweep worker
processes start quickly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.hardware.energy import energy_columns, rf_accesses
from ddi_energy.tables.columns import TABLE_COLUMNS
from ddi_energy.tables.rows import RowSpec, shape_names
from ddi_energy.workload.shapes import COUNT_FIELDS, AccessCounts, ConvShape


@dataclass(frozen=True)
class TableLayout:
    """The rows of a table without hardware. `fixed`: every column no config changes, as
    arrays; `shapes`: the distinct SCALE-Sim layers (first appearance first) with `names`, a
    layer name each for engine error messages, and `shape_terms`, the (macs, ofmap pixels,
    R·S·C, filters) of each that the RF model needs; `part_row`, `part_shape`, `part_runs`: per
    (row, part), its row, its index into `shapes` and how often it runs."""

    fixed: dict[str, np.ndarray]
    shapes: tuple[ConvShape, ...]
    names: dict[ConvShape, str]
    shape_terms: np.ndarray
    part_row: np.ndarray
    part_shape: np.ndarray
    part_runs: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.fixed["layer"])


def _hw(h: int, w: int) -> int | str:
    """A per-axis value as a table cell: one int when both axes agree, else "HxW"."""
    return h if h == w else f"{h}x{w}"


def table_layout(specs: Sequence[RowSpec], model: str) -> TableLayout:
    """Lay out `specs` for an engine of count model `model` (physical: padded shapes)."""
    names = shape_names(specs, model)
    position = {shape: i for i, shape in enumerate(names)}
    records, parts_of = [], []
    for row, spec in enumerate(specs):
        layer, parts = spec.layer, spec.parts_for(model)
        parts_of += [(row, position[shape], runs) for shape, runs in parts]
        extent_h, extent_w = layer.extent_hw
        records.append({
            "layer": layer.name,
            "in_channels": spec.in_channels,
            "out_channels": spec.out_channels,
            "full_in_channels": layer.in_channels,
            "full_out_channels": layer.out_channels,
            "ifmap_h": extent_h,
            "ifmap_w": extent_w,
            "filter_h": layer.filter_h,
            "filter_w": layer.filter_w,
            "stride": _hw(*layer.stride_hw),
            "macs": sum(n * s.macs for s, n in parts),
            "layer_index": spec.index,
            "kind": layer.kind,
            "is_full": spec.is_full,
            "layer_gate": layer.layer_gate or "",
            "channel_gate": layer.channel_gate or "",
            "channel_axis": layer.channel_axis or "",
            "ofmap_h": layer.out_h,
            "ofmap_w": layer.out_w,
            "padding": _hw(*layer.padding_hw),
            "groups": layer.groups,
            "dilation": _hw(*layer.dilation_hw),
            "sim_layers": sum(n for _, n in parts),
        })  # fmt: skip
    fixed = pd.DataFrame.from_records(records)  # the dtypes a table's columns have
    terms = np.array([(s.macs, s.ofmap_pixels, s.window, s.filters) for s in names],
                     dtype=np.int64).reshape(len(names), 4)  # fmt: skip
    part_row, part_shape, part_runs = np.array(parts_of, dtype=np.int64).reshape(-1, 3).T
    return TableLayout({c: fixed[c].to_numpy() for c in fixed.columns}, tuple(names), names,
                       terms, part_row, part_shape, part_runs)  # fmt: skip


def fill_table(layout: TableLayout, counts: Mapping[ConvShape, AccessCounts],
               hw: HardwareConfig) -> pd.DataFrame:  # fmt: skip
    """The Eq. 6 table of `layout` on `hw`, from the engine's counts of `layout.shapes`."""
    per_shape = np.array([[getattr(counts[s], f) for f in COUNT_FIELDS] for s in layout.shapes],
                         dtype=np.int64).reshape(len(layout.shapes), len(COUNT_FIELDS))
    rf = rf_accesses(*layout.shape_terms.T, hw.dataflow)
    per_shape = np.column_stack([per_shape, rf])
    per_row = np.zeros((layout.rows, per_shape.shape[1]), dtype=np.int64)
    np.add.at(per_row, layout.part_row, layout.part_runs[:, None] * per_shape[layout.part_shape])
    columns = {**layout.fixed,
               **{f: per_row[:, j] for j, f in enumerate((*COUNT_FIELDS, "rf_accesses"))}}
    columns.update(energy_columns(columns, hw))
    return pd.DataFrame({c: columns[c] for c in TABLE_COLUMNS})
