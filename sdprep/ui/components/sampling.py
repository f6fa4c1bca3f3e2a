"""Sampling: denoising steps (-> t_index_list), consistency LoRA, the pipeline scheduler, CFG, frame buffer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS, choices_of
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


@dataclass(frozen=True)
class Sampling:
    scheduler_box: gr.Column  # the pipeline scheduler, shown only without a consistency LoRA
    advanced: gr.Accordion


def render(form: Form) -> None:
    heading("sec_sampling")
    form.add("denoise_steps")
    with gr.Row():
        form.add("consistency_lora")
        # Shown and hidden through its box: an input field given property updates costs the page's session a copy
        # of the field each time (docs/gradio-session-growth.md).
        with gr.Column(visible=DEFAULTS.consistency_lora == "none") as scheduler_box:
            form.add("scheduler")
    form.add(
        "cfg_type",
        gr.Dropdown(
            list(choices_of("cfg_type") or ()),
            value=DEFAULTS.cfg_type,
            label=label("f_cfg_type"),
            info=label("i_cfg_type"),
        ),
    )
    with gr.Accordion(label("advanced"), open=False) as advanced:
        form.add("frame_buffer_size")
    footer(form, "sampling")
    form.sampling = Sampling(scheduler_box, advanced)


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    """The pipeline scheduler matters only without a consistency LoRA (the LoRA decides it otherwise)."""
    return {form.sampling.scheduler_box: gr.update(visible=raw.get("consistency_lora") == "none")}
