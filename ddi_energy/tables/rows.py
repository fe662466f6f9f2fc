"""The rows of a cost table: one per (layer, active channel count).

For a channel-gated layer, the rows sweep the count on the axis its gate changes (1..k; on both
axes together for a layer whose inputs and outputs one mask gates); the row with every channel
active is the full layer (`is_full`). Ungated layers have their full row only.
A row is one SCALE-Sim layer, or several for a grouped or dilated conv (`RowSpec.parts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from ddi_energy.workload.shapes import ConvShape, Layer

Granularity = Literal["channel", "layer"]


@dataclass(frozen=True)
class RowSpec:
    """One table row: a layer with the given active input and output channel counts."""

    index: int
    layer: Layer
    in_channels: int
    out_channels: int

    @property
    def shape(self) -> ConvShape:
        """The SCALE-Sim layer of a dense row (a grouped or dilated row has `parts`)."""
        return self.layer.shape(self.in_channels, self.out_channels)

    @cached_property
    def parts(self) -> tuple[tuple[ConvShape, int], ...]:
        """Distinct SCALE-Sim layers of this row and how often each runs (computed once: the
        engines' work list and the table both read it)."""
        return self.layer.parts(self.in_channels, self.out_channels)

    @cached_property
    def padded_parts(self) -> tuple[tuple[ConvShape, int], ...]:
        """`parts` as `PaddedShape`s: where each part's real input lies (the physical count
        model leaves zero padding out)."""
        return self.layer.parts(self.in_channels, self.out_channels, padded=True)

    def parts_for(self, counts: str) -> tuple[tuple[ConvShape, int], ...]:
        """The parts an engine of count model `counts` is keyed by."""
        return self.padded_parts if counts == "physical" else self.parts

    def sim_layers(self) -> list[tuple[str, ConvShape]]:
        """The SCALE-Sim topology rows of this row, named, in order (groups unrolled)."""
        return [(self.name + suffix, shape)
                for suffix, shape in self.layer.sim_layers(self.in_channels, self.out_channels)]

    @property
    def is_full(self) -> bool:
        return (self.in_channels, self.out_channels) == (
            self.layer.in_channels,
            self.layer.out_channels,
        )

    @property
    def name(self) -> str:
        """Unique row name, used in emitted SCALE-Sim topologies."""
        return f"{self.layer.name}_in{self.in_channels}_out{self.out_channels}"


def row_specs(layers: Sequence[Layer], granularity: Granularity) -> list[RowSpec]:
    """The rows of a table: every active channel count of gated layers, or full layers only."""
    specs = []
    for index, layer in enumerate(layers):
        if granularity == "channel" and layer.channel_axis is not None:
            for k in range(1, layer.gated_channels + 1):
                if layer.channel_axis == "in":
                    specs.append(RowSpec(index, layer, k, layer.out_channels))
                elif layer.channel_axis == "both":
                    specs.append(RowSpec(index, layer, k, k))
                else:
                    specs.append(RowSpec(index, layer, layer.in_channels, k))
        else:
            specs.append(RowSpec(index, layer, layer.in_channels, layer.out_channels))
    return specs


def shape_names(specs: Sequence[RowSpec], counts: str = "scalesim") -> dict[ConvShape, str]:
    """Every distinct SCALE-Sim layer of `specs` (padded for physical `counts`), named after the
    first row that runs it (the engines' work list: each shape is counted once)."""
    names: dict[ConvShape, str] = {}
    for spec in specs:
        for shape, _ in spec.parts_for(counts):
            names.setdefault(shape, spec.name)
    return names
