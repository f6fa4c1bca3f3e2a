"""The Environment tab: which build Python is used and why, what it can do (GPU, VRAM, CUDA, torch, TensorRT,
StreamDiffusion and its features), what is missing, and the two buttons that fix and prove it: "Set up the build
environment" (the `setup` command) and "Run the self-test" (`doctor`). Both stream their log with stages and elapsed
time and can be cancelled; they run in the server (one at a time) and a reopened page follows them.

Probing runs a child Python: page load shows the cached answer when there is one (and probes a machine never probed);
"Check again" probes afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.jobs.background import BackgroundJob, internal_error, run_in_background
from sdprep.jobs.environment import ProbeError, cached, probe
from sdprep.jobs.job import JobResult
from sdprep.jobs.process import build_venv
from sdprep.setup.doctor import run_doctor
from sdprep.setup.job import run_setup
from sdprep.setup.pins import CUDA_CHOICES, DEFAULT_FORK, FORKS
from sdprep.setup.plan import SetupRequest
from sdprep.text import t
from sdprep.ui import state
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views import environment as view_environment


def render(form: Form) -> None:
    gr.Markdown(label("env_intro"))
    # One button: the page probes a machine never probed on load, so the only thing left to ask is a fresh probe
    # (after installing a driver, torch or TensorRT by hand).
    form.part("env_check", gr.Button(label("btn_env_check"), elem_id="env-check", size="md"))
    form.part("environment", gr.Markdown(label("env_not_checked"), elem_id="environment"))
    gr.Markdown(label("sec_setup"), elem_classes=["sdprep-heading"])
    gr.Markdown(label("setup_intro"))
    with gr.Row(equal_height=True):
        form.part(
            "setup_cuda",
            gr.Dropdown(list(CUDA_CHOICES), value="auto", label=label("f_setup_cuda"), elem_id="setup-cuda"),
        )
        form.part(
            "setup_fork",
            gr.Dropdown(
                list(FORKS),
                value=DEFAULT_FORK,
                allow_custom_value=True,
                label=label("f_setup_fork"),
                info=label("i_setup_fork"),
                elem_id="setup-fork",
            ),
        )
        form.part("setup_upgrade", gr.Checkbox(value=False, label=label("f_setup_upgrade"), elem_id="setup-upgrade"))
    with gr.Row():
        form.part("setup", gr.Button(label("btn_setup"), variant="primary", elem_id="setup-button"))
        form.part("doctor", gr.Button(label("btn_doctor"), elem_id="doctor-button"))
        form.part(
            "setup_cancel", gr.Button(label("btn_cancel"), variant="stop", interactive=False, elem_id="setup-cancel")
        )
    form.part("setup_progress", gr.Markdown("", elem_id="setup-progress"))
    form.part(
        "setup_log",
        gr.Textbox(
            "",
            lines=10,
            max_lines=10,
            interactive=False,
            label=label("o_setup_log"),
            elem_id="setup-log",
            buttons=["copy"],
        ),
    )


def show(lang: str, refresh: bool | None) -> str:
    """refresh None: only the cached answer (page load); False: the cache or a probe; True: always a probe."""
    spec = state.child_spec()
    if refresh is None:
        environment = state.last_environment() or cached(spec)
        state.remember_environment(environment)
        return view_environment.environment_markdown(environment, None, lang)
    try:
        environment = probe(spec, refresh=refresh)
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
            cuda=str(values.get(form.parts["setup_cuda"]) or "auto"),
            fork=str(values.get(form.parts["setup_fork"]) or DEFAULT_FORK),
            upgrade=bool(values.get(form.parts["setup_upgrade"])),
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


def job_view(form: Form, job: BackgroundJob[JobResult], lang: str) -> dict[Block, Any]:
    return {
        form.parts["setup_progress"]: view_environment.job_progress(job, lang),
        form.parts["setup_log"]: view_environment.job_log(job, lang),
        form.parts["setup_cancel"]: gr.Button(interactive=job.running),
        form.parts["setup"]: gr.Button(interactive=not job.running),
        form.parts["doctor"]: gr.Button(interactive=not job.running),
    }


async def follow(form: Form, job: BackgroundJob[JobResult], lang: str) -> AsyncIterator[dict[Block, Any]]:
    async for _ in job.afollow():
        yield job_view(form, job, lang)
    # The machine changed (or was proven): probe it again so the tab, the banner and Build follow at once.
    environment = await asyncio.to_thread(show, lang, True)
    yield {**job_view(form, job, lang), form.parts["environment"]: environment}


def outputs(form: Form) -> list[Block]:
    names = ("setup_progress", "setup_log", "setup_cancel", "setup", "doctor", "environment")
    return [form.parts[name] for name in names]


def listen(form: Form) -> None:
    lang_input = form.language_input()
    output = form.parts["environment"]

    def probe_again(values: dict[Block, Any]) -> str:
        return show(form.language(values), refresh=True)

    def cached_environment(values: dict[Block, Any]) -> str:
        return show(form.language(values), refresh=None)

    def known_environment(values: dict[Block, Any]) -> str:
        """On page load: the remembered or cached answer; on a machine never probed, a probe (the banner needs it)."""
        lang = form.language(values)
        if state.last_environment() is None and cached(state.child_spec()) is None:
            return show(lang, refresh=False)
        return show(lang, refresh=None)

    form.events["probe_environment"] = form.get("env_check", gr.Button).click(
        probe_again,
        inputs=lang_input,
        outputs=output,
        api_name="probe_environment",
        concurrency_limit=1,
        concurrency_id="probe",
    )

    async def set_up(values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
        async for update in follow(form, start_job("setup", values, form), form.language(values)):
            yield update

    async def self_test(values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
        async for update in follow(form, start_job("doctor", values, form), form.language(values)):
            yield update

    def cancel_job(values: dict[Block, Any]) -> dict[Block, Any]:
        job = state.environment_job()
        if job is None:
            return {form.parts["setup_progress"]: t("cancel_none", form.language(values))}
        job.cancel()
        for _ in job.follow(interval=0.2):
            pass
        return job_view(form, job, form.language(values))

    async def follow_running(values: dict[Block, Any]) -> AsyncIterator[dict[Block, Any]]:
        job = state.environment_job()
        if job is not None and job.running:
            async for update in follow(form, job, form.language(values)):
                yield update
        else:
            yield {form.parts["setup_cancel"]: gr.Button(interactive=False)}

    setup_inputs = {form.parts["setup_cuda"], form.parts["setup_fork"], form.parts["setup_upgrade"], *lang_input}
    setup_event = form.get("setup", gr.Button).click(
        set_up,
        inputs=setup_inputs,
        outputs=outputs(form),
        api_name="setup",
        concurrency_limit=None,
        concurrency_id="setup",
    )
    doctor_event = form.get("doctor", gr.Button).click(
        self_test,
        inputs=lang_input,
        outputs=outputs(form),
        api_name="doctor",
        concurrency_limit=None,
        concurrency_id="setup",
    )
    form.get("setup_cancel", gr.Button).click(
        cancel_job,
        inputs=lang_input,
        outputs=[form.parts[name] for name in ("setup_progress", "setup_log", "setup_cancel", "setup", "doctor")],
        cancels=[setup_event, doctor_event],
        api_name="setup_cancel",
        concurrency_limit=None,
    )
    form.events["setup_environment"], form.events["doctor_environment"] = setup_event, doctor_event
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
    form.events["page_load"] = form.events["page_load"].then(
        known_environment,
        inputs=lang_input,
        outputs=output,
        api_name="cached_environment",
        show_progress="hidden",
        concurrency_limit=1,
        concurrency_id="probe",
    )
    form.events["page_load"].then(
        follow_running,
        inputs=lang_input,
        outputs=outputs(form),
        api_name="setup_follow",
        api_visibility="undocumented",
        show_progress="hidden",
        concurrency_limit=None,
        concurrency_id="setup",
    )
