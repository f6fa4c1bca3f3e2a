"""A job that runs in a thread of the server and that pages follow: its events, its result, Cancel.

Builds (board.py), setup and the self-test (the Environment tab) run this way: a page that closes stops following,
not the job; a page that opens can follow it from the start of its log. Followers in the event loop poll a version
counter (afollow) and hold no thread while they wait.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sdprep.jobs.job import JobResult
from sdprep.jobs.progress import JobEvent
from sdprep.messages import msg

R = TypeVar("R", bound=JobResult)
_ids = itertools.count(1)


@dataclass(kw_only=True)
class BackgroundJob(Generic[R]):
    kind: str = "job"  # what runs ("setup", "doctor"): its result is headed by it ("Self-test failed")
    id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.time)
    events: list[JobEvent] = field(default_factory=list)
    result: R | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    version: int = 0  # changes with every event and result: followers compare it instead of waiting on a thread
    # TensorRT's open phases as last reported (a "tensorrt" event; None when none is open): only the newest matters,
    # so these events replace one another here instead of filling `events`.
    tensorrt: JobEvent | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def running(self) -> bool:
        return self.result is None

    def _touch(self) -> None:
        self.version += 1
        self._changed.notify_all()

    def add(self, event: JobEvent) -> None:
        with self._changed:
            if event.kind == "tensorrt":
                self.tensorrt = event if event.phases else None
            else:
                self.events.append(event)
            self._touch()

    def set_result(self, result: R) -> None:
        with self._changed:
            self.result = result
            self._touch()

    def cancel(self) -> None:
        self.cancel_event.set()

    async def cancel_and_wait(self, wait: float, poll: float = 0.05) -> bool:
        """Cancel, then wait at most `wait` seconds for the result: whether the job ended. A job whose work ignores
        the request (a child that does not die, a step that cannot be interrupted) is not waited on past `wait`."""
        self.cancel()
        deadline = time.monotonic() + wait
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(poll)
        return not self.running

    def follow(self, interval: float = 0.3) -> Iterator[tuple[list[JobEvent], R | None]]:
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
                # Whether the result was there before this yield: the caller then draws it. A result set while the
                # caller drew the previous state gets one more round, so the last thing drawn is always the result.
                done = self.result is not None
                seen, quiet = self.version, 0.0
                yield None
                if done:
                    return
            await asyncio.sleep(poll)
            quiet += poll


def run_in_background(
    job: BackgroundJob[R],
    work: Callable[[Callable[[JobEvent], None], threading.Event], R],
    failed: Callable[[Exception], R],
) -> BackgroundJob[R]:
    """Run work(on_event, cancel) in a thread, feeding `job`; a bug still ends the job (pages would wait forever)."""

    def target() -> None:
        try:
            job.set_result(work(job.add, job.cancel_event))
        except Exception as problem:
            job.set_result(failed(problem))

    threading.Thread(target=target, name=f"job-{job.id}", daemon=True).start()
    return job


def internal_error(problem: Exception) -> JobResult:
    return JobResult("failed", msg("internal_error", type=type(problem).__name__, detail=str(problem)))
