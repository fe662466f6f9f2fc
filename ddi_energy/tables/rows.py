"""The rows of a cost table: one per (layer, active channel count).

For a channel-gated layer, the rows sweep the count on the axis its gate changes (1..k; on both
axes together for a layer whose inputs and outputs one mask gates); the row with every channel
active is the full layer (`is_full`). Ungated layers have their full row only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ddi_energy.workload.shapes import ConvShape, Layer, PaddedShape

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
        return self.layer.shape(self.in_channels, self.out_channels)

    @property
    def padded_shape(self) -> PaddedShape:
        """`shape` with the layer's padding (what the physical count model needs)."""
        return self.layer.padded_shape(self.in_channels, self.out_channels)

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
