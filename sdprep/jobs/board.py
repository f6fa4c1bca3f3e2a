"""Builds that outlive a browser tab: each runs in a thread of the server; pages follow it and may cancel it.

A page that closes stops following, not building; a page that opens finds the running build and follows it
from the start of its log. Builds queue here one behind another (and across processes on the GPU lock).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sdprep.config import RuntimeDefaults
from sdprep.jobs.build import BuildEvent, BuildOptions, BuildResult
from sdprep.jobs.check import CheckResult, build_and_check
from sdprep.params import BakedParams

_ids = itertools.count(1)


@dataclass
class BuildJob:
    params: BakedParams
    id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.time)
    events: list[BuildEvent] = field(default_factory=list)
    result: BuildResult | None = None
    built: BuildResult | None = None  # the build's own result, known before its check ends
    check: CheckResult | None = None  # the load-and-run check after the build, when BuildOptions.check
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def running(self) -> bool:
        return self.result is None

    def add(self, event: BuildEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def set_built(self, built: BuildResult) -> None:
        with self._changed:
            self.built = built
            self._changed.notify_all()

    def finish(self, result: BuildResult, check: CheckResult | None = None) -> None:
        with self._changed:
            self.result, self.check = result, check
            self._changed.notify_all()

    def cancel(self) -> None:
        self.cancel_event.set()

    def follow(self, interval: float = 0.3) -> Iterator[tuple[list[BuildEvent], BuildResult | None]]:
        """Every `interval` at most: the events so far and the result once there is one (then it stops).

        Waits only while nothing is new since the last yield: events added while the caller was busy with the
        previous yield (their notify had no waiter) are yielded at once, not after the next event or `interval`.
        """
        seen = -1
        while True:
            with self._changed:
                if self.result is None and len(self.events) == seen:
                    self._changed.wait(interval)
                events, result = list(self.events), self.result
            seen = len(events)
            yield events, result
            if result is not None:
                return


class JobBoard:
    """The server's builds: at most one runs per board; the rest wait their turn in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Builds take turns first come, first served (a plain Lock wakes waiters in any order, which would
        # contradict the queue position pages show): each waits until it is at the head of `_queue`.
        self._turn = threading.Condition()
        self._queue: list[BuildJob] = []
        self.jobs: list[BuildJob] = []

    def submit(self, params: BakedParams, runtime: RuntimeDefaults, options: BuildOptions) -> BuildJob:
        with self._lock:
            job = BuildJob(params)  # ids in the order of self.jobs
            self.jobs.append(job)
            if len(self.jobs) > 20:  # keep the recent history, and every build that has not finished
                self.jobs = [old for old in self.jobs[:-20] if old.running] + self.jobs[-20:]
            with self._turn:
                self._queue.append(job)

        def work() -> None:
            try:
                with self._turn:
                    while self._queue[0] is not job and not job.cancel_event.is_set():
                        self._turn.wait(0.2)  # a queued build that is cancelled ends now, not at its turn
                try:
                    if job.cancel_event.is_set():
                        job.finish(BuildResult("cancelled", "Cancelled before it started."))
                    else:
                        job.finish(
                            *build_and_check(
                                params, runtime, options, job.add, job.cancel_event, on_built=job.set_built
                            )
                        )
                finally:
                    with self._turn:
                        self._queue.remove(job)
                        self._turn.notify_all()
            except Exception as error:  # a bug must still end the job, or pages would wait forever
                job.finish(BuildResult("failed", f"Internal error: {type(error).__name__}: {error}"))

        threading.Thread(target=work, name=f"build-{job.id}", daemon=True).start()
        return job

    def position(self, job: BuildJob) -> int:
        """0 for the running build, 1 for the next, ... (only jobs that have not finished count)."""
        with self._lock:
            waiting = [other for other in self.jobs if other.running]
        return waiting.index(job) if job in waiting else 0

    def current(self) -> BuildJob | None:
        """The oldest unfinished build, which is the one running (or about to)."""
        with self._lock:
            return next((job for job in self.jobs if job.running), None)

    def latest(self) -> BuildJob | None:
        with self._lock:
            return self.jobs[-1] if self.jobs else None

    def get(self, job_id: int) -> BuildJob | None:
        with self._lock:
            return next((job for job in self.jobs if job.id == job_id), None)
