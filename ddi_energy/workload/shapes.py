"""Layer workloads: what a conv/FC layer asks of an accelerator, in SCALE-Sim's terms.

`Layer` is what the layer walker reports for a network (PyTorch view: unpadded input, padding,
which gate controls it). `ConvShape` is the exact workload a simulator sees (SCALE-Sim view:
padded input extent, ceil output rule). Engines are keyed by `ConvShape`, so two layers of the
same shape are simulated once. `PaddedShape` adds where the real input lies in that extent, which
the physical count model needs (zero padding is never fetched).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, cast

from ddi_energy.errors import DDIError
from ddi_energy.workload.decompose import axis_phases, common_stride

ChannelAxis = Literal["in", "out", "both"]


@dataclass(frozen=True, order=True)
class ConvShape:
    """One SCALE-Sim topology row (conv form). An FC layer on T tokens is a 1×1 conv on a T×1
    input (T = 1 for one feature vector)."""

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
    first (`padding_w` columns when the axes differ), then `in_h` x `in_w` input pixels; the
    rest of the padded extent is zeros."""

    padding: int
    in_h: int
    in_w: int
    padding_w: int | None = None

    @classmethod
    def unpadded(cls, shape: ConvShape) -> PaddedShape:
        """A shape whose whole extent is real input (no padding)."""
        return cls.of(shape, (0, 0), (shape.ifmap_h, shape.ifmap_w))

    @classmethod
    def of(cls, shape: ConvShape, padding: tuple[int, int], size: tuple[int, int]
           ) -> PaddedShape:  # fmt: skip
        """`shape` with its real input at rows/columns `padding`, of `size` (h, w)."""
        fields = {k: getattr(shape, k) for k in ConvShape.__dataclass_fields__}
        top, left = padding
        return cls(**fields, padding=top, in_h=size[0], in_w=size[1],
                   padding_w=None if left == top else left)  # fmt: skip

    def real_rows(self) -> tuple[int, int]:
        """[first, stop) of the real input rows within the padded extent."""
        return self.padding, min(self.padding + self.in_h, self.ifmap_h)

    def real_cols(self) -> tuple[int, int]:
        left = self.padding if self.padding_w is None else self.padding_w
        return left, min(left + self.in_w, self.ifmap_w)


@dataclass(frozen=True)
class Layer:
    """A conv or FC layer of a network as PyTorch runs it, with the gates that control it.

    `layer_gate` names the gate that can skip the whole layer (a residual block or dense layer),
    `channel_gate` the gate that can switch off channels of it, and `channel_axis` which of the
    layer's channel counts that gate changes ("out": its filters; "in": its input channels;
    "both": both, by the same mask, as in the middle conv of a gated bottleneck).

    `padding`, `stride` and `dilation` are the height values and, unless the `_w` field says
    otherwise, the width values too. An FC layer on T tokens is a 1×1 conv on a T×1 input.
    A grouped or dilated conv runs as several SCALE-Sim layers (`sim_layers`).
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
    groups: int = 1
    dilation: int = 1
    padding_w: int | None = None
    stride_w: int | None = None
    dilation_w: int | None = None

    @property
    def padding_hw(self) -> tuple[int, int]:
        return self.padding, self.padding if self.padding_w is None else self.padding_w

    @property
    def stride_hw(self) -> tuple[int, int]:
        return self.stride, self.stride if self.stride_w is None else self.stride_w

    @property
    def dilation_hw(self) -> tuple[int, int]:
        return self.dilation, self.dilation if self.dilation_w is None else self.dilation_w

    @property
    def out_h(self) -> int:
        d, p, s = self.dilation_hw[0], self.padding_hw[0], self.stride_hw[0]
        return (self.in_h + 2 * p - d * (self.filter_h - 1) - 1) // s + 1

    @property
    def out_w(self) -> int:
        d, p, s = self.dilation_hw[1], self.padding_hw[1], self.stride_hw[1]
        return (self.in_w + 2 * p - d * (self.filter_w - 1) - 1) // s + 1

    @property
    def extent_hw(self) -> tuple[int, int]:
        """The padded input extent the layer reads: (out - 1)·stride + dilation·(kernel - 1) + 1.

        For a dense layer this is SCALE-Sim's ifmap size: under its ceil output rule it gives
        PyTorch's output size, i.e. exactly the input pixels the convolution reads.
        """
        (sh, sw), (dh, dw) = self.stride_hw, self.dilation_hw
        return ((self.out_h - 1) * sh + dh * (self.filter_h - 1) + 1,
                (self.out_w - 1) * sw + dw * (self.filter_w - 1) + 1)  # fmt: skip

    @property
    def gated_channels(self) -> int | None:
        """Full channel count on the gated axis, or None for a layer without a channel gate."""
        if self.channel_axis in ("in", "both"):
            return self.in_channels
        if self.channel_axis == "out":
            return self.out_channels
        return None

    def _group_shapes(self, in_channels: int | None, out_channels: int | None,
                      padded: bool = False) -> list[tuple[str, ConvShape]]:  # fmt: skip
        """(suffix, shape) of the dense phases one group runs (see `decompose`); `padded`: as
        `PaddedShape`s, each phase with the real input of its sub-grid."""
        c = self.in_channels if in_channels is None else in_channels
        k = self.out_channels if out_channels is None else out_channels
        if self.groups > 1 and (c, k) != (self.in_channels, self.out_channels):
            raise DDIError(f"layer {self.name}: a grouped conv (groups={self.groups}) cannot run "
                           f"at other channel counts ({c}->{k})")  # fmt: skip
        (sh, sw), (dh, dw), (ph, pw) = self.stride_hw, self.dilation_hw, self.padding_hw
        rows = axis_phases(self.out_h, self.filter_h, sh, dh)
        cols = axis_phases(self.out_w, self.filter_w, sw, dw)
        many = len(rows) * len(cols) > 1
        shapes = []
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                stride = common_stride(row, col)
                if stride is None:
                    raise DDIError(
                        f"layer {self.name}: stride {sh}x{sw} (dilation {dh}x{dw}) not supported: "
                        "a SCALE-Sim layer has one stride for both axes")  # fmt: skip
                shape = ConvShape(row.extent, col.extent, self.filter_h, self.filter_w,
                                  c // self.groups, k // self.groups, stride)  # fmt: skip
                if padded:
                    (top, h), (left, w) = row.real(ph, self.in_h), col.real(pw, self.in_w)
                    shape = PaddedShape.of(shape, (top, left), (h, w))
                shapes.append((f"_ph{i}x{j}" if many else "", shape))
        return shapes

    def sim_layers(self, in_channels: int | None = None, out_channels: int | None = None
                   ) -> list[tuple[str, ConvShape]]:  # fmt: skip
        """The SCALE-Sim layers this layer runs as, in order, with a name suffix each.

        A dense layer is one layer (suffix ""). A grouped conv runs its groups one after another
        (C/g -> K/g each, suffix `_g<i>`); a dilated conv runs its dense phases (`_ph<i>x<j>`).
        Raises `DDIError` naming the layer for what one SCALE-Sim stride cannot express.
        """
        phases = self._group_shapes(in_channels, out_channels)
        if self.groups == 1:
            return phases
        return [(f"_g{g}{suffix}", shape) for g in range(self.groups) for suffix, shape in phases]

    def parts(self, in_channels: int | None = None, out_channels: int | None = None,
              padded: bool = False) -> tuple[tuple[ConvShape, int], ...]:  # fmt: skip
        """The distinct shapes of `sim_layers` with how often each runs (groups not unrolled);
        `padded`: as `PaddedShape`s (what the physical count model needs)."""
        shapes = self._group_shapes(in_channels, out_channels, padded)
        counts = Counter(shape for _, shape in shapes)
        return tuple((shape, n * self.groups) for shape, n in counts.items())

    def _single(self, parts: tuple[tuple[ConvShape, int], ...]) -> ConvShape:
        if len(parts) != 1 or parts[0][1] != 1:
            raise DDIError(f"layer {self.name} runs as {sum(n for _, n in parts)} SCALE-Sim "
                           "layers (grouped or dilated); use Layer.parts()")  # fmt: skip
        return parts[0][0]

    def shape(self, in_channels: int | None = None, out_channels: int | None = None) -> ConvShape:
        """The SCALE-Sim workload of a dense layer with the given active channel counts.

        The padded extent is the one that reproduces PyTorch's output size under SCALE-Sim's
        ceil rule, i.e. exactly the input pixels the convolution reads. A grouped or dilated
        layer is several SCALE-Sim layers: use `parts`.
        """
        return self._single(self.parts(in_channels, out_channels))

    def padded_shape(
        self, in_channels: int | None = None, out_channels: int | None = None
    ) -> PaddedShape:
        """`shape()` plus this layer's padding and input size."""
        return cast(PaddedShape, self._single(self.parts(in_channels, out_channels, True)))

    @property
    def macs(self) -> int:
        return sum(n * shape.macs for shape, n in self.parts())


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
