"""Engine output: the engines folder; each model gets <folder>/<model_slug>/ with its engines and config.yaml."""

from __future__ import annotations

import gradio as gr

from sdprep.params import DEFAULTS
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.text import label

FIELDS = ("engines_dir",)


def render(form: Form) -> None:
    heading(form, "sec_output")
    form.add(
        "engines_dir",
        gr.Textbox(value=DEFAULTS.engines_dir, label=label("f_engines_dir"), info=label("i_engines_dir")),
        info=True,
    )
    footer(form, "output", FIELDS)
