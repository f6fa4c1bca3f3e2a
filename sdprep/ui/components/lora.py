"""LoRA: the user's own LoRAs as JSON; the hint shows the consistency LoRA that is added and the final lora_dict."""

from __future__ import annotations

import gradio as gr

from sdprep.params import DEFAULTS
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.text import label

FIELDS = ("lora_json",)


def render(form: Form) -> None:
    heading(form, "sec_lora")
    form.add(
        "lora_json",
        gr.Textbox(
            value=DEFAULTS.lora_json,
            lines=2,
            max_lines=8,
            placeholder='{"owner/lora": 0.8}',
            label=label("f_lora_json"),
            info=label("i_lora_json"),
        ),
        info=True,
    )
    footer(form, "lora", FIELDS)
