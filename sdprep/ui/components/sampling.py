"""Sampling: denoising steps (-> t_index_list), consistency LoRA, the pipeline scheduler, CFG, frame buffer."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import (
    CFG_TYPE_CHOICES,
    CONSISTENCY_LORA_CHOICES,
    DEFAULTS,
    FRAME_BUFFER_RANGE,
    SCHEDULER_CHOICES,
    STEPS_RANGE,
)
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.text import label

FIELDS = ("denoise_steps", "consistency_lora", "scheduler", "cfg_type", "frame_buffer_size")


def render(form: Form) -> None:
    heading(form, "sec_sampling")
    form.add(
        "denoise_steps",
        gr.Slider(
            *STEPS_RANGE,
            step=1,
            precision=0,
            value=DEFAULTS.denoise_steps,
            label=label("f_denoise_steps"),
            info=label("i_denoise_steps"),
        ),
        info=True,
    )
    with gr.Row():
        form.add(
            "consistency_lora",
            gr.Radio(
                list(CONSISTENCY_LORA_CHOICES),
                value=DEFAULTS.consistency_lora,
                label=label("f_consistency_lora"),
                info=label("i_consistency_lora"),
            ),
            info=True,
        )
        form.add(
            "scheduler",
            gr.Radio(
                list(SCHEDULER_CHOICES),
                value=DEFAULTS.scheduler,
                label=label("f_scheduler"),
                visible=DEFAULTS.consistency_lora == "none",
            ),
        )
    form.add(
        "cfg_type",
        gr.Dropdown(
            list(CFG_TYPE_CHOICES), value=DEFAULTS.cfg_type, label=label("f_cfg_type"), info=label("i_cfg_type")
        ),
        info=True,
    )
    with form.part("sampling_advanced", gr.Accordion(label("advanced"), open=False), label="advanced"):
        form.add(
            "frame_buffer_size",
            gr.Slider(
                *FRAME_BUFFER_RANGE,
                step=1,
                precision=0,
                value=DEFAULTS.frame_buffer_size,
                label=label("f_frame_buffer_size"),
            ),
        )
    footer(form, "sampling", FIELDS)


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    """The pipeline scheduler matters only without a consistency LoRA (the LoRA decides it otherwise)."""
    return {form.fields["scheduler"]: gr.update(visible=raw.get("consistency_lora") == "none")}
