"""Builds that outlive a browser tab: each runs in a thread of the server; pages follow it and may cancel it.

A page that closes stops following, not building; a page that opens finds the running build and follows it from
the start of its log. Builds wait their turn here, first come first served (and across processes on the GPU lock),
in a lane of their own: the number waiting is bounded per page session and in all, so a flood of builds is refused
with a message while form changes, Cancel, the library and the environment stay answered at once. Pages follow a
job with an async generator that holds no worker thread while it waits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sdprep.config import RuntimeDefaults
from sdprep.jobs.background import BackgroundJob
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.pipeline import build_and_check
from sdprep.messages import Message, msg
from sdprep.params import BakedParams

MAX_WAITING_PER_OWNER = 2  # one running and one queued per page session is all a person needs
MAX_WAITING = 200  # builds not yet finished, all sessions together
KEEP_FINISHED = 20


class BuildRefused(RuntimeError):
    """The board takes no more builds from this owner (or at all) now; `message` says why."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


@dataclass
class BuildJob(BackgroundJob[BuildResult]):
    params: BakedParams
    owner: str = ""
    built: BuildResult | None = None  # the build's own result, known before its check ends
    check: CheckResult | None = None  # the load-and-run check after the build, when BuildOptions.check

    def set_built(self, built: BuildResult) -> None:
        with self._changed:
            self.built = built
            self._touch()

    def finish(self, result: BuildResult, check: CheckResult | None = None) -> None:
        with self._changed:
            self.result, self.check = result, check
            self._touch()


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
            # ids in the order of self.jobs; a rehearsal alone is headed as one ("Rehearsal failed")
            job = BuildJob(params, owner, kind="rehearsal" if options.rehearse_only else "build")
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
