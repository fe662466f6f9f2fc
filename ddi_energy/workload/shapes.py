"""Layer workloads: what a conv/FC layer asks of an accelerator, in SCALE-Sim's terms.

`Layer` is what the layer walker reports for a network (PyTorch view: unpadded input, padding,
which gate controls it). `ConvShape` is the exact workload a simulator sees (SCALE-Sim view:
padded input extent, ceil output rule). Engines are keyed by `ConvShape`, so two layers of the
same shape are simulated once. `PaddedShape` adds where the real input lies in that extent, which
the physical count model needs (zero padding is never fetched).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChannelAxis = Literal["in", "out", "both"]


@dataclass(frozen=True, order=True)
class ConvShape:
    """One SCALE-Sim topology row (conv form). An FC layer is a 1×1 conv on a 1×1 input."""

    ifmap_h: int  # padded extent actually read: (ofmap_h - 1) * stride + filter_h
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int

    @property
    def ofmap_h(self) -> int:
        # SCALE-Sim's rule: ceil((H - R + s) / s).
        return -(-(self.ifmap_h - self.filter_h + self.stride) // self.stride)

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride) // self.stride)

    @property
    def ofmap_pixels(self) -> int:
        return self.ofmap_h * self.ofmap_w

    @property
    def window(self) -> int:
        """R·S·C: the length of one dot product."""
        return self.filter_h * self.filter_w * self.channels

    @property
    def macs(self) -> int:
        return self.ofmap_pixels * self.filters * self.window


@dataclass(frozen=True, order=True)
class PaddedShape(ConvShape):
    """A `ConvShape` that knows where its real input lies: `padding` zero rows and columns come
    first, then `in_h` x `in_w` input pixels; the rest of the padded extent is zeros."""

    padding: int
    in_h: int
    in_w: int

    @classmethod
    def unpadded(cls, shape: ConvShape) -> PaddedShape:
        """A shape whose whole extent is real input (no padding)."""
        fields = {k: getattr(shape, k) for k in ConvShape.__dataclass_fields__}
        return cls(**fields, padding=0, in_h=shape.ifmap_h, in_w=shape.ifmap_w)

    def real_rows(self) -> tuple[int, int]:
        """[first, stop) of the real input rows within the padded extent."""
        return self.padding, min(self.padding + self.in_h, self.ifmap_h)

    def real_cols(self) -> tuple[int, int]:
        return self.padding, min(self.padding + self.in_w, self.ifmap_w)


@dataclass(frozen=True)
class Layer:
    """A conv or FC layer of a network as PyTorch runs it, with the gates that control it.

    `layer_gate` names the gate that can skip the whole layer (a residual block or dense layer),
    `channel_gate` the gate that can switch off channels of it, and `channel_axis` which of the
    layer's channel counts that gate changes ("out": its filters; "in": its input channels;
    "both": both, by the same mask, as in the middle conv of a gated bottleneck).
    """

    name: str
    kind: Literal["conv", "fc"]
    in_h: int
    in_w: int
    padding: int
    filter_h: int
    filter_w: int
    in_channels: int
    out_channels: int
    stride: int
    layer_gate: str | None = None
    channel_gate: str | None = None
    channel_axis: ChannelAxis | None = None

    @property
    def out_h(self) -> int:
        return (self.in_h + 2 * self.padding - self.filter_h) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + 2 * self.padding - self.filter_w) // self.stride + 1

    @property
    def gated_channels(self) -> int | None:
        """Full channel count on the gated axis, or None for a layer without a channel gate."""
        if self.channel_axis in ("in", "both"):
            return self.in_channels
        if self.channel_axis == "out":
            return self.out_channels
        return None

    def shape(self, in_channels: int | None = None, out_channels: int | None = None) -> ConvShape:
        """The SCALE-Sim workload of this layer with the given active channel counts.

        The padded extent is the one that reproduces PyTorch's output size under SCALE-Sim's
        ceil rule, i.e. exactly the input pixels the convolution reads.
        """
        return ConvShape(
            ifmap_h=(self.out_h - 1) * self.stride + self.filter_h,
            ifmap_w=(self.out_w - 1) * self.stride + self.filter_w,
            filter_h=self.filter_h,
            filter_w=self.filter_w,
            channels=self.in_channels if in_channels is None else in_channels,
            filters=self.out_channels if out_channels is None else out_channels,
            stride=self.stride,
        )

    def padded_shape(
        self, in_channels: int | None = None, out_channels: int | None = None
    ) -> PaddedShape:
        """`shape()` plus this layer's padding and input size."""
        shape = self.shape(in_channels, out_channels)
        return PaddedShape(**vars(shape), padding=self.padding, in_h=self.in_h, in_w=self.in_w)

    @property
    def macs(self) -> int:
        return self.shape().macs


@dataclass(frozen=True)
class AccessCounts:
    """Per-layer counts: the first seven as SCALE-Sim's COMPUTE and DETAILED_ACCESS reports give
    them; then the partial-sum reads SCALE-Sim never counts (0 in its counts, see
    `engines/physical.py`)."""

    cycles: int  # "Total Cycles" (compute cycles, no prefetch) of COMPUTE_REPORT.csv
    sram_ifmap_reads: int
    sram_filter_reads: int
    sram_ofmap_writes: int
    dram_ifmap_reads: int
    dram_filter_reads: int
    dram_ofmap_writes: int
    sram_ofmap_reads: int = 0  # partial sums read back for accumulation
    dram_ofmap_reads: int = 0  # spilled partial sums read back from DRAM


COUNT_FIELDS: tuple[str, ...] = tuple(AccessCounts.__dataclass_fields__)
REPORT_FIELDS: tuple[str, ...] = COUNT_FIELDS[:7]  # what SCALE-Sim's reports hold
