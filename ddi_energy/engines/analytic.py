"""Exact analytic engine: SCALE-Sim 3.0.0 CALC-mode per-layer counts without its memory loop.

SCALE-Sim spends ~95 % of its time in `double_buffered_scratchpad.service_memory_requests`, a
per-cycle Python loop over the demand matrices. Everything it reports is reproduced here:

- cycles and SRAM counts are closed forms of the fold structure the `compute/systolic_compute_*`
  modules build (upstream artefacts included: the OS ofmap double count, WS/IS partial sums);
- DRAM ifmap/filter reads replay `memory/read_buffer_estimate_bw.py` (the CALC-mode read
  buffer) on the exact order of demanded addresses. Its model: an address not held is fetched
  (one DRAM read) and held; after every 50 * floor(1024 * kB / 100) fetches it forgets all it
  holds. So reads = footprint while the footprint is below that epoch, else a replay that jumps
  from epoch to epoch with numpy over "index of the previous use of this address";
- DRAM ofmap writes (and stalls, which never seem to occur) replay `memory/write_buffer.py`
  drain by drain on the number of writes per demand-matrix row.

Only the addresses' identity matters, never their values, so SCALE-Sim's address offsets are
dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import AccessCounts, ConvShape

# read_buffer_estimate_bw.set_params: 100 sets of floor(words / 100) addresses, of which
# int(active_buf_frac * 100) = 50 form the resident window (active_buf_frac = 0.5 in
# single_layer_sim.run).
_SETS = 100
_ACTIVE_SETS = 50


# --------------------------------------------------------------------------- fold geometry


def _fold_sizes(total: int, size: int) -> np.ndarray:
    """Used rows/cols of each fold when `total` items are cut into array-sized folds."""
    n = -(-total // size)
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


# --------------------------------------------------------------------------- addresses


def _ifmap_addr(shape: ConvShape, pixel: np.ndarray, tap: np.ndarray) -> np.ndarray:
    """Ifmap address of (ofmap pixel, window tap); -1 outside the ifmap.

    operand_matrix.calc_ifmap_elem_addr: NHWC layout, window taps ordered (row, col, channel);
    taps past the ifmap edge (ceil output rule) are -1 and never reach the read buffer.
    """
    c, s, st = shape.channels, shape.filter_w, shape.stride
    oy, ox = np.divmod(pixel, shape.ofmap_w)
    ry, rem = np.divmod(tap, s * c)
    rx, ch = np.divmod(rem, c)
    y, x = oy * st + ry, ox * st + rx
    addr = (y * shape.ifmap_w + x) * c + ch
    return np.where((y < shape.ifmap_h) & (x < shape.ifmap_w), addr, -1)


def _filter_addr(shape: ConvShape, tap: np.ndarray, k: np.ndarray) -> np.ndarray:
    """operand_matrix.calc_filter_elem_addr without the offset: filter k, tap t -> k*T + t."""
    return k * shape.window + tap


def _ifmap_footprint(shape: ConvShape) -> int:
    """Distinct ifmap addresses any window touches (a strided 1x1 conv skips pixels)."""

    def touched(out: int, filt: int, extent: int) -> int:
        pos = (np.arange(out)[:, None] * shape.stride + np.arange(filt)[None, :]).ravel()
        return int(np.unique(pos[pos < extent]).size)

    rows = touched(shape.ofmap_h, shape.filter_h, shape.ifmap_h)
    cols = touched(shape.ofmap_w, shape.filter_w, shape.ifmap_w)
    return rows * cols * shape.channels


# --------------------------------------------------------------------------- demand streams


def _skewed_order(mats: np.ndarray) -> np.ndarray:
    """Valid entries of `skew_matrix(m)` for a stack of fold matrices, in row-major order.

    systolic_compute_*.skew_matrix delays column c by c cycles, so the buffer sees entry
    (t, c) at row t + c; within a row, columns are served left to right.
    """
    folds, length, width = mats.shape
    out = np.full((folds, length + width - 1, width), -1, dtype=mats.dtype)
    rows = np.arange(length)[:, None] + np.arange(width)[None, :]
    cols = np.broadcast_to(np.arange(width), (length, width))
    out[:, rows, cols] = mats
    flat = out.ravel()
    return flat[flat >= 0]


def _pad_index(sizes: np.ndarray, size: int) -> np.ndarray:
    """Global index of slot c in fold f, or -1 for the padding slots of a partial fold."""
    slot = np.arange(size)[None, :]
    idx = np.arange(len(sizes))[:, None] * size + slot
    return np.where(slot < sizes[:, None], idx, -1)


# A demand stream is a list of segments (base, repeats): `base` tiled `repeats` times. Different
# segments never share an address, so re-use (and sorting) stays within one segment's base.
Segments = list[tuple[np.ndarray, int]]


def _os_ifmap_stream(shape: ConvShape, rows: int, cols: int) -> Segments:
    """OS ifmap demand (systolic_compute_os.create_ifmap_demand_mat).

    Row fold fr feeds pixels fr*R.. down the rows, taps in time, skewed; the whole sequence of
    row folds repeats once per column fold.
    """
    pix = _pad_index(_fold_sizes(shape.ofmap_pixels, rows), rows)  # (rf, R)
    tap = np.arange(shape.window)[None, :, None]
    addr = np.where(pix[:, None, :] >= 0, _ifmap_addr(shape, pix[:, None, :], tap), -1)
    return [(_skewed_order(addr), -(-shape.filters // cols))]


def _os_filter_stream(shape: ConvShape, rows: int, cols: int) -> Segments:
    """OS filter demand (create_filter_demand_mat): column fold fc (filters fc*C..) down the
    columns, taps in time, skewed; it repeats once per row fold before the next fold starts."""
    k = _pad_index(_fold_sizes(shape.filters, cols), cols)  # (cf, C)
    tap = np.arange(shape.window)[None, :, None]
    addr = np.where(k[:, None, :] >= 0, _filter_addr(shape, tap, k[:, None, :]), -1)
    row_folds = -(-shape.ofmap_pixels // rows)
    return [(_skewed_order(addr[f : f + 1]), row_folds) for f in range(len(k))]


def _ws_ifmap_stream(shape: ConvShape, rows: int, cols: int) -> Segments:
    """WS ifmap demand (systolic_compute_ws.create_ifmap_demand_mat).

    Row fold fr streams all pixels through taps fr*R.. (skewed); repeated per column fold.
    """
    tap = _pad_index(_fold_sizes(shape.window, rows), rows)  # (rf, R)
    pix = np.arange(shape.ofmap_pixels)[None, :, None]
    addr = np.where(tap[:, None, :] >= 0, _ifmap_addr(shape, pix, tap[:, None, :]), -1)
    return [(_skewed_order(addr), -(-shape.filters // cols))]


def _is_ifmap_stream(shape: ConvShape, rows: int, cols: int) -> Segments:
    """IS ifmap demand (systolic_compute_is.create_ifmap_demand_mat): unskewed, rows flipped.

    Fold (fc, fr) loads taps fr*R.. (last tap first) for pixels fc*C..; each row at once.
    """
    tap = _pad_index(_fold_sizes(shape.window, rows), rows)[:, ::-1]  # (rf, R) flipped
    pix = _pad_index(_fold_sizes(shape.ofmap_pixels, cols), cols)  # (cf, C)
    t = tap[None, :, :, None]
    p = pix[:, None, None, :]
    addr = np.where((t >= 0) & (p >= 0), _ifmap_addr(shape, p, t), -1).ravel()
    return [(addr[addr >= 0], 1)]


def _is_filter_stream(shape: ConvShape, rows: int, cols: int) -> Segments:
    """IS filter demand (create_filter_demand_mat): taps fr*R.. across rows, filters in time,
    skewed; the sequence of row folds repeats once per column (pixel) fold."""
    tap = _pad_index(_fold_sizes(shape.window, rows), rows)  # (rf, R)
    k = np.arange(shape.filters)[None, :, None]
    addr = np.where(tap[:, None, :] >= 0, _filter_addr(shape, tap[:, None, :], k), -1)
    return [(_skewed_order(addr), -(-shape.ofmap_pixels // cols))]


# --------------------------------------------------------------------------- read buffer


def _epoch_words(kb: int) -> int:
    """New addresses after which the CALC read buffer forgets everything it holds.

    read_buffer_estimate_bw.manage_prefetches: a miss adds the address to the current set;
    a full set (floor(1024*kB/100) addresses) is closed; when 50 sets are closed the window
    jumps past all of them, so hits are only on addresses added since the last jump.
    """
    return _ACTIVE_SETS * (1024 * kb // _SETS)


def _occurrences(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element: index of the previous occurrence of its address (-1 if none), and of the
    last occurrence of its address in `base`."""
    order = np.argsort(base, kind="stable")
    ordered = base[order]
    same = ordered[1:] == ordered[:-1]
    prev = np.full(base.size, -1, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    group_end = np.flatnonzero(np.append(~same, True))  # sorted position of each group's last
    group = np.cumsum(np.concatenate(([0], ~same)))  # group id of each sorted position
    last = np.empty(base.size, dtype=np.int64)
    last[order] = order[group_end[group]]
    return prev, last


def _previous_occurrence(segments: Segments) -> np.ndarray:
    """Index of the previous occurrence of each stream element's address, or -1.

    Copy j >= 1 of a tiled base sees an address first met in this copy at its last position in
    copy j-1; only the base is sorted.
    """
    parts, offset = [], 0
    for base, repeats in segments:
        prev, last = _occurrences(base)
        wrapped = np.where(prev >= 0, prev, last - base.size)
        copies = np.arange(repeats, dtype=np.int64)[:, None] * base.size
        tiled = (wrapped[None, :] + copies).ravel()
        tiled[: base.size] = prev
        parts.append(np.where(tiled >= 0, tiled + offset, -1))
        offset += base.size * repeats
    return np.concatenate(parts)


def _nth_new(prev: np.ndarray, start: int, n: int) -> int:
    """Index of the n-th element from `start` whose address was not seen since `start`, or -1."""
    seen, lo, step = 0, start, n
    while lo < prev.size:
        hi = min(prev.size, lo + step)
        hits = np.flatnonzero(prev[lo:hi] < start)
        if seen + hits.size >= n:
            return lo + int(hits[n - seen - 1])
        seen, lo, step = seen + hits.size, hi, step * 2
    return -1


def _replay_read_buffer(segments: Segments, epoch: int) -> int:
    """DRAM reads = addresses added to the read buffer's sets (its `num_access`)."""
    prev = _previous_occurrence(segments)
    total, start = 0, 0
    while start < prev.size:
        end = _nth_new(prev, start, epoch)
        if end < 0:
            return total + int(np.count_nonzero(prev[start:] < start))
        total, start = total + epoch, end + 1
    return total


def _dram_reads(footprint: int, kb: int, stream: Callable[[], Segments]) -> int:
    """Read-buffer DRAM reads: the footprint while it never fills an epoch, else a replay."""
    epoch = _epoch_words(kb)
    if epoch == 0 or footprint < epoch:  # 0: sets never fill, nothing is ever forgotten
        return footprint
    return _replay_read_buffer(stream(), epoch)


# --------------------------------------------------------------------------- write buffer


def _skewed_row_counts(length: int, first: int, stop: int, width: int) -> np.ndarray:
    """Valid entries in each of the `length` rows of skew_matrix(m) (plus trailing idle rows),
    where m's rows [first, stop) x columns [0, width) are valid: row r holds (r - c, c)."""
    r = np.arange(length)
    lo = np.maximum(0, r - stop + 1)
    hi = np.minimum(width - 1, r - first)
    return np.maximum(0, hi - lo + 1)


def _ofmap_folds(shape: ConvShape, hw: HardwareConfig) -> tuple[int, list[tuple[int, int, int]]]:
    """(demand rows per fold, [(first, stop, width)] per fold in SCALE-Sim's order).

    Fold blocks before skewing: OS (create_ofmap_demand_mat) has T-1 idle rows then the R x C
    block flipped, so a partial row fold's pad rows come first; WS has 2R-1 idle rows then one
    row per pixel; IS has 2R-1 idle rows then one row per filter. Column folds are outer.
    """
    rows, cols, t, k, npix = hw.rows, hw.cols, shape.window, shape.filters, shape.ofmap_pixels
    if hw.dataflow == "os":
        row_sizes, col_sizes = _fold_sizes(npix, rows).tolist(), _fold_sizes(k, cols).tolist()
        stop = t - 1 + rows
        folds = [(stop - ru, stop, cu) for cu in col_sizes for ru in row_sizes]
        return t + rows + cols - 2, folds
    inner, outer = (npix, k) if hw.dataflow == "ws" else (k, npix)
    row_folds = -(-t // rows)
    first = 2 * rows - 1
    folds = [(first, first + inner, cu) for cu in _fold_sizes(outer, cols).tolist()]
    return 2 * rows + cols + inner - 2, [f for f in folds for _ in range(row_folds)]


def _ofmap_row_counts(shape: ConvShape, hw: HardwareConfig) -> np.ndarray:
    """Ofmap writes per demand-matrix row (= per cycle), all folds concatenated."""
    length, folds = _ofmap_folds(shape, hw)
    cache = {f: _skewed_row_counts(length, *f) for f in set(folds)}
    return np.concatenate([cache[f] for f in folds])


class _WriteBuffer:
    """Event-level replay of memory/write_buffer.py (CALC mode: DRAM port bandwidth = cols).

    Writes pack into lines of `bw` words. When a write leaves more than `drain` words held and
    no drain is in flight, the partial line is closed and the next ceil(drain/bw) lines are
    drained, counting bw words per line minus the -1 pads of the LAST line only (so a padded
    line drained mid-chunk counts as full: an upstream overcount). A write while a drain is in
    flight and the buffer is full stalls until the drain ends.
    """

    def __init__(self, kb: int, bw: int) -> None:
        self.size = 1024 * kb
        self.drain = self.size - math.ceil(self.size * 0.5)
        self.lines_per_drain = math.ceil(self.drain / bw)
        self.bw = bw
        self.free = self.size
        self.lines = 0
        self.start = 0
        self.partial: dict[int, int] = {}
        self.forced_at = 0
        self.writes = 0

    def force(self, stored: int) -> None:
        """append_to_trace_mat(force=True): close the lines of everything stored so far."""
        m = stored - self.forced_at
        self.lines += m // self.bw
        if m % self.bw:
            self.partial[self.lines] = m % self.bw
            self.lines += 1
        self.forced_at = stored

    def empty_drain_buf(self) -> int:
        """Drain one chunk; returns the number of lines drained."""
        end = min(self.start + self.lines_per_drain, self.lines)
        num = end - self.start
        if num <= 0:
            raise ValueError("SCALE-Sim's write buffer would drain an empty chunk (it crashes)")
        data = num * self.bw - (self.bw - self.partial.get(end - 1, self.bw))
        self.writes += data
        self.free += data
        self.start = end
        return num


def _replay_write_buffer(row_counts: np.ndarray, kb: int, bw: int) -> tuple[int, int]:
    """(DRAM ofmap writes, stall cycles) of write_buffer.service_writes + empty_all_buffers.

    Between drains the buffer only fills, so each next event (drain trigger or stall) is found
    from the cumulative write count instead of a per-word loop. Row i runs at cycle i + stalls.
    """
    cum = np.concatenate(([0], np.cumsum(row_counts)))
    nrows, total = row_counts.size, int(cum[-1])
    buf = _WriteBuffer(kb, bw)
    threshold = buf.size - buf.drain
    g, stall, drain_end = 0, 0, 0
    while True:
        in_flight_end = int(cum[min(max(drain_end - stall, 0), nrows)])
        g_stall = g + max(buf.free, 1) - 1
        if g_stall < min(in_flight_end, total):
            row = int(np.searchsorted(cum, g_stall, side="right")) - 1
            buf.free -= g_stall - g + 1
            g = g_stall + 1
            stall = drain_end - row
            continue
        g_trig = max(g, in_flight_end, g + buf.free - threshold)
        if g_trig >= total:
            break
        row = int(np.searchsorted(cum, g_trig, side="right")) - 1
        buf.free -= g_trig - g + 1
        g = g_trig + 1
        buf.force(g)
        drain_end = row + stall + buf.empty_drain_buf() - 1
    buf.force(total)
    while buf.start < buf.lines:
        buf.empty_drain_buf()
    return buf.writes, stall


def _dram_ofmap_writes(shape: ConvShape, hw: HardwareConfig, words: int) -> tuple[int, int]:
    """(DRAM ofmap writes, stall cycles): `words` outright if they never exceed the drain
    threshold (the final flush then drains exactly them), else the replay."""
    kb = hw.scalesim_kb()[2]
    if words <= 1024 * kb - math.ceil(1024 * kb * 0.5):
        return words, 0
    return _replay_write_buffer(_ofmap_row_counts(shape, hw), kb, hw.cols)


# --------------------------------------------------------------------------- per dataflow


def _sram_counts(shape: ConvShape, hw: HardwareConfig) -> tuple[int, int, int, int]:
    """(demand rows, SRAM ifmap reads, filter reads, ofmap writes) of systolic_compute_*.

    Reads count every slot of each fold's operand block, ofmap writes too; OS also adds
    rows + cols per fold (create_ofmap_demand_mat adds the padded block's shape: upstream
    issue #166); WS and IS write every row fold's partial sums.
    """
    r, c, t, k, npix = hw.rows, hw.cols, shape.window, shape.filters, shape.ofmap_pixels
    if hw.dataflow == "os":
        rf, cf = -(-npix // r), -(-k // c)
        return rf * cf * (t + r + c - 2), cf * npix * t, rf * t * k, npix * k + rf * cf * (r + c)
    if hw.dataflow == "ws":
        rf, cf = -(-t // r), -(-k // c)
        return rf * cf * (2 * r + c + npix - 2), cf * npix * t, t * k, rf * npix * k
    rf, cf = -(-t // r), -(-npix // c)
    return rf * cf * (2 * r + c + k - 2), t * npix, cf * t * k, rf * npix * k


IFMAP_STREAMS: dict[str, Callable[[ConvShape, int, int], Segments]] = {
    "os": _os_ifmap_stream,
    "ws": _ws_ifmap_stream,
    "is": _is_ifmap_stream,
}


def _dram_filter_reads(shape: ConvShape, hw: HardwareConfig) -> int:
    """DRAM filter reads through the CALC filter read buffer."""
    filter_kb, r, c = hw.scalesim_kb()[1], hw.rows, hw.cols
    weights = shape.window * shape.filters
    if hw.dataflow == "os":
        return _dram_reads(weights, filter_kb, lambda: _os_filter_stream(shape, r, c))
    if hw.dataflow == "ws":
        return weights  # each weight is demanded exactly once: every demand is a new address
    return _dram_reads(weights, filter_kb, lambda: _is_filter_stream(shape, r, c))


def _dram_read_counts(shape: ConvShape, hw: HardwareConfig) -> tuple[int, int]:
    """(DRAM ifmap reads, DRAM filter reads) through the CALC read buffers."""
    stream = IFMAP_STREAMS[hw.dataflow]
    ifmap = _dram_reads(
        _ifmap_footprint(shape), hw.scalesim_kb()[0], lambda: stream(shape, hw.rows, hw.cols)
    )
    return ifmap, _dram_filter_reads(shape, hw)


def analytic_counts(shape: ConvShape, hw: HardwareConfig) -> AccessCounts:
    """SCALE-Sim 3.0.0 CALC-mode counts of one layer, exactly (see module docstring)."""
    _check_shape(shape)
    if hw.dataflow not in ("os", "ws", "is"):
        raise ValueError(f"dataflow {hw.dataflow!r} must be os, ws or is")
    nrows, sram_ifmap, sram_filter, sram_ofmap = _sram_counts(shape, hw)
    dram_ifmap, dram_filter = _dram_read_counts(shape, hw)
    # Words actually written: SRAM writes without the OS double count.
    words = shape.ofmap_pixels * shape.filters if hw.dataflow == "os" else sram_ofmap
    dram_ofmap, stall = _dram_ofmap_writes(shape, hw, words)
    return AccessCounts(
        cycles=nrows - 1 + stall,
        sram_ifmap_reads=sram_ifmap,
        sram_filter_reads=sram_filter,
        sram_ofmap_writes=sram_ofmap,
        dram_ifmap_reads=dram_ifmap,
        dram_filter_reads=dram_filter,
        dram_ofmap_writes=dram_ofmap,
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
