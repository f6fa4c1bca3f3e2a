"""Build, Cancel and the live view of a build: stage and elapsed time, the growing log, then the result.

Builds run in the server's JobBoard (threads that outlive the page); the page only follows one, with an async
generator in a lane of its own (concurrency_id "builds"), so builds waiting in any number hold no worker thread and
never crowd out form changes or Cancel. A page opened during a build follows it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.hub import TIMEOUT as HUB_TIMEOUT
from sdprep.jobs.board import BuildJob, BuildRefused
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.messages import has_errors, msg
from sdprep.text import t
from sdprep.ui import state
from sdprep.ui.components.job_panel import JobPanel
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views import jobs as view_jobs
from sdprep.ui.views.environment import build_blocked

FOLLOWERS = 1000  # pages following builds at once; each costs a coroutine, not a thread
# Keep the log at its newest line, unless the reader scrolled up to read (Textbox autoscroll does not do it
# for a read-only box in Gradio 6).
FOLLOW_LOG_JS = """() => {
  const box = document.querySelector('#build-log textarea');
  if (!box) return;
  if (!box.dataset.sdprepFollow) {
    box.dataset.sdprepFollow = '1';
    box.addEventListener('scroll', () => {
      box.dataset.sdprepFollow = box.scrollTop + box.clientHeight >= box.scrollHeight - 30 ? '1' : '0';
    });
  }
  if (box.dataset.sdprepFollow === '1') setTimeout(() => { box.scrollTop = box.scrollHeight; }, 30);
}"""


@dataclass(frozen=True)
class BuildPanel:
    """The live view of this page's build and its check, and which build that is."""

    progress: gr.Markdown
    result: gr.Markdown
    log: gr.Textbox
    check_result: gr.Markdown
    check_image: gr.Image
    job: gr.State  # the id of the build this page started or follows (what Cancel stops)
    refused: gr.State  # the BuildResult of a Build that was not started, while it is shown


def render(form: Form) -> None:
    progress = gr.Markdown(label("prog_idle"), elem_id="build-progress")
    result = gr.Markdown("", elem_id="build-result")
    log = gr.Textbox(
        "",
        lines=12,
        max_lines=12,
        autoscroll=True,
        interactive=False,
        label=label("o_log"),
        elem_id="build-log",
        buttons=["copy"],
    )
    check_result = gr.Markdown("", elem_id="check-result")
    check_image = gr.Image(
        None,
        label=label("o_check_image"),
        type="filepath",
        interactive=False,
        visible=False,
        height=256,
        elem_id="check-image",
    )
    form.build = BuildPanel(progress, result, log, check_result, check_image, gr.State(None), gr.State(None))


def outputs(form: Form) -> list[Block]:
    panel = form.build
    return [
        panel.job,
        panel.refused,
        panel.progress,
        panel.log,
        panel.result,
        panel.check_result,
        panel.check_image,
        form.bar.cancel,
    ]


def view(form: Form, job: BuildJob, lang: str) -> dict[Block, Any]:
    position = state.job_board().position(job) if job.running else 0
    image = job.check.image_path if job.check else None
    return {
        form.build.job: job.id,
        form.build.refused: None,
        form.build.progress: view_jobs.progress_markdown(job, position, lang),
        form.build.log: view_jobs.log_text(list(job.events), lang),
        # The build's result shows as soon as it is known; its check may still be running.
        form.build.result: view_jobs.result_markdown(job.result or job.built, lang, job.kind),
        form.build.check_result: view_jobs.check_markdown(job.check, lang),
        form.build.check_image: gr.Image(value=str(image) if image else None, visible=bool(image)),
        form.bar.cancel: gr.Button(interactive=job.running),
    }


def cleared(form: Form, progress: str) -> dict[Block, Any]:
    """A page with no build of its own: the previous result is gone, Cancel has nothing to stop."""
    return {
        form.build.job: None,
        form.build.refused: None,
        form.build.progress: progress,
        form.build.log: "",
        form.build.result: "",
        form.build.check_result: "",
        form.build.check_image: gr.Image(value=None, visible=False),
        form.bar.cancel: gr.Button(interactive=False),
    }


def panel(form: Form) -> JobPanel[BuildJob]:
    """A build (and its check) as the page shows it; its place in the board's queue is drawn too."""

    def draw(job: BuildJob, lang: str) -> dict[Block, Any]:
        return view(form, job, lang)

    return JobPanel(draw, form.build.progress, "cancel_slow", position=state.job_board().position)


def idle_view(form: Form, values: dict[Block, Any], lang: str) -> dict[Block, Any]:
    """The build view emptied when another action answers (a result replaces the one before it); unchanged while
    this page's build runs."""
    job_id = values.get(form.build.job)
    job = state.job_board().get(job_id) if job_id else None
    if job is not None and job.running:
        return {}
    return cleared(form, t("prog_idle", lang))


def refused_view(form: Form, values: dict[Block, Any], result: BuildResult, lang: str) -> dict[Block, Any]:
    """A build that was not started: its outcome and reason replace the view, while the page keeps following (and
    may still cancel) a build of its own that runs."""
    job_id = values.get(form.build.job)
    job = state.job_board().get(job_id) if job_id else None
    updates = cleared(form, view_jobs.outcome_label(result.outcome, lang))
    del updates[form.build.job]
    updates[form.build.refused] = result
    updates[form.build.result] = view_jobs.result_markdown(result, lang)
    updates[form.bar.cancel] = gr.Button(interactive=job is not None and job.running)
    return updates


async def start(
    form: Form, values: dict[Block, Any], owner: str, rehearse_only: bool = False
) -> AsyncIterator[dict[Block, Any]]:
    """Build (or, with `rehearse_only`, only rehearse) the form's parameters in the board, and follow it."""
    lang = form.language(values)
    params = form.params(values)
    problems = check(params, hub_wait=HUB_TIMEOUT)
    blocked = "" if rehearse_only else build_blocked(state.last_environment(), lang)
    if has_errors(problems) or blocked:
        reason = msg("build_invalid") if not blocked else msg("build_blocked_env")
        yield refused_view(form, values, BuildResult("refused", reason, problems=problems), lang)
        return
    options = BuildOptions(
        child=state.child_spec(),
        force=bool(values.get(form.actions.force)),
        check=bool(values.get(form.actions.check)) and not rehearse_only,
        runtime_from=form.loaded(values),
        rehearse=bool(values.get(form.actions.rehearse_first)),
        rehearse_only=rehearse_only,
    )
    try:
        job = state.job_board().submit(params, form.runtime, options, owner=owner)
    except BuildRefused as refused:
        yield refused_view(form, values, BuildResult("refused", refused.message), lang)
        return
    async for update in panel(form).follow(job, lang):
        yield update


async def cancel(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """Cancel this page's build (the one it started or follows) and show how it ended."""
    lang = form.language(values)
    job_id = values.get(form.build.job)
    job = state.job_board().get(job_id) if job_id else None
    if job is None:
        return {**cleared(form, t("cancel_none", lang))}
    return await panel(form).cancel(job, lang)


async def follow_on_load(form: Form, values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
    """A page that opens during a build follows it; otherwise it starts clean (results live in the library)."""
    job = state.job_board().current()
    lang = form.language(values)
    if job is None:
        yield cleared(form, t("prog_idle", lang))
        return
    async for update in panel(form).follow(job, lang):
        yield update


def redraw(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """The page's build view in the page's (new) language."""
    lang = form.language(values)
    refused = values.get(form.build.refused)
    if isinstance(refused, BuildResult):
        return refused_view(form, values, refused, lang)
    job_id = values.get(form.build.job)
    job = state.job_board().get(job_id) if job_id else None
    return panel(form).redraw(job, lang) if job is not None else {form.build.progress: t("prog_idle", lang)}


def listen(form: Form) -> None:
    lang_input = form.language_input()

    async def build(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        async for update in start(form, values, owner=request.session_hash or ""):
            yield update

    async def rehearse(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        async for update in start(form, values, owner=request.session_hash or "", rehearse_only=True):
            yield update

    def clear_message() -> dict[Block, Any]:
        return form.actions.message.cleared()

    async def cancel_build(values: dict[Block, Any]) -> dict[Block, Any]:
        return await cancel(form, values)

    async def follow_running(values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
        async for update in follow_on_load(form, values):
            yield update

    build_inputs = {*form.inputs(), form.actions.force, form.actions.check, form.actions.rehearse_first, form.build.job}
    build_event, rehearse_event = (
        button.click(
            handler,
            inputs=build_inputs,
            outputs=outputs(form),
            api_name=api_name,
            concurrency_limit=FOLLOWERS,
            concurrency_id="builds",
            show_progress="hidden",
        )
        for button, handler, api_name in ((form.bar.build, build, "build"), (form.bar.rehearse, rehearse, "rehearse"))
    )
    # The build's view replaces what Save or Load said before it. An event of its own, so that the message box always
    # gets a plain value: the build's later updates would leave it out, and a component that gets a skipped output
    # and later a plain value adds a copy of itself to the page's session (docs/gradio-session-growth.md).
    for button, api_name in ((form.bar.build, "build"), (form.bar.rehearse, "rehearse")):
        button.click(
            clear_message,
            outputs=form.actions.message.outputs(),
            api_name=f"{api_name}_clear_message",
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
    follow_event = form.events.loaded().then(
        follow_running,
        inputs={form.build.job, *lang_input},
        outputs=outputs(form),
        api_name="follow",
        concurrency_limit=FOLLOWERS,
        concurrency_id="builds",
        show_progress="hidden",
    )
    cancel_event = form.bar.cancel.click(
        cancel_build,
        inputs={form.build.job, *lang_input},
        outputs=outputs(form),
        cancels=[build_event, rehearse_event, follow_event],
        api_name="cancel",
        concurrency_limit=None,
        concurrency_id="cancel",
    )
    form.events.build, form.events.rehearse = build_event, rehearse_event
    form.events.follow, form.events.cancel = follow_event, cancel_event
    form.build.log.change(None, js=FOLLOW_LOG_JS, show_progress="hidden", queue=False)
    if form.lang is not None:

        def redraw_build(values: dict[Block, Any]) -> dict[Block, Any]:
            return redraw(form, values)

        form.lang.change(
            redraw_build,
            inputs={form.build.job, form.build.refused, form.lang},
            outputs=outputs(form),
            api_name="build_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
