"""Worker processes for `--jobs`: SCALE-Sim runs and sweep design points share one way of
spreading tasks over cores, stopping at once on a failure or Ctrl-C, and reporting a dead worker
as one line.

A spawn pool, not fork: the parent may hold torch threads (it walked a network), and workers
import only what their task needs. A concurrent.futures pool rather than multiprocessing.Pool:
if a worker dies (out of memory, killed) the former reports it, the latter waits forever for
the lost task. Workers are not recycled: `max_tasks_per_child` deadlocks the pool on CPython
3.11 once the first worker retires (seen with resnet74 SCALE-Sim runs after 2 x 16 shapes).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm import tqdm

from ddi_energy.errors import DDIError

T = TypeVar("T")
R = TypeVar("R")


def _worker_init() -> None:
    """Leave Ctrl-C to the parent, which stops the pool (no traceback per worker).

    tqdm bars in a worker (SCALE-Sim's, disabled) would create tqdm's multiprocessing lock, a
    named semaphore that a terminated worker leaks ("resource_tracker: leaked semaphore" at
    exit): use a thread lock instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())


def _terminate(executor: ProcessPoolExecutor) -> None:
    """Stop at once: drop queued tasks and kill running ones (they may take minutes)."""
    executor.shutdown(wait=False, cancel_futures=True)
    # No public way to kill workers before Python 3.14 (terminate_workers); _processes it is.
    procs = list((getattr(executor, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join()


def completed(func: Callable[[T], R], tasks: Sequence[T], processes: int,
              died: str) -> Iterator[tuple[int, R]]:  # fmt: skip
    """`(index, func(task))` for every task, as each finishes: in this process when `processes`
    (capped at the number of tasks) is 1, else on a spawn pool. `func` must be importable by a
    fresh interpreter; `died` is the error when a worker dies."""
    processes = min(processes, len(tasks))
    if processes <= 1:
        yield from ((i, func(task)) for i, task in enumerate(tasks))
        return
    executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)  # fmt: skip
    try:
        futures = {executor.submit(func, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BrokenProcessPool:
        _terminate(executor)
        raise DDIError(died) from None
    except BaseException:  # a task's error, Ctrl-C, or the consumer closing this generator
        _terminate(executor)
        raise
    executor.shutdown(wait=True)
