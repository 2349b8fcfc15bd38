"""Timing for the packages' benchmark scripts: one definition of "best of k runs"."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["time_call"]

_CLOCKS: dict[str, Callable[[], float]] = {
    "thread": time.thread_time,  # CPU time of this thread: robust on a shared machine
    "wall": time.perf_counter,
}


def time_call(
    fn: Callable[[], Any],
    repeats: int = 7,
    *,
    warmup: int = 1,
    clock: Literal["thread", "wall"] = "thread",
    stat: Literal["min", "median"] = "min",
) -> float:
    """Seconds one call of ``fn`` takes: ``stat`` over ``repeats`` timed calls.

    Parameters
    ----------
    fn : callable
        Called with no arguments; its result is discarded.
    repeats : int
        Timed calls (at least 1).
    warmup : int
        Untimed calls first (caches, lazy initialisation, allocator).
    clock : {"thread", "wall"}
        ``"thread"``: CPU time of the calling thread (use with one compute thread; not for GPU
        work or for code that runs in other threads or processes). ``"wall"``: elapsed time.
    stat : {"min", "median"}
        The least disturbed run, or the typical one.

    Returns
    -------
    float
        Seconds.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'thread' or 'wall', got {clock!r}")
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    now = _CLOCKS[clock]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        times.append(now() - t0)
    return min(times) if stat == "min" else statistics.median(times)
