"""DRAM ofmap writes of SCALE-Sim 3.0.0's write buffer (memory/write_buffer.py) in CALC mode,
drain by drain instead of word by word.

The buffer drains when a write leaves more than `drain` words held and no drain is in flight;
a write while a drain is in flight and the buffer is full stalls. In CALC mode a demand row
writes at most `bw` words (the DRAM port is as wide as the array), and then neither wait ever
happens, so the drains depend on the number of writes alone:

by induction every drain is triggered by the write that brings the buffer to drain + 1 words.
A drain of n lines counts data >= (n - 1) * bw + 1 words (its last line holds at least one)
and ends at the cycle of the row n - 1 rows after its trigger's, by when at most
(n - 1) * bw more words have been written; the buffer, left holding drain + 1 - data <= drain
words, reaches drain + 1 again only `data` writes after the trigger: after the drain ended
(no wait), and below the buffer's size (no stall).
"""

from __future__ import annotations

import math


class _WriteBuffer:
    """Event-level state of memory/write_buffer.py (CALC mode: DRAM port bandwidth = cols).

    Writes pack into lines of `bw` words. A drain closes the partial line and takes the next
    ceil(drain/bw) lines, counting bw words per line minus the -1 pads of the LAST line only
    (so a padded line drained mid-chunk counts as full: an upstream overcount).
    """

    def __init__(self, kb: int, bw: int) -> None:
        self.size = 1024 * kb
        self.drain = self.size - math.ceil(self.size * 0.5)
        self.lines_per_drain = math.ceil(self.drain / bw)
        self.bw = bw
        self.free = self.size
        self.lines = 0
        self.start = 0
        self.partial: dict[int, int] = {}  # words in the closed, partial, undrained lines
        self.stored = 0
        self.writes = 0

    def force(self, stored: int) -> None:
        """append_to_trace_mat(force=True): close the lines of everything stored so far."""
        m = stored - self.stored
        self.lines += m // self.bw
        if m % self.bw:
            self.partial[self.lines] = m % self.bw
            self.lines += 1
        self.stored = stored

    def empty_drain_buf(self) -> None:
        """Drain one chunk of lines."""
        end = min(self.start + self.lines_per_drain, self.lines)
        if end <= self.start:
            raise ValueError("SCALE-Sim's write buffer would drain an empty chunk (it crashes)")
        data = (end - self.start) * self.bw - (self.bw - self.partial.get(end - 1, self.bw))
        for line in [i for i in self.partial if i < end]:
            del self.partial[line]
        self.writes += data
        self.free += data
        self.start = end

    def next_trigger(self) -> int:
        """Words stored once the write that leaves drain + 1 words held is in."""
        return self.stored + self.free - (self.size - self.drain) + 1

    def state(self) -> tuple:
        """Everything the next drains depend on, relative to the words stored."""
        partial = tuple(sorted((i - self.start, n) for i, n in self.partial.items()))
        return self.free, self.lines - self.start, partial


def dram_writes(total: int, kb: int, bw: int) -> int:
    """DRAM writes of write_buffer.service_writes + empty_all_buffers fed `total` words, at
    most `bw` per cycle (the module docstring shows that no drain ever waits).

    Drain after drain the buffer's state relative to the words stored soon repeats; the
    cycles in between then repeat too, and all but the last before `total` are skipped."""
    buf = _WriteBuffer(kb, bw)
    seen: dict[tuple, tuple[int, int]] = {}
    while buf.next_trigger() <= total:
        buf.force(buf.next_trigger())
        buf.free = buf.size - buf.drain - 1
        buf.empty_drain_buf()
        key = buf.state()
        if key in seen:
            stored0, writes0 = seen.pop(key)
            skip = (total - buf.stored) // (buf.stored - stored0) - 1
            if skip > 0:  # lines are only ever counted from `start`: they stay as they are
                buf.writes += skip * (buf.writes - writes0)
                buf.stored += skip * (buf.stored - stored0)
        seen[key] = buf.stored, buf.writes
    buf.force(total)
    while buf.start < buf.lines:
        buf.empty_drain_buf()
    return buf.writes
