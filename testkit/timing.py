"""The suite's one timeout and the machine factor.

Tests wait for events (a line, a file, a process state, an output of the page), each wait bounded by SUITE_TIMEOUT:
generous, because it only matters when something is already wrong, and below pytest's per-test timeout so the
failure names what was awaited. Where a test asserts a speed the user feels (a Cancel that answers within seconds),
the quiet machine's figure is scaled by `machine_factor()`, measured here: how much slower than a quiet machine this
one runs a fixed piece of work, and how loaded it is now.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

SUITE_TIMEOUT = 180.0  # seconds; pytest's own per-test timeout (pyproject) is 300
FACTOR_ENV = "TESTKIT_MACHINE_FACTOR"  # set to force a factor (e.g. 1 to check the quiet figures)
# The best of three runs of _reference_work() on a quiet 2-core development machine, in seconds.
REFERENCE_SECONDS = 0.017


def _reference_work() -> float:
    started = time.perf_counter()
    total = 0
    for index in range(300_000):
        total += index * index % 7
    return time.perf_counter() - started


@functools.cache
def _slowness() -> float:
    """How much slower than the reference machine this one runs the fixed work (once per process)."""
    return min(_reference_work() for _ in range(3)) / REFERENCE_SECONDS


def machine_factor() -> float:
    """At least 1: the slowness of this machine, or its load per core now, whichever is larger."""
    forced = os.environ.get(FACTOR_ENV)
    if forced:
        return max(1.0, float(forced))
    load = os.getloadavg()[0] / (os.cpu_count() or 1) if hasattr(os, "getloadavg") else 0.0
    return max(1.0, _slowness(), load)


def budget(seconds: float) -> float:
    """A quiet machine's figure for something the user waits on, scaled to this machine now."""
    return seconds * machine_factor()


def wait_until(predicate: Callable[[], object], what: str, timeout: float = SUITE_TIMEOUT, poll: float = 0.05) -> None:
    """Return once `predicate()` is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
