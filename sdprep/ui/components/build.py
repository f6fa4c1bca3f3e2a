"""Build, Cancel and the live view of a build: stage and elapsed time, the growing log, then the result.

Builds run in the server's JobBoard (threads that outlive the page); the page only follows one, with an async
generator in a lane of its own (concurrency_id "builds"), so builds waiting in any number hold no worker thread and
never crowd out form changes or Cancel. A page opened during a build follows it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.hub import TIMEOUT as HUB_TIMEOUT
from sdprep.jobs.board import BuildJob, BuildRefused
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.messages import has_errors, msg
from sdprep.text import t
from sdprep.ui import state
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views import jobs as view_jobs
from sdprep.ui.views.environment import build_blocked

CANCEL_WAIT = 15.0  # seconds Cancel waits for the build to stop before it answers
REDRAW_EVERY = 1.0  # seconds: the elapsed time moves even when the build says nothing
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


def render(form: Form) -> None:
    form.part("progress", gr.Markdown(label("prog_idle"), elem_id="build-progress"))
    form.part("result", gr.Markdown("", elem_id="build-result"))
    form.part(
        "log",
        gr.Textbox(
            "",
            lines=12,
            max_lines=12,
            autoscroll=True,
            interactive=False,
            label=label("o_log"),
            elem_id="build-log",
            buttons=["copy"],
        ),
    )
    form.part("check_result", gr.Markdown("", elem_id="check-result"))
    form.part(
        "check_image",
        gr.Image(
            None,
            label=label("o_check_image"),
            type="filepath",
            interactive=False,
            visible=False,
            height=256,
            elem_id="check-image",
        ),
    )
    form.part("job", gr.State(None))  # the id of the build this page started or follows (what Cancel stops)
    form.part("refused", gr.State(None))  # the BuildResult of a Build that was not started, while it is shown


def outputs(form: Form) -> list[Block]:
    names = ("job", "refused", "progress", "log", "result", "check_result", "check_image", "cancel")
    return [form.parts[name] for name in names]


def view(form: Form, job: BuildJob, lang: str) -> dict[Block, Any]:
    position = state.job_board().position(job) if job.running else 0
    image = job.check.image_path if job.check else None
    return {
        form.parts["job"]: job.id,
        form.parts["refused"]: None,
        form.parts["progress"]: view_jobs.progress_markdown(job, position, lang),
        form.parts["log"]: view_jobs.log_text(list(job.events), lang),
        # The build's result shows as soon as it is known; its check may still be running.
        form.parts["result"]: view_jobs.result_markdown(job.result or job.built, lang, job.kind),
        form.parts["check_result"]: view_jobs.check_markdown(job.check, lang),
        form.parts["check_image"]: gr.Image(value=str(image) if image else None, visible=bool(image)),
        form.parts["cancel"]: gr.Button(interactive=job.running),
    }


def cleared(form: Form, progress: str) -> dict[Block, Any]:
    """A page with no build of its own: the previous result is gone, Cancel has nothing to stop."""
    return {
        form.parts["job"]: None,
        form.parts["refused"]: None,
        form.parts["progress"]: progress,
        form.parts["log"]: "",
        form.parts["result"]: "",
        form.parts["check_result"]: "",
        form.parts["check_image"]: gr.Image(value=None, visible=False),
        form.parts["cancel"]: gr.Button(interactive=False),
    }


async def follow(form: Form, job: BuildJob, lang: str) -> AsyncIterator[dict[Block, Any]]:
    """The job's view whenever it changes (and every REDRAW_EVERY for the clock) until it has a result."""
    shown: tuple[int, int] | None = None
    shown_at = 0.0
    async for _ in job.afollow():  # its last round comes after the result is set: the page ends on the result
        now = time.monotonic()
        key = (job.version, state.job_board().position(job) if job.running else 0)
        if key == shown and job.running and now - shown_at < REDRAW_EVERY:
            continue
        shown, shown_at = key, now
        yield view(form, job, lang)


def idle_view(form: Form, values: dict[Block, Any], lang: str) -> dict[Block, Any]:
    """The build view emptied when another action answers (a result replaces the one before it); unchanged while
    this page's build runs."""
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    if job is not None and job.running:
        return {}
    return cleared(form, t("prog_idle", lang))


def refused_view(form: Form, values: dict[Block, Any], result: BuildResult, lang: str) -> dict[Block, Any]:
    """A build that was not started: its outcome and reason replace the view, while the page keeps following (and
    may still cancel) a build of its own that runs."""
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    updates = cleared(form, view_jobs.outcome_label(result.outcome, lang))
    del updates[form.parts["job"]]
    updates[form.parts["refused"]] = result
    updates[form.parts["result"]] = view_jobs.result_markdown(result, lang)
    updates[form.parts["cancel"]] = gr.Button(interactive=job is not None and job.running)
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
        force=bool(values.get(form.parts["force"])),
        check=bool(values.get(form.parts["check"])) and not rehearse_only,
        runtime_from=form.loaded(values),
        rehearse=bool(values.get(form.parts["rehearse"])),
        rehearse_only=rehearse_only,
    )
    try:
        job = state.job_board().submit(params, form.runtime, options, owner=owner)
    except BuildRefused as refused:
        yield refused_view(form, values, BuildResult("refused", refused.message), lang)
        return
    async for update in follow(form, job, lang):
        yield update


def cancel(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """Cancel this page's build (the one it started or follows) and show how it ended."""
    lang = form.language(values)
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    if job is None:
        return {**cleared(form, t("cancel_none", lang))}
    if job.running:
        job.cancel()
        deadline = time.monotonic() + CANCEL_WAIT
        for _ in job.follow(interval=0.2):
            if time.monotonic() > deadline:
                break
    updates = view(form, job, lang)
    if job.running:
        updates[form.parts["progress"]] = t("cancel_slow", lang)
    return updates


async def follow_on_load(form: Form, values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
    """A page that opens during a build follows it; otherwise it starts clean (results live in the library)."""
    job = state.job_board().current()
    lang = form.language(values)
    if job is None:
        yield cleared(form, t("prog_idle", lang))
        return
    async for update in follow(form, job, lang):
        yield update


def redraw(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """The page's build view in the page's (new) language."""
    lang = form.language(values)
    refused = values.get(form.parts["refused"])
    if isinstance(refused, BuildResult):
        return refused_view(form, values, refused, lang)
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    return view(form, job, lang) if job is not None else {form.parts["progress"]: t("prog_idle", lang)}


def listen(form: Form) -> None:
    lang_input = form.language_input()

    async def build(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        async for update in start(form, values, owner=request.session_hash or ""):
            yield update

    async def rehearse(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        async for update in start(form, values, owner=request.session_hash or "", rehearse_only=True):
            yield update

    def clear_message() -> dict[Block, Any]:
        return {form.parts["message"]: "", form.parts["message_said"]: []}

    def cancel_build(values: dict[Block, Any]) -> dict[Block, Any]:
        return cancel(form, values)

    async def follow_running(values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
        async for update in follow_on_load(form, values):
            yield update

    build_inputs = {*form.inputs(), form.parts["force"], form.parts["check"], form.parts["rehearse"], form.parts["job"]}
    build_event, rehearse_event = (
        form.get(button, gr.Button).click(
            handler,
            inputs=build_inputs,
            outputs=outputs(form),
            api_name=api_name,
            concurrency_limit=FOLLOWERS,
            concurrency_id="builds",
            show_progress="hidden",
        )
        for button, handler, api_name in (("build", build, "build"), ("rehearse_now", rehearse, "rehearse"))
    )
    # The build's view replaces what Save or Load said before it. An event of its own, so that the message box always
    # gets a plain value: the build's later updates would leave it out, and a component that gets a skipped output
    # and later a plain value adds a copy of itself to the page's session (docs/gradio-session-growth.md).
    for button, api_name in (("build", "build"), ("rehearse_now", "rehearse")):
        form.get(button, gr.Button).click(
            clear_message,
            outputs=[form.parts["message"], form.parts["message_said"]],
            api_name=f"{api_name}_clear_message",
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
    follow_event = form.events["page_load"].then(
        follow_running,
        inputs={form.parts["job"], *lang_input},
        outputs=outputs(form),
        api_name="follow",
        concurrency_limit=FOLLOWERS,
        concurrency_id="builds",
        show_progress="hidden",
    )
    cancel_event = form.get("cancel", gr.Button).click(
        cancel_build,
        inputs={form.parts["job"], *lang_input},
        outputs=outputs(form),
        cancels=[build_event, rehearse_event, follow_event],
        api_name="cancel",
        concurrency_limit=None,
        concurrency_id="cancel",
    )
    form.events.update(build=build_event, rehearse=rehearse_event, follow=follow_event, cancel=cancel_event)
    form.get("log", gr.Textbox).change(None, js=FOLLOW_LOG_JS, show_progress="hidden", queue=False)
    if form.lang is not None:

        def redraw_build(values: dict[Block, Any]) -> dict[Block, Any]:
            return redraw(form, values)

        form.lang.change(
            redraw_build,
            inputs={form.parts["job"], form.parts["refused"], form.lang},
            outputs=outputs(form),
            api_name="build_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
