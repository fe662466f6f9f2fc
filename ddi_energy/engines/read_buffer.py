"""DRAM reads of SCALE-Sim 3.0.0's CALC-mode read buffer, counted without its per-word loop.

`memory/read_buffer_estimate_bw.py` fetches an address it does not hold (one DRAM read) and
holds it; after every 50 * floor(1024 * kB / 100) fetches it forgets all it holds. So the
demand stream falls into chunks that each end at their `epoch`-th distinct address, and
reads = epoch per full chunk + the distinct addresses of the last one. A demand is new to a
chunk iff its address's previous demand lies before the chunk's start, so given each demand's
previous one the chunk ends need no set of addresses:

- `distinct_reads`: streams made of bases whose addresses are all distinct (filters; ifmaps
  whose windows do not overlap), tiled: closed form per segment;
- `replay_previous`: one slot per demand, holding its previous demand's slot: a vectorized
  scan per chunk;
- `replay_runs`: runs of demands in one lane on consecutive steps whose previous demands lie
  equally far back (an ifmap pixel's channels on an OS array): a vectorized count over the
  runs per chunk, so the cost grows with the number of runs, not of demands.

Streams repeat one copy per column fold; once a copy's first chunk starts where an earlier
copy's did, the copies in between repeat and are skipped (`_count_reads`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# read_buffer_estimate_bw.set_params: 100 sets of floor(words / 100) addresses, of which
# int(active_buf_frac * 100) = 50 form the resident window (active_buf_frac = 0.5 in
# single_layer_sim.run).
_SETS = 100
_ACTIVE_SETS = 50

# A slot without demand: never counts as a new address.
IDLE = 1 << 62


def epoch_words(kb: int) -> int:
    """New addresses after which the CALC read buffer forgets everything it holds.

    read_buffer_estimate_bw.manage_prefetches: a miss adds the address to the current set;
    a full set (floor(1024*kB/100) addresses) is closed; when 50 sets are closed the window
    jumps past all of them, so hits are only on addresses added since the last jump.
    """
    return _ACTIVE_SETS * (1024 * kb // _SETS)


def distinct_reads(segments: Iterable[tuple[int, int]], epoch: int) -> int:
    """Reads of consecutive segments `(length, repeats)`: a base of `length` distinct
    addresses tiled `repeats` times, no address shared between segments.

    Inside a segment every window of at most `length` demands is distinct, so an open chunk
    that still needs `need <= length` addresses closes `need` demands in, and each later chunk
    takes exactly `epoch` demands (if epoch <= length) or cannot close inside the segment.
    """
    if epoch <= 0:
        raise ValueError("epoch must be positive")
    total, have = 0, 0
    for length, repeats in segments:
        need = epoch - have
        if need > length:
            have += length
            continue
        rest = length * repeats - need
        total += epoch
        if epoch <= length:
            total += epoch * (rest // epoch)
            have = rest % epoch
        else:
            have = min(rest, length)
    return total + have


def _count_reads(
    next_end: Callable[[int], tuple[int, int]], period: int, copies: int, epoch: int
) -> int:
    """Reads of `copies` copies of a stream of `period` taus; `next_end(start)` is (tau of the
    epoch-th new address from `start`, -1 if none; the new addresses left if none).

    What follows a chunk start depends only on its tau within a copy: when the first chunk of
    copy c starts where that of copy c0 did, each later run of c - c0 copies repeats it."""
    end = copies * period
    total, start, first_starts = 0, 0, {}
    while start < end:
        tau, rest = next_end(start)
        if tau < 0:
            return total + rest
        copy = start // period
        total, start = total + epoch, tau + 1
        if copy < start // period < copies:
            copy, phase = divmod(start, period)
            if phase in first_starts:
                copy0, total0 = first_starts[phase]
                skip = (copies - 1 - copy) // (copy - copy0)
                total += skip * (total - total0)
                copy += skip * (copy - copy0)
                start = copy * period + phase
            first_starts[phase] = (copy, total)
    return total


@dataclass(frozen=True)
class Runs:
    """A demand stream as runs, in the stream's order key `tau` = step * lanes + lane.

    Run i demands `length` addresses in one lane on consecutive steps: taus first[i],
    first[i] + lanes, ...; `first` is ascending. Each of its demands repeats an address last
    demanded first[i] - previous[i] taus before; previous[i] < 0 (in the copy before) for an
    address's first demand in a copy. The stream is `copies` copies of `period` taus.
    """

    first: np.ndarray
    previous: np.ndarray
    length: int
    lanes: int
    period: int
    copies: int

    @cached_property
    def step(self) -> np.ndarray:
        """Step of each run's first demand."""
        return self.first // self.lanes


def _chunk_end(runs: Runs, start: int, stop: int, need: int) -> tuple[int, int]:
    """(tau of the `need`-th new address from `start`, or -1; new addresses in [start, stop)).

    A run's demand k (tau first + k*lanes, step step + k) is new iff start <= its tau and its
    previous demand lies before start: k in [ceil((start - first)/lanes), ceil((start -
    previous)/lanes)). Counting those per step and cumulating finds the step of the
    need-th one; lanes order that step.
    """
    lanes, span = runs.lanes, (runs.length - 1) * runs.lanes
    parts = []
    for copy in range(start // runs.period, min(runs.copies, -(-stop // runs.period))):
        shift = copy * runs.period
        a, b = runs.first.searchsorted((max(start - shift, 0) - span, stop - shift))
        first, previous, step = runs.first[a:b], runs.previous[a:b], runs.step[a:b]
        if shift:
            first, previous, step = first + shift, previous + shift, step + shift // lanes
        parts.append((first, previous, step))
    first, previous, step = (
        parts[0] if len(parts) == 1 else (np.concatenate(p) for p in zip(*parts, strict=True))
    )
    if first.size == 0:
        return -1, 0
    k_a = np.maximum((start + lanes - 1 - first) // lanes, 0)
    k_b = np.maximum(np.minimum((start + lanes - 1 - previous) // lanes, runs.length), k_a)
    base = int(step[0])
    lo, hi = step + (k_a - base), step + (k_b - base)
    size = int(step[-1]) - base + runs.length + 1
    cum = np.cumsum(np.cumsum(np.bincount(lo, minlength=size) - np.bincount(hi, minlength=size)))
    complete = min(stop // lanes - base, size)  # steps before this one hold all their demands
    if complete <= 0 or cum[complete - 1] < need:
        return -1, int(cum[complete - 1]) if complete > 0 else 0
    at = int(cum.searchsorted(need))
    hit = (lo <= at) & (at < hi)
    taus = np.sort(first[hit] + (at + base - step[hit]) * lanes)
    before = int(cum[at - 1]) if at else 0
    return int(taus[need - before - 1]), need


def replay_runs(runs: Runs, epoch: int) -> int:
    """DRAM reads = addresses added to the read buffer's sets (its `num_access`)."""
    if epoch <= 0:
        raise ValueError("epoch must be positive")
    # Taus to look at for the next chunk: consecutive chunks differ by less than a quarter.
    end, width = runs.copies * runs.period, [2 * epoch]

    def next_end(start: int) -> tuple[int, int]:
        while True:
            stop = min(end, start + width[0])
            tau, seen = _chunk_end(runs, start, stop, epoch)
            if tau >= 0 or stop == end:
                if tau >= 0:
                    width[0] = (tau + 1 - start) * 5 // 4 + runs.lanes
                return tau, seen
            width[0] *= 2

    return _count_reads(next_end, runs.period, runs.copies, epoch)


def _nth_below(prev: np.ndarray, lo: int, bound: int, n: int, step: int) -> tuple[int, int]:
    """(index of the n-th i >= lo with prev[i] < bound, or -1; how many there are if fewer),
    looking `step` slots ahead at first, twice as many each time after."""
    seen = 0
    while lo < prev.size:
        hi = min(prev.size, lo + step)
        hits = np.flatnonzero(prev[lo:hi] < bound)
        if seen + hits.size >= n:
            return lo + int(hits[n - seen - 1]), n
        seen, lo, step = seen + hits.size, hi, step * 2
    return -1, seen


def replay_previous(prev: np.ndarray, copies: int, epoch: int) -> int:
    """DRAM reads of a stream of `copies` copies of `prev.size` slots in stream order, where
    prev[i] is the slot of the previous demand of slot i's address in the same copy, or (its
    last slot in the copy) - prev.size if slot i is its first, or IDLE if no demand there."""
    if epoch <= 0:
        raise ValueError("epoch must be positive")
    period, width = prev.size, [2 * epoch]  # slots to scan first: a bit more than last time

    def next_end(start: int) -> tuple[int, int]:
        need, first = epoch, start // period
        lo = start - first * period
        for copy in range(first, copies):  # the scan goes on into the next copies
            end, seen = _nth_below(prev, lo, start - copy * period, need, width[0])
            if end >= 0:
                end += copy * period
                width[0] = (end + 1 - start) * 5 // 4
                return end, 0
            need, lo = need - seen, 0
        return -1, epoch - need

    return _count_reads(next_end, period, copies, epoch)
