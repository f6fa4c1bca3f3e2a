"""Builds that outlive a browser tab: each runs in a thread of the server; pages follow it and may cancel it.

A page that closes stops following, not building; a page that opens finds the running build and follows it from
the start of its log. Builds wait their turn here, first come first served (and across processes on the GPU lock),
in a lane of their own: the number waiting is bounded per page session and in all, so a flood of builds is refused
with a message while form changes, Cancel, the library and the environment stay answered at once. Pages follow a
job with an async generator that holds no worker thread while it waits.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from sdprep.config import RuntimeDefaults
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.pipeline import build_and_check
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, msg
from sdprep.params import BakedParams

_ids = itertools.count(1)
MAX_WAITING_PER_OWNER = 2  # one running and one queued per page session is all a person needs
MAX_WAITING = 200  # builds not yet finished, all sessions together
KEEP_FINISHED = 20


class BuildRefused(RuntimeError):
    """The board takes no more builds from this owner (or at all) now; `message` says why."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


@dataclass
class BuildJob:
    params: BakedParams
    owner: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.time)
    events: list[JobEvent] = field(default_factory=list)
    result: BuildResult | None = None
    built: BuildResult | None = None  # the build's own result, known before its check ends
    check: CheckResult | None = None  # the load-and-run check after the build, when BuildOptions.check
    cancel_event: threading.Event = field(default_factory=threading.Event)
    version: int = 0  # changes with every event and result: followers compare it instead of waiting on a thread
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def running(self) -> bool:
        return self.result is None

    def _touch(self) -> None:
        self.version += 1
        self._changed.notify_all()

    def add(self, event: JobEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._touch()

    def set_built(self, built: BuildResult) -> None:
        with self._changed:
            self.built = built
            self._touch()

    def finish(self, result: BuildResult, check: CheckResult | None = None) -> None:
        with self._changed:
            self.result, self.check = result, check
            self._touch()

    def cancel(self) -> None:
        self.cancel_event.set()

    def follow(self, interval: float = 0.3) -> Iterator[tuple[list[JobEvent], BuildResult | None]]:
        """Every `interval` at most: the events so far and the result once there is one (then it stops)."""
        seen = -1
        while True:
            with self._changed:
                if self.result is None and self.version == seen:
                    self._changed.wait(interval)
                seen, events, result = self.version, list(self.events), self.result
            yield events, result
            if result is not None:
                return

    async def afollow(self, interval: float = 0.3, poll: float = 0.05) -> AsyncIterator[None]:
        """The same for the event loop: yields when something changed (or every `interval`), until the result."""
        seen = -1
        quiet = 0.0
        while True:
            if self.version != seen or quiet >= interval or self.result is not None:
                seen, quiet = self.version, 0.0
                yield None
                if self.result is not None:
                    return
            await asyncio.sleep(poll)
            quiet += poll


class JobBoard:
    """The server's builds: at most one runs per board; the rest wait their turn in order."""

    def __init__(self, max_per_owner: int = MAX_WAITING_PER_OWNER, max_waiting: int = MAX_WAITING) -> None:
        self._lock = threading.Lock()
        # Builds take turns first come, first served: each waits until it is at the head of `_queue`.
        self._turn = threading.Condition()
        self._queue: list[BuildJob] = []
        self.jobs: list[BuildJob] = []
        self.max_per_owner = max_per_owner
        self.max_waiting = max_waiting

    def submit(self, params: BakedParams, runtime: RuntimeDefaults, options: BuildOptions, owner: str = "") -> BuildJob:
        with self._lock:
            unfinished = [job for job in self.jobs if job.running]
            if owner and sum(job.owner == owner for job in unfinished) >= self.max_per_owner:
                raise BuildRefused(msg("board_owner_full", count=self.max_per_owner))
            if len(unfinished) >= self.max_waiting:
                raise BuildRefused(msg("board_full", count=len(unfinished)))
            job = BuildJob(params, owner)  # ids in the order of self.jobs
            self.jobs.append(job)
            finished = [old for old in self.jobs if not old.running]
            if len(finished) > KEEP_FINISHED:  # keep the recent history, and every build that has not finished
                dropped = {id(old) for old in finished[:-KEEP_FINISHED]}
                self.jobs = [old for old in self.jobs if id(old) not in dropped]
            with self._turn:
                self._queue.append(job)

        def work() -> None:
            try:
                with self._turn:
                    while self._queue[0] is not job and not job.cancel_event.is_set():
                        self._turn.wait(0.2)  # a queued build that is cancelled ends now, not at its turn
                try:
                    if job.cancel_event.is_set():
                        job.finish(BuildResult("cancelled", msg("cancelled_before_start")))
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
            except Exception as problem:  # a bug must still end the job, or pages would wait forever
                job.finish(
                    BuildResult("failed", msg("internal_error", type=type(problem).__name__, detail=str(problem)))
                )

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
