"""How the page shows a job that runs in the server: follow it, cancel it with a deadline, draw it again.

Builds (with their check), setup and the self-test run in threads of the server (jobs/background.py) and outlive the
page. A page follows one with an async generator, which holds no worker thread while it waits; Cancel asks the job to
stop and answers once it has, or after CANCEL_WAIT at most, saying that it is still stopping (a job may not stop at
once: a child that ignores its signal, a step that cannot be interrupted). The same for every job: only its view
differs (`draw`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gradio as gr
from gradio.blocks import Block

from sdprep.jobs.background import BackgroundJob
from sdprep.text import t

CANCEL_WAIT = 15.0  # seconds Cancel waits for the job to stop before it answers
REDRAW_EVERY = 1.0  # seconds: the elapsed time moves even when the job says nothing

J = TypeVar("J", bound=BackgroundJob[Any])


def no_queue(job: BackgroundJob[Any]) -> int:
    return 0


@dataclass(frozen=True)
class JobPanel(Generic[J]):
    """A job's view on the page: `draw(job, lang)` gives every update of it (Cancel's button included)."""

    draw: Callable[[J, str], dict[Block, Any]]
    progress: gr.Markdown  # where "still stopping" is said when Cancel's deadline passes
    still_stopping: str  # that sentence's key in the message tables
    position: Callable[[J], int] = no_queue  # the job's place in a queue: a change of it is drawn too
    cancel_wait: float = CANCEL_WAIT

    async def follow(self, job: J, lang: str) -> AsyncIterator[dict[Block, Any]]:
        """The job's view whenever it changes (and every REDRAW_EVERY for the clock) until it has a result, which is
        the last thing drawn."""
        shown: tuple[int, int] | None = None
        shown_at = 0.0
        async for _ in job.afollow():
            now = time.monotonic()
            key = (job.version, self.position(job) if job.running else 0)
            if key == shown and job.running and now - shown_at < REDRAW_EVERY:
                continue
            shown, shown_at = key, now
            yield self.draw(job, lang)

    async def cancel(self, job: J, lang: str) -> dict[Block, Any]:
        """Cancel the job and draw how it ended; at the deadline, draw it as it is and say that it is still stopping
        (Cancel stays enabled: the job still runs)."""
        stopped = await job.cancel_and_wait(self.cancel_wait)
        updates = self.draw(job, lang)
        if not stopped:
            updates[self.progress] = t(self.still_stopping, lang)
        return updates

    def redraw(self, job: J, lang: str) -> dict[Block, Any]:
        """The job's view in the page's (new) language."""
        return self.draw(job, lang)
