"""Price single layers of a dynamic network at given channel counts.

FLOPs (2 × MACs of conv and FC layers, what `FlopCounterMode` counts) always; with a cost table
also Eq. 6 energy by memory level and cycles. Backbone layers are read from the table at their
active channel counts (the table must be for this arch, with exactly these shapes and every
channel count). Gate and exit layers are not in a backbone table: they are priced on the table's
own hardware config under its own count model (SCALE-Sim's counts from the analytic engine, or
the physical model), so overheads and backbone share one hardware model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from ddi_energy.engines.registry import count_engine
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import from_dict
from ddi_energy.hardware.energy import ENERGY_COLUMNS
from ddi_energy.models.dynamic import CostStructure
from ddi_energy.tables.build import build_table
from ddi_energy.tables.rows import row_specs
from ddi_energy.workload.shapes import Layer

TABLE_METRICS = ("flops", "energy_pj", *ENERGY_COLUMNS, "cycles")


class Pricer:
    """Cost vectors of single layers at given channel counts: from FLOPs, a table or the engine."""

    def __init__(self, structure: CostStructure, table: pd.DataFrame | None) -> None:
        self.table = table
        self.metrics = TABLE_METRICS if table is not None else ("flops",)
        self.where = f"cost table {table.attrs.get('path', '(in memory)')}" if table is not None \
            else ""
        self._rows: dict[tuple[str, int, int], int] = {}
        self._overhead: dict[str, Tensor] = {}
        if table is not None:
            meta = table.attrs.get("meta") or {}
            if meta.get("arch") not in (None, structure.arch):
                raise DDIError(f"{self.where}: built for arch {meta['arch']!r}, but the model is "
                               f"{structure.arch!r}")  # fmt: skip
            keys = zip(table["layer"], table["in_channels"], table["out_channels"], strict=True)
            self._rows = {(str(n), int(i), int(o)): r for r, (n, i, o) in enumerate(keys)}
            self._values = torch.tensor(
                table.assign(flops=2 * table["macs"])[list(self.metrics)].to_numpy(float),
                dtype=torch.float64,
            )
            self._meta = meta

    def backbone(self, layer: Layer, in_channels: int | None = None,
                 out_channels: int | None = None) -> Tensor:  # fmt: skip
        """A backbone layer at the given active channel counts (full by default)."""
        shape = layer.shape(in_channels, out_channels)
        if self.table is None:
            return torch.tensor([2.0 * shape.macs], dtype=torch.float64)
        key = (layer.name, shape.channels, shape.filters)
        row = self._rows.get(key)
        if row is None:
            full = layer.in_channels, layer.out_channels
            hint = "" if (shape.channels, shape.filters) == full else (
                " (a layer-granularity table? profile with --granularity channel)")
            raise DDIError(f"{self.where}: no row for layer {layer.name!r} with in_channels="
                           f"{shape.channels}, out_channels={shape.filters}{hint}")
        self._check_shape(layer, row)
        return self._values[row]

    def _check_shape(self, layer: Layer, row: int) -> None:
        shape = layer.shape()
        record = self.table.iloc[row]
        expected = {"full_in_channels": layer.in_channels, "full_out_channels": layer.out_channels,
                    "ifmap_h": shape.ifmap_h, "ifmap_w": shape.ifmap_w,
                    "filter_h": shape.filter_h, "filter_w": shape.filter_w,
                    "stride": shape.stride}  # fmt: skip
        for column, value in expected.items():
            if int(record[column]) != value:
                raise DDIError(f"{self.where}: layer {layer.name!r} has {column}="
                               f"{int(record[column])} but the model's layer has {value}")

    def overhead(self, layers: Sequence[Layer]) -> Tensor:
        """Summed cost of gate/exit layers (priced on the table's hardware if there is one)."""
        total = torch.zeros(len(self.metrics), dtype=torch.float64)
        missing = [ly for ly in layers if ly.name not in self._overhead]
        if missing:
            self._price_overhead(missing)
        for ly in layers:
            total += self._overhead[ly.name]
        return total

    def _price_overhead(self, layers: Sequence[Layer]) -> None:
        if self.table is None:
            for ly in layers:
                self._overhead[ly.name] = torch.tensor([2.0 * ly.macs], dtype=torch.float64)
            return
        if "hw" not in self._meta:
            raise DDIError(f"{self.where}: no hardware config in its .json metadata; it is needed "
                           "to price the gate and exit layers")  # fmt: skip
        hw = from_dict(self._meta["hw"], f"{self.where} metadata")
        engine = count_engine(self._meta.get("counts", "scalesim"))
        priced = build_table(row_specs(layers, "layer"), hw, engine, progress=False)
        values = priced.assign(flops=2 * priced["macs"])[list(self.metrics)].to_numpy(float)
        for ly, v in zip(layers, values, strict=True):
            self._overhead[ly.name] = torch.tensor(v, dtype=torch.float64)
