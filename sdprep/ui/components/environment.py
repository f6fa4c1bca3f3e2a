"""The Environment tab: which build Python is used and why, what it can do (GPU, VRAM, CUDA, torch, TensorRT,
StreamDiffusion and its features) and what is missing to build, with how to get it. Probing runs a child Python, so
it happens only on request; page load shows the cached answer when there is one and never waits for a probe.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.jobs.environment import ProbeError, cached, probe
from sdprep.ui import state
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views.environment import environment_markdown


def render(form: Form) -> None:
    gr.Markdown(label("env_intro"))
    with gr.Row():
        form.part("env_check", gr.Button(label("btn_env_check"), variant="primary", elem_id="env-check"))
        form.part("env_refresh", gr.Button(label("btn_env_refresh"), elem_id="env-refresh"))
    form.part("environment", gr.Markdown(label("env_not_checked"), elem_id="environment"))


def show(lang: str, refresh: bool | None) -> str:
    """refresh None: only the cached answer (page load); False: the cache or a probe; True: always a probe."""
    spec = state.child_spec()
    if refresh is None:
        environment = state.last_environment() or cached(spec)
        state.remember_environment(environment)
        return environment_markdown(environment, None, lang)
    try:
        environment = probe(spec, refresh=refresh)
    except ProbeError as problem:
        return environment_markdown(None, problem.message, lang)
    state.remember_environment(environment)
    return environment_markdown(environment, None, lang)


def listen(form: Form) -> None:
    lang_input = {form.lang} if form.lang is not None else set()
    output = form.parts["environment"]

    def check_environment(values: dict[Block, Any]) -> str:
        return show(form.language(values), refresh=False)

    def probe_again(values: dict[Block, Any]) -> str:
        return show(form.language(values), refresh=True)

    def cached_environment(values: dict[Block, Any]) -> str:
        return show(form.language(values), refresh=None)

    for button, fn, name in (
        (form.parts["env_check"], check_environment, "probe_environment"),
        (form.parts["env_refresh"], probe_again, "reprobe_environment"),
    ):
        form.events[name] = button.click(
            fn, inputs=lang_input, outputs=output, api_name=name, concurrency_limit=1, concurrency_id="probe"
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
    form.events["page_load"] = form.events["page_load"].then(
        cached_environment,
        inputs=lang_input,
        outputs=output,
        api_name="cached_environment",
        show_progress="hidden",
        concurrency_limit=None,
    )
