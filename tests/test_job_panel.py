"""The page's one job panel (sdprep/ui/components/job_panel.py), shared by Build (and its check), setup and the
self-test: Cancel answers by its deadline even when the job ignores it, saying that it is still stopping, and draws
how the job ended once it has."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import gradio as gr
import pytest

from sdprep.jobs.background import BackgroundJob, internal_error, run_in_background
from sdprep.jobs.board import BuildJob
from sdprep.jobs.build import BuildResult
from sdprep.jobs.job import JobResult
from sdprep.jobs.progress import JobEvent
from sdprep.messages import msg
from sdprep.params import DEFAULTS
from sdprep.text import t
from sdprep.ui.components import actions, build, environment
from sdprep.ui.form import Form
from testkit.timing import SUITE_TIMEOUT

from .conftest import runtime_defaults

T = TypeVar("T")
R = TypeVar("R", bound=JobResult)
DEADLINE = 0.2  # the panels' Cancel deadline here: the job below never meets it


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=SUITE_TIMEOUT))


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets a stubborn job end (every job of a test ends with it)."""
    event = threading.Event()
    yield event
    event.set()


def stubborn(release: threading.Event, result: R) -> Callable[[Callable[[JobEvent], None], threading.Event], R]:
    """Work that ignores Cancel until `release`, then ends with `result`."""

    def work(on_event: Callable[[JobEvent], None], cancel: threading.Event) -> R:
        release.wait(SUITE_TIMEOUT)
        return result

    return work


def page(*sections: Callable[[Form], None]) -> Form:
    form = Form(runtime_defaults())
    with gr.Blocks():
        for render in sections:
            render(form)
    return form


def test_cancel_and_wait_gives_up_at_its_deadline_on_a_job_that_ignores_cancel(release: threading.Event) -> None:
    job: BackgroundJob[JobResult] = BackgroundJob()
    run_in_background(job, stubborn(release, JobResult("cancelled", msg("unknown"))), internal_error)
    assert run(job.cancel_and_wait(DEADLINE)) is False
    assert job.running and job.cancel_event.is_set()
    release.set()
    assert run(job.cancel_and_wait(SUITE_TIMEOUT)) is True
    assert job.result is not None and job.result.outcome == "cancelled"


def test_cancel_and_wait_returns_as_soon_as_a_job_stops() -> None:
    job: BackgroundJob[JobResult] = BackgroundJob()

    def obeys(on_event: Callable[[JobEvent], None], cancel: threading.Event) -> JobResult:
        cancel.wait(SUITE_TIMEOUT)
        return JobResult("cancelled", msg("setup_cancelled", target="x"))

    run_in_background(job, obeys, internal_error)
    assert run(job.cancel_and_wait(SUITE_TIMEOUT)) is True


def test_the_environment_tabs_cancel_has_a_deadline(release: threading.Event) -> None:
    """Setup and the self-test once waited for their job with no deadline: a step that ignored Cancel held the
    request forever."""
    form = page(environment.render)
    job: BackgroundJob[JobResult] = BackgroundJob(kind="setup")
    run_in_background(
        job, stubborn(release, JobResult("cancelled", msg("setup_cancelled", target="x"))), internal_error
    )
    panel = replace(environment.panel(form, owner=True), cancel_wait=DEADLINE)
    tab = form.environment
    slow = run(panel.cancel(job, "en"))
    assert slow[tab.progress] == t("setup_cancel_slow", "en")
    assert slow[tab.cancel].interactive is True  # it still runs: Cancel may be pressed again
    release.set()
    ended = run(panel.cancel(job, "ru"))
    assert ended[tab.progress].startswith(t("out_setup_cancelled", "ru"))
    assert ended[tab.cancel].interactive is False and ended[tab.setup].interactive is True


def test_the_build_panels_cancel_says_a_stubborn_build_is_still_stopping(release: threading.Event) -> None:
    form = page(build.render, lambda form: actions.render_bar(form, "", build_enabled=True))
    job = BuildJob(DEFAULTS, kind="build")
    run_in_background(
        job,
        stubborn(release, BuildResult("cancelled", msg("build_cancelled"))),
        lambda problem: BuildResult("failed", msg("unknown")),
    )
    panel = replace(build.panel(form), cancel_wait=DEADLINE)
    slow = run(panel.cancel(job, "en"))
    assert slow[form.build.progress] == t("cancel_slow", "en")
    assert slow[form.bar.cancel].interactive is True and slow[form.build.job] == job.id
    release.set()
    ended = run(panel.cancel(job, "en"))
    assert ended[form.build.progress].startswith(t("out_cancelled", "en"))
    assert ended[form.bar.cancel].interactive is False


def test_a_follower_ends_on_the_jobs_result(release: threading.Event) -> None:
    form = page(environment.render)
    job: BackgroundJob[JobResult] = BackgroundJob(kind="doctor")
    run_in_background(job, stubborn(release, JobResult("passed", msg("unknown"))), internal_error)
    drawn: list[str] = []

    async def follow() -> None:
        async for update in environment.panel(form, owner=False).follow(job, "en"):
            drawn.append(update[form.environment.progress])
            release.set()

    run(follow())
    assert drawn[-1].startswith(t("out_doctor_passed", "en"))
