"""The Environment tab: which build Python is used and why, what it can do (GPU, VRAM, CUDA, torch, TensorRT,
StreamDiffusion and its features), what is missing, and the two buttons that fix and prove it: "Set up the build
environment" (the `setup` command) and "Run the self-test" (`doctor`). Both stream their log with stages and elapsed
time and can be cancelled; they run in the server (one at a time) and a reopened page follows them. Setup installs
software, so only the machine's own user may start it (sdprep.ui.access); others see it disabled with the reason.

Probing runs a child Python: page load shows the cached answer when there is one (and probes a machine never probed)
and never waits behind queued "Check again" clicks, which probe afresh (the server's ProbeLane runs one probe at a
time and merges the clicks that wait).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.jobs.background import BackgroundJob, internal_error, run_in_background
from sdprep.jobs.environment import ProbeError, cached
from sdprep.jobs.job import JobResult
from sdprep.jobs.process import build_venv
from sdprep.messages import Message, msg
from sdprep.setup.doctor import run_doctor
from sdprep.setup.job import run_setup
from sdprep.setup.pins import CUDA_CHOICES, DEFAULT_FORK, FORKS
from sdprep.setup.plan import SetupRequest
from sdprep.text import t, word
from sdprep.ui import state
from sdprep.ui.access import is_owner, owner_only
from sdprep.ui.components.job_panel import JobPanel
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views import environment as view_environment


@dataclass(frozen=True)
class EnvironmentTab:
    """What the build Python can do, and setting it up or proving it, with the running job's view."""

    check: gr.Button  # Check again: a fresh probe
    view: gr.Markdown  # the probe's answer
    cuda: gr.Dropdown
    fork: gr.Dropdown
    upgrade: gr.Checkbox
    setup: gr.Button
    doctor: gr.Button
    cancel: gr.Button
    access: gr.Markdown  # why this client may not set up
    progress: gr.Markdown
    log: gr.Textbox


def render(form: Form) -> None:
    gr.Markdown(label("env_intro"))
    # One button: the page probes a machine never probed on load, so the only thing left to ask is a fresh probe
    # (after installing a driver, torch or TensorRT by hand).
    check_again = gr.Button(label("btn_env_check"), elem_id="env-check", size="md")
    view = gr.Markdown(label("env_not_checked"), elem_id="environment")
    gr.Markdown(label("sec_setup"), elem_classes=["sdprep-heading"])
    gr.Markdown(label("setup_intro"))
    with gr.Row(equal_height=True):
        cuda = gr.Dropdown(list(CUDA_CHOICES), value="auto", label=label("f_setup_cuda"), elem_id="setup-cuda")
        fork = gr.Dropdown(
            list(FORKS),
            value=DEFAULT_FORK,
            allow_custom_value=False,  # a fork by git URL: the command line's setup --fork (sdprep.ui.access)
            label=label("f_setup_fork"),
            info=label("i_setup_fork"),
            elem_id="setup-fork",
        )
        upgrade = gr.Checkbox(value=False, label=label("f_setup_upgrade"), elem_id="setup-upgrade")
    with gr.Row():
        setup = gr.Button(label("btn_setup"), variant="primary", elem_id="setup-button")
        doctor = gr.Button(label("btn_doctor"), elem_id="doctor-button")
        cancel = gr.Button(label("btn_cancel"), variant="stop", interactive=False, elem_id="setup-cancel")
    access = gr.Markdown("", visible=False, elem_id="setup-access")
    progress = gr.Markdown("", elem_id="setup-progress")
    log = gr.Textbox(
        "",
        lines=10,
        max_lines=10,
        interactive=False,
        label=label("o_setup_log"),
        elem_id="setup-log",
        buttons=["copy"],
    )
    form.environment = EnvironmentTab(
        check_again, view, cuda, fork, upgrade, setup, doctor, cancel, access, progress, log
    )


def show(lang: str) -> str:
    """The remembered or cached answer only (a language switch): never waits on a probe."""
    environment = state.last_environment() or cached(state.child_spec())
    state.remember_environment(environment)
    return view_environment.environment_markdown(environment, None, lang)


async def probed(lang: str, fresh: bool) -> str:
    """The answer of the server's probe lane (one probe at a time, duplicates merged); `fresh`: one that starts
    after this request (Probe again), else the cache when it holds an answer, else the running or next probe."""
    spec = state.child_spec()
    if not fresh:
        hit = state.last_environment() if state.last_environment() is not None else cached(spec)
        if hit is not None:
            state.remember_environment(hit)
            return view_environment.environment_markdown(hit, None, lang)
    try:
        environment = await asyncio.wrap_future(state.probe_lane().request(spec, fresh=fresh))
    except ProbeError as problem:
        return view_environment.environment_markdown(None, problem.message, lang)
    state.remember_environment(environment)
    return view_environment.environment_markdown(environment, None, lang)


def start_job(kind: str, values: dict[Block, Any], form: Form) -> BackgroundJob[JobResult]:
    """The running setup or self-test if there is one (one at a time per server), else a new one."""
    running = state.environment_job()
    if running is not None and running.running:
        return running
    if kind == "setup":
        request = SetupRequest(
            target=str(build_venv()),
            cuda=str(values.get(form.environment.cuda) or "auto"),
            fork=str(values.get(form.environment.fork) or DEFAULT_FORK),
            upgrade=bool(values.get(form.environment.upgrade)),
            gpu=state.child_spec().gpu,
        )
        job: BackgroundJob[JobResult] = run_in_background(
            BackgroundJob(kind="setup"), lambda on_event, cancel: run_setup(request, on_event, cancel), internal_error
        )
    else:
        spec = state.child_spec()
        job = run_in_background(
            BackgroundJob(kind="doctor"), lambda on_event, cancel: run_doctor(spec, on_event, cancel), internal_error
        )
    state.remember_environment_job(job)
    return job


def refusal(values: dict[Block, Any], form: Form, request: gr.Request | None) -> Message | None:
    """Why this request may not start setup: not the machine's own user, or a fork the page does not offer."""
    fork = str(values.get(form.environment.fork) or DEFAULT_FORK)
    if fork not in FORKS:
        return msg("setup_fork_not_offered", names=list(FORKS))
    return owner_only("setup", request)


def access_view(form: Form, owner: bool, lang: str, running: bool = False) -> dict[Block, Any]:
    """The setup controls as this client may use them: disabled, with the reason, for anyone but the owner."""
    reason = None if owner else owner_only("setup", None)
    return {
        form.environment.setup: gr.Button(interactive=owner and not running),
        form.environment.cuda: gr.Dropdown(interactive=owner),
        form.environment.fork: gr.Dropdown(interactive=owner),
        form.environment.upgrade: gr.Checkbox(interactive=owner),
        form.environment.access: gr.Markdown(word(reason, lang) if reason else "", visible=reason is not None),
    }


def job_view(form: Form, job: BackgroundJob[JobResult], lang: str, owner: bool) -> dict[Block, Any]:
    return {
        form.environment.progress: view_environment.job_progress(job, lang),
        form.environment.log: view_environment.job_log(job, lang),
        form.environment.cancel: gr.Button(interactive=job.running),
        form.environment.setup: gr.Button(interactive=owner and not job.running),
        form.environment.doctor: gr.Button(interactive=not job.running),
    }


def panel(form: Form, owner: bool) -> JobPanel[BackgroundJob[JobResult]]:
    """The setup or self-test as this client sees it (Set up enabled for the machine's own user only)."""

    def draw(job: BackgroundJob[JobResult], lang: str) -> dict[Block, Any]:
        return job_view(form, job, lang, owner)

    return JobPanel(draw, form.environment.progress, "setup_cancel_slow")


async def follow(form: Form, job: BackgroundJob[JobResult], lang: str, owner: bool) -> AsyncIterator[dict[Block, Any]]:
    async for update in panel(form, owner).follow(job, lang):
        yield update
    # The machine changed (or was proven): probe it again so the tab, the banner and Build follow at once.
    environment = await probed(lang, fresh=True)
    yield {**job_view(form, job, lang, owner), form.environment.view: environment}


def outputs(form: Form) -> list[Block]:
    tab = form.environment
    return [tab.progress, tab.log, tab.cancel, tab.setup, tab.doctor, tab.view]


def listen(form: Form) -> None:
    lang_input = form.language_input()
    output = form.environment.view

    async def probe_again(values: dict[Block, Any]) -> str:
        return await probed(form.language(values), fresh=True)

    def cached_environment(values: dict[Block, Any]) -> str:
        return show(form.language(values))

    async def known_environment(values: dict[Block, Any]) -> str:
        """On page load: the remembered or cached answer, at once; on a machine never probed, the lane's probe (the
        banner needs it), shared with every other page that loads meanwhile."""
        return await probed(form.language(values), fresh=False)

    # Probes wait in the server's ProbeLane (one at a time, duplicates merged), not in a Gradio queue: a click
    # awaits its probe without holding a worker thread, and no page load waits behind queued clicks.
    form.events.probe_environment = form.environment.check.click(
        probe_again,
        inputs=lang_input,
        outputs=output,
        api_name="probe_environment",
        concurrency_limit=None,
        concurrency_id="probe",
    )

    async def set_up(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        lang = form.language(values)
        refused = refusal(values, form, request)
        if refused is not None:  # the page disables the button; this is for requests sent without it
            yield {form.environment.progress: word(refused, lang)}
            return
        async for update in follow(form, start_job("setup", values, form), lang, owner=True):
            yield update

    async def self_test(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        async for update in follow(form, start_job("doctor", values, form), form.language(values), is_owner(request)):
            yield update

    async def cancel_job(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        job = state.environment_job()
        if job is None:
            return {form.environment.progress: t("cancel_none", form.language(values))}
        return await panel(form, is_owner(request)).cancel(job, form.language(values))

    def redraw_job(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        job = state.environment_job()
        return panel(form, is_owner(request)).redraw(job, form.language(values)) if job is not None else {}

    async def follow_running(values: dict[Block, Any], request: gr.Request) -> AsyncIterator[dict[Block, Any]]:
        job = state.environment_job()
        if job is not None and job.running:
            async for update in follow(form, job, form.language(values), is_owner(request)):
                yield update
        else:
            yield {form.environment.cancel: gr.Button(interactive=False)}

    def access(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        job = state.environment_job()
        return access_view(form, is_owner(request), form.language(values), job is not None and job.running)

    setup_inputs = {form.environment.cuda, form.environment.fork, form.environment.upgrade, *lang_input}
    setup_event = form.environment.setup.click(
        set_up,
        inputs=setup_inputs,
        outputs=outputs(form),
        api_name="setup",
        concurrency_limit=None,
        concurrency_id="setup",
    )
    doctor_event = form.environment.doctor.click(
        self_test,
        inputs=lang_input,
        outputs=outputs(form),
        api_name="doctor",
        concurrency_limit=None,
        concurrency_id="setup",
    )
    form.environment.cancel.click(
        cancel_job,
        inputs=lang_input,
        outputs=outputs(form)[:-1],  # not the probe's answer
        cancels=[setup_event, doctor_event],
        api_name="setup_cancel",
        concurrency_limit=None,
    )
    form.events.setup_environment, form.events.doctor_environment = setup_event, doctor_event
    if form.lang is not None:
        form.lang.change(
            redraw_job,
            inputs=lang_input,
            outputs=outputs(form)[:-1],
            api_name="setup_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
    if form.lang is not None:
        form.lang.change(
            cached_environment,
            inputs=lang_input,
            outputs=output,
            api_name="environment_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
    # Before the preview's load handler: the banner and Build follow the cached environment from the first paint.
    form.events.page_load = form.events.loaded().then(
        known_environment,
        inputs=lang_input,
        outputs=output,
        api_name="cached_environment",
        show_progress="hidden",
        concurrency_limit=None,
        concurrency_id="environment_view",
    )
    tab = form.environment
    access_outputs: list[Block] = [tab.setup, tab.cuda, tab.fork, tab.upgrade, tab.access]
    form.events.loaded().then(
        access,
        inputs=lang_input,
        outputs=access_outputs,
        api_name="setup_access",
        api_visibility="undocumented",
        show_progress="hidden",
        concurrency_limit=None,
    )
    if form.lang is not None:
        form.lang.change(
            access,
            inputs=lang_input,
            outputs=access_outputs,
            api_name="setup_access_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
    form.events.loaded().then(
        follow_running,
        inputs=lang_input,
        outputs=outputs(form),
        api_name="setup_follow",
        api_visibility="undocumented",
        show_progress="hidden",
        concurrency_limit=None,
        concurrency_id="setup",
    )
