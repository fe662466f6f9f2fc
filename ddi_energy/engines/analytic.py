"""Exact analytic engine: SCALE-Sim 3.0.0 CALC-mode per-layer counts without its memory loop.

SCALE-Sim spends ~95 % of its time in `double_buffered_scratchpad.service_memory_requests`, a
per-cycle Python loop over the demand matrices. Everything it reports is reproduced here:

- cycles and SRAM counts are closed forms of the fold structure the `compute/systolic_compute_*`
  modules build (upstream artefacts included: the OS ofmap double count, WS/IS partial sums);
- DRAM ifmap/filter reads follow `memory/read_buffer_estimate_bw.py` (`read_buffer`): the
  footprint while it stays below one epoch of the buffer; else a closed form when every
  demand of a stream copy is a distinct address (filters always; ifmaps whose windows do not
  overlap), else a vectorized replay of the ifmap demand (`ifmap_demand`), by runs of
  channels (OS) or demand by demand, with each demand's previous one in closed form;
- DRAM ofmap writes follow `memory/write_buffer.py` (`write_buffer`) drain by drain; they
  depend on the number of words written alone, and its stalls never occur in CALC mode.

Only the addresses' identity matters, never their values, so SCALE-Sim's address offsets are
dropped. Nothing is sorted or tiled per demand: a layer costs tens of microseconds when closed
forms cover it, and at most a few vector passes over one copy of its ifmap demand otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from tqdm import tqdm

from ddi_energy.engines.ifmap_demand import Region, os_runs, previous_demands, windows_overlap
from ddi_energy.engines.read_buffer import (
    distinct_reads,
    epoch_words,
    replay_previous,
    replay_runs,
)
from ddi_energy.engines.write_buffer import dram_writes
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import AccessCounts, ConvShape

# --------------------------------------------------------------------------- fold geometry


def _folds(total: int, size: int) -> int:
    """Array-sized folds needed for `total` items."""
    return -(-total // size)


def _fold_sizes(total: int, size: int) -> np.ndarray:
    """Used rows/cols of each fold when `total` items are cut into array-sized folds."""
    n = _folds(total, size)
    sizes = np.full(n, size, dtype=np.int64)
    sizes[-1] = total - size * (n - 1)
    return sizes


def _check_shape(shape: ConvShape) -> None:
    """Reject shapes SCALE-Sim cannot run (it crashes or builds empty operand matrices)."""
    fields = (
        shape.ifmap_h,
        shape.ifmap_w,
        shape.filter_h,
        shape.filter_w,
        shape.channels,
        shape.filters,
        shape.stride,
    )
    if min(fields) < 1:
        raise ValueError(f"every dimension of {shape} must be >= 1")
    if shape.filter_h > shape.ifmap_h or shape.filter_w > shape.ifmap_w:
        raise ValueError(
            f"filter {shape.filter_h}x{shape.filter_w} larger than the ifmap "
            f"{shape.ifmap_h}x{shape.ifmap_w}"
        )


# --------------------------------------------------------------------------- read buffers


def _touched(out: int, filt: int, extent: int, stride: int) -> int:
    """Positions < extent that windows o*stride + [0, filt), o < out, cover."""
    if filt >= stride:  # windows overlap or abut: one interval
        return min(extent, (out - 1) * stride + filt)
    full = min(out, (extent - filt) // stride + 1)  # disjoint windows inside the extent
    return full * filt + (max(0, extent - full * stride) if full < out else 0)


def _ifmap_footprint(shape: ConvShape) -> int:
    """Distinct ifmap addresses any window touches (a strided 1x1 conv skips pixels)."""
    rows = _touched(shape.ofmap_h, shape.filter_h, shape.ifmap_h, shape.stride)
    cols = _touched(shape.ofmap_w, shape.filter_w, shape.ifmap_w, shape.stride)
    return rows * cols * shape.channels


def _runs_pay(channels: int, copies: int, epoch: int) -> bool:
    """Whether replaying the OS ifmap by runs (C demands each) beats replaying it demand by
    demand. Per demand of the stream, on this kind of machine: a chunk costs ~80 us / epoch
    and a run ~150 ns / C, against ~30 ns / copies to build the demands and ~3 ns to scan
    them (benchmarks/bench_analytic_engine.py: ImageNet shapes from 3 to 512 channels)."""
    return 80_000 / epoch + 150 / channels < 30 / copies + 3


def _dram_ifmap_reads(
    shape: ConvShape, hw: HardwareConfig, footprint: int, real: Region | None = None
) -> int:
    """DRAM ifmap reads of the demands of addresses in the ifmap rows and columns `real` (all
    if None; the physical model drops zero padding), whose `footprint` distinct addresses the
    windows touch. The footprint while it never fills an epoch (0: sets never fill, nothing
    is ever forgotten); else each copy of the stream (one per column fold; IS reads once) is
    either all distinct addresses or replayed: OS by runs of channels, else demand by demand."""
    epoch = epoch_words(hw.scalesim_kb()[0])
    if epoch == 0 or footprint < epoch:
        return footprint
    copies = 1 if hw.dataflow == "is" else _folds(shape.filters, hw.cols)
    if not windows_overlap(shape):
        return distinct_reads([(footprint, copies)], epoch)
    if hw.dataflow == "os" and _runs_pay(shape.channels, copies, epoch):
        return replay_runs(os_runs(shape, hw.rows, hw.cols, real), epoch)
    return replay_previous(*previous_demands(shape, hw.dataflow, hw.rows, hw.cols, real), epoch)


def _dram_filter_reads(shape: ConvShape, hw: HardwareConfig) -> int:
    """Every filter demand stream is tiled from all-distinct bases (a weight k*T + t appears
    once per fold): OS repeats column fold fc's T x cols block once per row fold; WS demands
    each weight once; IS repeats all T x K weights once per column (pixel) fold."""
    t, k, epoch = shape.window, shape.filters, epoch_words(hw.scalesim_kb()[1])
    if epoch == 0 or t * k < epoch or hw.dataflow == "ws":
        return t * k
    if hw.dataflow == "os":
        row_folds = _folds(shape.ofmap_pixels, hw.rows)
        segments = [(t * cu, row_folds) for cu in _fold_sizes(k, hw.cols).tolist()]
        return distinct_reads(segments, epoch)
    return distinct_reads([(t * k, _folds(shape.ofmap_pixels, hw.cols))], epoch)


# --------------------------------------------------------------------------- per dataflow


def _sram_counts(shape: ConvShape, hw: HardwareConfig) -> tuple[int, int, int, int]:
    """(demand rows, SRAM ifmap reads, filter reads, ofmap writes) of systolic_compute_*.

    Reads count every slot of each fold's operand block, ofmap writes too; OS also adds
    rows + cols per fold (create_ofmap_demand_mat adds the padded block's shape: upstream
    issue #166); WS and IS write every row fold's partial sums.
    """
    r, c, t, k, npix = hw.rows, hw.cols, shape.window, shape.filters, shape.ofmap_pixels
    if hw.dataflow == "os":
        rf, cf = _folds(npix, r), _folds(k, c)
        return rf * cf * (t + r + c - 2), cf * npix * t, rf * t * k, npix * k + rf * cf * (r + c)
    if hw.dataflow == "ws":
        rf, cf = _folds(t, r), _folds(k, c)
        return rf * cf * (2 * r + c + npix - 2), cf * npix * t, t * k, rf * npix * k
    rf, cf = _folds(t, r), _folds(npix, c)
    return rf * cf * (2 * r + c + k - 2), t * npix, cf * t * k, rf * npix * k


def analytic_counts(shape: ConvShape, hw: HardwareConfig) -> AccessCounts:
    """SCALE-Sim 3.0.0 CALC-mode counts of one layer, exactly (see module docstring)."""
    _check_shape(shape)
    if hw.dataflow not in ("os", "ws", "is"):
        raise ValueError(f"dataflow {hw.dataflow!r} must be os, ws or is")
    nrows, sram_ifmap, sram_filter, sram_ofmap = _sram_counts(shape, hw)
    # Words actually written: SRAM writes without the OS double count.
    words = shape.ofmap_pixels * shape.filters if hw.dataflow == "os" else sram_ofmap
    return AccessCounts(
        cycles=nrows - 1,
        sram_ifmap_reads=sram_ifmap,
        sram_filter_reads=sram_filter,
        sram_ofmap_writes=sram_ofmap,
        dram_ifmap_reads=_dram_ifmap_reads(shape, hw, _ifmap_footprint(shape)),
        dram_filter_reads=_dram_filter_reads(shape, hw),
        dram_ofmap_writes=dram_writes(words, hw.scalesim_kb()[2], hw.cols),
    )


class AnalyticEngine:
    """Engine protocol over `analytic_counts`: milliseconds per layer, no subprocesses."""

    name = "analytic"
    model = "scalesim"
    count = staticmethod(analytic_counts)

    def counts(
        self,
        shapes: Iterable[ConvShape],
        hw: HardwareConfig,
        *,
        jobs: int = 1,
        progress: bool = True,
        names: Mapping[ConvShape, str] | None = None,
    ) -> dict[ConvShape, AccessCounts]:
        """Counts for the unique shapes; `jobs` is ignored (a sweep takes seconds)."""
        unique = list(dict.fromkeys(shapes))
        bar = tqdm(unique, desc=self.name, unit="layer", disable=not progress, delay=2.0)
        out: dict[ConvShape, AccessCounts] = {}
        for shape in bar:
            try:
                out[shape] = self.count(shape, hw)
            except ValueError as exc:
                name = (names or {}).get(shape, str(shape))
                raise DDIError(f"layer {name}: {exc}") from None
        return out
