"""Dilated convolution as the dense convolutions it is made of, one image axis at a time.

SCALE-Sim's topology has no dilation field. A dilated conv is run the way TensorFlow's
`atrous_conv2d` runs it (space-to-batch): the outputs are split into phases that each read a
sub-grid of the input with step d, and on that sub-grid every phase is an ordinary dense conv.

On one axis, with n outputs, kernel k, stride s and dilation d, output o reads inputs o·s + d·j
(j < k). Let g = gcd(s, d) and P = d / g. The outputs o = P·m + r of phase r (0 <= r < P) read

    o·s + d·j = r·s + d·(m·s/g + j),

a dense conv with stride s/g and kernel k on the sub-grid r·s + d·i. Phase r has
n_r = ceil((n - r) / P) outputs and reads an extent of (n_r - 1)·s/g + k sub-grid points.
Because s/g and P are coprime, the phases' sub-grids r·s mod d are distinct: the phases touch
disjoint inputs, together exactly the ones the dilated conv reads, and sum(n_r) = n. So the
phases have the dilated conv's MACs and touch its ifmap words, each word in one phase only.
Phase r's sub-grid point i is padded-input position r·s + d·i, so the real (unpadded) input of
a phase is a contiguous run of its sub-grid (`AxisPhase.real`): what the physical count model
needs to leave the zero padding out.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd


@dataclass(frozen=True)
class AxisPhase:
    """One phase of a conv along one axis: a dense conv with these outputs and stride."""

    outputs: int
    stride: int
    extent: int  # input points the phase reads on its sub-grid: (outputs - 1) * stride + kernel
    offset: int = 0  # padded-input position of sub-grid point 0: r·s
    step: int = 1  # padded-input distance between sub-grid points: d

    def real(self, padding: int, size: int) -> tuple[int, int]:
        """(first sub-grid point on real input, how many follow) when the padded input is
        `padding` zeros, then `size` real points: those with padding <= offset + step·i <
        padding + size. The run may reach past `extent` (the reader clips it)."""
        first = max(0, -(-(padding - self.offset) // self.step))
        stop = -(-(padding + size - self.offset) // self.step)
        return first, max(0, stop - first)


def axis_phases(outputs: int, kernel: int, stride: int, dilation: int) -> tuple[AxisPhase, ...]:
    """The dense phases of a dilated conv along one axis (one phase when dilation is 1).

    A 1-tap kernel reads one point per output whatever the dilation, so it has one phase.
    Phases without outputs (n < P) are left out.
    """
    if kernel == 1:
        dilation = 1
    g = gcd(stride, dilation)
    count, step = dilation // g, stride // g
    phases = []
    for r in range(count):
        n = -(-(outputs - r) // count)
        if n > 0:
            phases.append(AxisPhase(n, step, (n - 1) * step + kernel, r * stride, dilation))
    return tuple(phases)


def common_stride(h: AxisPhase, w: AxisPhase) -> int | None:
    """The one stride a SCALE-Sim layer needs for both axes, or None if there is none.

    An axis with a single output reads one window whatever its stride (SCALE-Sim's
    ceil((k - k + s) / s) = 1), so it takes the other axis's stride.
    """
    if h.stride == w.stride or h.outputs == 1:
        return w.stride
    if w.outputs == 1:
        return h.stride
    return None
