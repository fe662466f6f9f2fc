"""The ifmap demand stream of each dataflow, with each demand's previous demand of the same
address, for the read-buffer replays (`read_buffer`).

Every ifmap demand is (ofmap pixel p, window tap t) with t = j*C + ch, j the window offset
(operand_matrix.calc_ifmap_elem_addr: NHWC, taps ordered row, col, channel); its address is
(ifmap pixel q(p, j), channel ch). The order of the demand matrices that
systolic_compute_*.create_ifmap_demand_mat build, as tau = step * lanes + lane, splits into a
pixel part and a tap part:

- OS: row fold f = p // R, lane p % R, step f*(T+R-1) + t + lane (skew_matrix); the whole
  sequence repeats once per column fold;
- WS: row fold fr = t // R, lane t % R, step fr*(Np+R-1) + p + lane; repeats per column fold;
- IS: unskewed; fold (fc = p // C, fr = t // R), lane p % C, its taps' rows flipped: row
  (fc*rf + fr)*R + R-1 - t % R; read once.

The other demands of (q(p, j), ch) are by (p + shift(j, j'), j', ch) for the offsets j' whose
window shift is whole strides and stays inside the ofmap. So the distance from a demand back
to the previous one of its address depends only on (j, ch) and on the pixel's class: whether
its neighbours lie inside the ofmap, and its lane where the pixel part depends on the fold.
"""

from __future__ import annotations

import numpy as np

from ddi_energy.engines.read_buffer import IDLE, Runs
from ddi_energy.workload.shapes import ConvShape

# "No previous demand among the others": farther back than any stream reaches.
_NEVER = 1 << 60


def windows_overlap(shape: ConvShape) -> bool:
    """Whether two (pixel, offset) pairs read the same ifmap pixel; if not, every demand of a
    copy of the stream is a distinct address."""
    return (shape.filter_h > shape.stride and shape.ofmap_h > 1) or (
        shape.filter_w > shape.stride and shape.ofmap_w > 1
    )


# Ifmap rows [y0, y1) and columns [x0, x1) whose addresses are demanded.
Region = tuple[tuple[int, int], tuple[int, int]]


def _accessors(shape: ConvShape, real: Region | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(p, j) of every (ofmap pixel, window offset) pair that reads inside the ifmap (taps
    past its edge under the ceil output rule are -1 and never reach the buffer), and inside
    `real` if given. Dropping all demands of some addresses leaves every other address's
    previous demand where it was."""
    p = np.arange(shape.ofmap_pixels)[:, None]
    j = np.arange(shape.filter_h * shape.filter_w)[None, :]
    oy, ox = np.divmod(p, shape.ofmap_w)
    ry, rx = np.divmod(j, shape.filter_w)
    y, x = oy * shape.stride + ry, ox * shape.stride + rx
    (y0, y1), (x0, x1) = real or ((0, shape.ifmap_h), (0, shape.ifmap_w))
    inside = (y >= y0) & (y < min(y1, shape.ifmap_h)) & (x >= x0) & (x < min(x1, shape.ifmap_w))
    pix, off = np.broadcast_arrays(p, j)
    return pix[inside], off[inside]


class _Order:
    """tau(p, t) = per_pixel[p] + per_tap[t] over one copy of `period` taus, of `copies`."""

    def __init__(self, shape: ConvShape, dataflow: str, rows: int, cols: int) -> None:
        npix, taps = shape.ofmap_pixels, shape.window
        pixel, tap = np.arange(npix), np.arange(taps)
        self.copies = -(-shape.filters // cols)
        if dataflow == "os":
            fold_steps = taps + rows - 1
            fold, lane = np.divmod(pixel, rows)
            self.per_pixel = (fold * fold_steps + lane) * rows + lane
            self.per_tap = tap * rows
            self.period = -(-npix // rows) * fold_steps * rows
            self.lanes = rows  # the pixel part depends on p % R
            return
        row_folds = -(-taps // rows)
        fold, lane = np.divmod(tap, rows)
        if dataflow == "ws":
            fold_steps = npix + rows - 1
            self.per_pixel = pixel * rows
            self.per_tap = (fold * fold_steps + lane) * rows + lane
            self.period = row_folds * fold_steps * rows
            self.lanes = 1
        elif dataflow == "is":
            col_fold, col = np.divmod(pixel, cols)
            self.per_pixel = col_fold * row_folds * rows * cols + col
            self.per_tap = (fold * rows + rows - 1 - lane) * cols
            self.period = -(-npix // cols) * row_folds * rows * cols
            self.lanes, self.copies = cols, 1
        else:
            raise ValueError(f"dataflow {dataflow!r} must be os, ws or is")


def _pixel_classes(shape: ConvShape, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(class of each ofmap pixel, one pixel of each class): the pixels of a class have the
    same neighbours within a window's reach inside the ofmap and the same lane p % lanes."""
    reach_y = (shape.filter_h - 1) // shape.stride
    reach_x = (shape.filter_w - 1) // shape.stride
    oy, ox = np.arange(shape.ofmap_h), np.arange(shape.ofmap_w)
    ky = np.minimum(oy, reach_y) * (reach_y + 1) + np.minimum(shape.ofmap_h - 1 - oy, reach_y)
    kx = np.minimum(ox, reach_x) * (reach_x + 1) + np.minimum(shape.ofmap_w - 1 - ox, reach_x)
    key = (ky[:, None] * (reach_x + 1) ** 2 + kx[None, :]).ravel()
    key = key * lanes + np.arange(key.size) % lanes
    _, first, cls = np.unique(key, return_index=True, return_inverse=True)
    return cls, first


def _previous_offsets(
    shape: ConvShape, order: _Order, cls_pixel: np.ndarray, channels: int
) -> np.ndarray:
    """[class, j, ch] -> tau of the previous demand of (q(p, j), ch) minus tau of (p, j, ch),
    p = cls_pixel[class]; for the address's first demand, its last demand minus `period`
    (the previous copy's). Only channels [0, channels) are computed."""
    st, ow = shape.stride, shape.ofmap_w
    ry, rx = np.divmod(np.arange(shape.filter_h * shape.filter_w), shape.filter_w)
    dy, dx = ry[:, None] - ry[None, :], rx[:, None] - rx[None, :]  # [j, j']
    whole = (dy % st == 0) & (dx % st == 0) & ((dy != 0) | (dx != 0))
    oy, ox = np.divmod(cls_pixel, ow)
    oy2, ox2 = oy[:, None, None] + dy // st, ox[:, None, None] + dx // st  # [class, j, j']
    inside = whole & (oy2 >= 0) & (oy2 < shape.ofmap_h) & (ox2 >= 0) & (ox2 < ow)
    other = np.where(inside, oy2 * ow + ox2, 0)
    taps = order.per_tap.reshape(-1, shape.channels)[:, :channels]
    d = (order.per_pixel[other] - order.per_pixel[cls_pixel][:, None, None])[..., None] + (
        taps[None, None, :, :] - taps[None, :, None, :]
    )  # [class, j, j', ch]
    inside = inside[..., None]
    nearest = np.where(inside & (d < 0), d, -_NEVER).max(axis=2)
    latest = np.where(inside, d, 0).max(axis=2)
    return np.where(nearest > -_NEVER, nearest, latest - order.period)


def previous_demands(
    shape: ConvShape, dataflow: str, rows: int, cols: int, real: Region | None = None
) -> tuple[np.ndarray, int]:
    """(prev, copies): the ifmap demand stream (of the addresses in `real`, if given) as
    `read_buffer.replay_previous` takes it.

    From the [class, j, ch] table of distances back; or, where its [class, j, j', ch] terms
    would outnumber twice the ifmap's addresses times offsets (few pixels per class: small
    ofmaps, large windows), from a table [q, ch, j] -> tau sorted along j, which lists each
    address's demands in stream order (one per offset at most)."""
    order = _Order(shape, dataflow, rows, cols)
    pix, off = _accessors(shape, real)
    tau = order.per_pixel[pix][:, None] + order.per_tap.reshape(-1, shape.channels)[off]
    prev = np.full(order.period, IDLE, dtype=np.int64)
    cls, reps = _pixel_classes(shape, order.lanes)
    window = shape.filter_h * shape.filter_w
    # OS: an address's demands run in parallel over the channels, so one channel tells all.
    channels = 1 if dataflow == "os" else shape.channels
    if reps.size * window * channels <= 2 * shape.ifmap_h * shape.ifmap_w * shape.channels:
        offsets = _previous_offsets(shape, order, reps, channels)
        prev[tau] = tau + offsets[cls[pix], off]
        return prev, order.copies
    oy, ox = np.divmod(pix, shape.ofmap_w)
    ry, rx = np.divmod(off, shape.filter_w)
    q = (oy * shape.stride + ry) * shape.ifmap_w + ox * shape.stride + rx
    table = np.full((shape.ifmap_h * shape.ifmap_w, shape.channels, window), -1)
    table[q[:, None], np.arange(shape.channels)[None, :], off[:, None]] = tau
    table.sort(axis=-1)
    last = table[..., -1:]
    before = np.concatenate((np.full_like(last, -1), table[..., :-1]), axis=-1)
    demanded = table >= 0
    prev[table[demanded]] = np.where(before >= 0, before, last - order.period)[demanded]
    return prev, order.copies


def os_runs(shape: ConvShape, rows: int, cols: int, real: Region | None = None) -> Runs:
    """The OS ifmap demand (of the addresses in `real`, if given) as runs: the C channels of
    one (p, j) go down one lane on consecutive steps, and all demands of an address run in
    parallel (tau linear in ch with the same slope), so a run's demands share the distance
    back to their previous demand."""
    order = _Order(shape, "os", rows, cols)
    cls, reps = _pixel_classes(shape, order.lanes)
    offsets = _previous_offsets(shape, order, reps, 1)[..., 0]
    pix, off = _accessors(shape, real)
    first = order.per_pixel[pix] + order.per_tap[off * shape.channels]
    ascending = np.argsort(first, kind="stable")
    first = first[ascending]
    return Runs(
        first=first,
        previous=first + offsets[cls[pix], off][ascending],
        length=shape.channels,
        lanes=rows,
        period=order.period,
        copies=order.copies,
    )
