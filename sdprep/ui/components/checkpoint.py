"""Checkpoint: the model (popular ids or any HF id / local path) and its family (auto shows what was detected)."""

from __future__ import annotations

import gradio as gr

from sdprep.params import DEFAULTS, POPULAR_MODELS, choices_of
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


def render(form: Form) -> None:
    heading("sec_checkpoint")
    with gr.Row():
        form.add(
            "model",
            gr.Dropdown(
                choices=list(POPULAR_MODELS),
                value=DEFAULTS.model,
                allow_custom_value=True,
                label=label("f_model"),
                info=label("i_model"),
                scale=3,
            ),
        )
        form.add(
            "model_family",
            gr.Dropdown(
                choices=list(choices_of("model_family") or ()),
                value=DEFAULTS.model_family,
                label=label("f_model_family"),
                info=label("i_model_family"),
                scale=2,
            ),
        )
    footer(form, "checkpoint")
