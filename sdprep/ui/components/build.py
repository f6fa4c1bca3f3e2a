"""Build, Cancel and the live view of a build: stage and elapsed time, the growing log, then the result.

Builds run in the server's JobBoard (threads that outlive the page); the page only follows one. Build is wired
with concurrency_limit=1 and concurrency_id="gpu", so a second Build waits in Gradio's queue (which shows its
position); a build waiting on the JobBoard shows its position there. A page opened during a build follows it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.jobs.board import BuildJob
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.ui import present, state
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.text import label, t
from sdprep.validate import has_errors

CANCEL_WAIT = 15.0  # seconds Cancel waits for the build to stop before it answers
REDRAW_EVERY = 1.0  # seconds: the elapsed time moves even when the build says nothing
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
    form.part("progress", gr.Markdown(label("prog_idle"), label=label("o_progress"), elem_id="build-progress"))
    form.part("result", gr.Markdown("", label=label("o_result"), elem_id="build-result"))
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
        label="o_log",
    )
    form.part("check_result", gr.Markdown("", label=label("chk_heading"), elem_id="check-result"), label="chk_heading")
    form.part(
        "check_image",
        gr.Image(None, label=label("o_check_image"), type="filepath", interactive=False, visible=False, height=256),
        label="o_check_image",
    )
    form.part("job", gr.State(None))


def outputs(form: Form) -> list[Block]:
    return [form.parts[name] for name in ("job", "progress", "log", "result", "check_result", "check_image")]


def view(form: Form, job: BuildJob, lang: str) -> dict[Block, Any]:
    board = state.job_board()
    position = board.position(job) if job.running else 0
    return {
        form.parts["job"]: job.id,
        form.parts["progress"]: present.progress_markdown(job, position, lang),
        form.parts["log"]: present.log_text(list(job.events), lang),
        # The build's result shows as soon as it is known; its check may still be running.
        form.parts["result"]: present.result_markdown(job.result or job.built, lang),
        form.parts["check_result"]: present.check_markdown(job.check, lang),
        form.parts["check_image"]: gr.Image(
            value=str(image) if (image := job.check and job.check.image_path) else None, visible=bool(image)
        ),
    }


def follow(form: Form, job: BuildJob, lang: str) -> Iterator[dict[Block, Any]]:
    """The job's view whenever it changes (and every REDRAW_EVERY for the clock) until it has a result."""
    board = state.job_board()
    shown: tuple[int, bool, bool, int] | None = None
    shown_at = 0.0
    for events, result in job.follow():
        now = time.monotonic()
        key = (len(events), result is not None, job.built is not None, board.position(job) if result is None else 0)
        if key == shown and result is None and now - shown_at < REDRAW_EVERY:
            continue
        shown, shown_at = key, now
        yield view(form, job, lang)


def start(form: Form, values: dict[Block, Any]) -> Iterator[dict[Block, Any]]:
    lang = form.language(values)
    params = form.params(values)
    problems = check(params)
    if has_errors(problems):
        refused = BuildResult("refused", t("build_invalid", lang), problems=problems)
        yield {
            form.parts["progress"]: present.outcome_label("refused", lang),
            form.parts["log"]: "",
            form.parts["result"]: present.result_markdown(refused, lang),
        }
        return
    options = BuildOptions(
        child=state.child_spec(),
        force=bool(values.get(form.parts["force"])),
        check=bool(values.get(form.parts["check"])),
    )
    job = state.job_board().submit(params, form.runtime, options)
    yield from follow(form, job, lang)


def cancel(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """Cancel this page's build (the one it started or follows) and show how it ended."""
    lang = form.language(values)
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    if job is None:
        return {form.parts["progress"]: t("cancel_none", lang)}
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


def follow_on_load(form: Form, values: dict[Block, Any]) -> Iterator[dict[Block, Any]]:
    """A page that opens during a build follows it; otherwise it shows how the last build ended, if any."""
    board = state.job_board()
    job = board.current() or board.latest()
    if job is None:
        yield {form.parts["job"]: None}  # Gradio needs at least one output in a dict
        return
    yield from follow(form, job, form.language(values))


def redraw(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """The page's build view in the page's (new) language."""
    lang = form.language(values)
    job_id = values.get(form.parts["job"])
    job = state.job_board().get(job_id) if job_id else None
    if job is None:
        return {form.parts["progress"]: t("prog_idle", lang)}
    return view(form, job, lang)


def listen(form: Form) -> None:
    lang_input = {form.lang} if form.lang is not None else set()

    def build(values: dict[Block, Any]) -> Iterator[dict[Block, Any]]:
        yield from start(form, values)

    def cancel_build(values: dict[Block, Any]) -> dict[Block, Any]:
        return cancel(form, values)

    def follow_running(values: dict[Block, Any]) -> Iterator[dict[Block, Any]]:
        yield from follow_on_load(form, values)

    build_event = form.parts["build"].click(
        build,
        inputs={*form.inputs(), form.parts["force"], form.parts["check"], form.parts["job"]},
        outputs=outputs(form),
        api_name="build",
        concurrency_limit=1,
        concurrency_id="gpu",
        show_progress="full",
        show_progress_on=[form.parts["progress"]],
    )
    follow_event = form.events["page_load"].then(
        follow_running,
        inputs={form.parts["job"], *lang_input},
        outputs=outputs(form),
        api_name="follow",
        concurrency_limit=None,
        show_progress="hidden",
    )
    cancel_event = form.parts["cancel"].click(
        cancel_build,
        inputs={form.parts["job"], *lang_input},
        outputs=outputs(form),
        cancels=[build_event, follow_event],
        api_name="cancel",
        concurrency_limit=None,
    )
    form.events.update(build=build_event, follow=follow_event, cancel=cancel_event)
    form.parts["log"].change(None, js=FOLLOW_LOG_JS, show_progress="hidden", queue=False)

    if form.lang is not None:

        def redraw_build(values: dict[Block, Any]) -> dict[Block, Any]:
            return redraw(form, values)

        form.lang.change(
            redraw_build,
            inputs={form.parts["job"], form.lang},
            outputs=outputs(form),
            api_name="build_redraw",
            api_visibility="undocumented",
            show_progress="hidden",
            concurrency_limit=None,
        )
