"""IP-Adapter: on/off, weights and image encoder, tokens (4 regular, 16 Plus), type; the scale is a runtime value."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS, IPADAPTER_TOKEN_CHOICES, IPADAPTER_TYPE_CHOICES
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.text import label

FIELDS = ("use_ipadapter", "ipadapter_model_path", "ipadapter_encoder_path", "ipadapter_tokens", "ipadapter_type")


def render(form: Form) -> None:
    heading(form, "sec_ipadapter")
    form.add("use_ipadapter", gr.Checkbox(value=DEFAULTS.use_ipadapter, label=label("f_use_ipadapter")))
    with form.part("ipadapter_details", gr.Column(visible=DEFAULTS.use_ipadapter)):
        with gr.Row():
            for name in ("ipadapter_model_path", "ipadapter_encoder_path"):
                form.add(name, gr.Textbox(value=getattr(DEFAULTS, name), label=label(f"f_{name}")))
        with gr.Row():
            form.add(
                "ipadapter_tokens",
                gr.Radio(
                    list(IPADAPTER_TOKEN_CHOICES), value=DEFAULTS.ipadapter_tokens, label=label("f_ipadapter_tokens")
                ),
            )
            form.add(
                "ipadapter_type",
                gr.Radio(list(IPADAPTER_TYPE_CHOICES), value=DEFAULTS.ipadapter_type, label=label("f_ipadapter_type")),
            )
            form.part(
                "ipadapter_scale",
                gr.Textbox(
                    value=f"{form.runtime['ipadapter_scale']}", interactive=False, label=label("f_ipadapter_scale")
                ),
                label="f_ipadapter_scale",
            )
    footer(form, "ipadapter", FIELDS)


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    return {form.parts["ipadapter_details"]: gr.update(visible=bool(raw.get("use_ipadapter")))}
