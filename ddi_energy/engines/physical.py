"""Physical counts: the mapping the SCALE-Sim replica simulates, counted as hardware spends it.

The array, dataflow, folds, cycles, operand streams and double-buffered read buffers are those
of `analytic.py` (SCALE-Sim 3.0.0, CALC mode): a real accelerator with that mapping streams the
same operands from the same buffers. Where SCALE-Sim's counts are not what hardware does, the
counts change. With Np ofmap pixels, K filters, T = R*S*C, an Ra x Ca array, B the ofmap
buffer in words and rf = ceil(T/Ra) row folds for ws and is:

1. OS outputs are written once: sram_ofmap_writes = Np*K. SCALE-Sim adds rf*cf*(Ra+Ca) more
   (rf = ceil(Np/Ra), cf = ceil(K/Ca); its open issue #166).
2. WS/IS partial sums accumulate in the ofmap buffer (read-modify-write), as in real designs
   (TPU v1's accumulators). Every row fold writes its partial sums into the buffer; every fold
   after the first first reads the running sums back:
       sram_ofmap_writes = rf*Np*K        sram_ofmap_reads = (rf-1)*Np*K
   Column fold j (c_j used columns) accumulates a tile of S_j = Np*c_j (ws) or K*c_j (is) words
   over its rf row folds. Half the ofmap buffer holds partial sums; the other half drains the
   previous tile's outputs (SCALE-Sim's double buffering, kept). A tile larger than B/2 keeps
   B/2 words on chip and spills the rest to DRAM after every fold but the last, reading it back
   before the next fold adds to it:
       spill = sum_j max(0, S_j - floor(B/2))
       dram_ofmap_writes = Np*K + (rf-1)*spill        dram_ofmap_reads = (rf-1)*spill
   SCALE-Sim instead writes every fold's partial sums to DRAM and never reads them:
   dram_ofmap_writes >= sram_ofmap_writes = rf*Np*K.
3. Zero padding is made at the array edge: never fetched, stored or read. sram_ifmap_reads
   counts the (output pixel, window tap) pairs that land on the real input, once per pass over
   the ifmap (ceil(K/Ca) passes for os and ws, one for is); dram_ifmap_reads replays SCALE-Sim's
   read buffer on the demand stream without the padding addresses, so it is at least the
   compulsory footprint: the distinct real input words the windows touch (a stride-2 1x1 conv
   touches a quarter of its input).
4. Nothing else changes: cycles are SCALE-Sim's compute cycles, sram_filter_reads and
   dram_filter_reads the replica's (its filter read buffer re-fetches weights only when a fold's
   working set outgrows half the buffer, which a double-buffered prefetching buffer does).

DRAM fills and drains are charged once, at the DRAM level, as in the replica's tables.
"""

from __future__ import annotations

import numpy as np

from ddi_energy.engines.analytic import (
    AnalyticEngine,
    _check_shape,
    _dram_filter_reads,
    _dram_ifmap_reads,
    _fold_sizes,
    _sram_counts,
)
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import AccessCounts, ConvShape, PaddedShape


def _axis(out: int, filt: int, stride: int, real: tuple[int, int]) -> tuple[int, int]:
    """Along one axis: (distinct real positions any window touches, (output, tap) pairs that
    land on a real position)."""
    pos = np.arange(out)[:, None] * stride + np.arange(filt)[None, :]
    hit = (pos >= real[0]) & (pos < real[1])
    return int(np.unique(pos[hit]).size), int(hit.sum())


def _ofmap_traffic(shape: ConvShape, hw: HardwareConfig) -> tuple[int, int, int, int]:
    """(sram_ofmap_writes, sram_ofmap_reads, dram_ofmap_writes, dram_ofmap_reads): items 1-2 of
    the module docstring."""
    outputs = shape.ofmap_pixels * shape.filters
    if hw.dataflow == "os":
        return outputs, 0, outputs, 0
    row_folds = -(-shape.window // hw.rows)
    inner, outer = (
        (shape.ofmap_pixels, shape.filters) if hw.dataflow == "ws"
        else (shape.filters, shape.ofmap_pixels)
    )  # fmt: skip
    tiles = inner * _fold_sizes(outer, hw.cols)
    held = 1024 * hw.scalesim_kb()[2] // 2
    spill = int(np.maximum(tiles - held, 0).sum())
    extra = (row_folds - 1) * spill
    return row_folds * outputs, (row_folds - 1) * outputs, outputs + extra, extra


def physical_counts(shape: ConvShape, hw: HardwareConfig) -> AccessCounts:
    """Counts of one layer under the physical model (module docstring); a plain `ConvShape` is
    taken as unpadded."""
    _check_shape(shape)
    if not isinstance(shape, PaddedShape):
        shape = PaddedShape.unpadded(shape)
    demand_rows, _, sram_filter, _ = _sram_counts(shape, hw)
    touched_h, pairs_h = _axis(shape.ofmap_h, shape.filter_h, shape.stride, shape.real_rows())
    touched_w, pairs_w = _axis(shape.ofmap_w, shape.filter_w, shape.stride, shape.real_cols())
    passes = 1 if hw.dataflow == "is" else -(-shape.filters // hw.cols)
    dram_ifmap = _dram_ifmap_reads(
        shape, hw, touched_h * touched_w * shape.channels, (shape.real_rows(), shape.real_cols())
    )
    sram_ofmap_w, sram_ofmap_r, dram_ofmap_w, dram_ofmap_r = _ofmap_traffic(shape, hw)
    return AccessCounts(
        cycles=demand_rows - 1,
        sram_ifmap_reads=passes * pairs_h * pairs_w * shape.channels,
        sram_filter_reads=sram_filter,
        sram_ofmap_writes=sram_ofmap_w,
        dram_ifmap_reads=dram_ifmap,
        dram_filter_reads=_dram_filter_reads(shape, hw),
        dram_ofmap_writes=dram_ofmap_w,
        sram_ofmap_reads=sram_ofmap_r,
        dram_ofmap_reads=dram_ofmap_r,
    )


class PhysicalEngine(AnalyticEngine):
    """Engine protocol over `physical_counts`; give it `PaddedShape`s to exclude padding."""

    name = "physical"
    model = "physical"
    count = staticmethod(physical_counts)
