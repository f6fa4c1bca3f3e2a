"""Checkpoint: the model (popular ids or any HF id / local path) and its family (auto shows what was detected).

An id one or two letters off a known or already prepared one gets a "did you mean" warning (validate) and, here, a
button that puts the known id in the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.model_ids import did_you_mean, known_ids
from sdprep.params import DEFAULTS, POPULAR_MODELS, choices_of
from sdprep.text import t
from sdprep.ui import state
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


@dataclass(frozen=True)
class Checkpoint:
    model_fix: gr.Button  # "Did you mean ...?": puts the known id in the field


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
                elem_classes=["sdprep-model"],
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
                elem_classes=["sdprep-family"],
            ),
        )
    form.checkpoint = Checkpoint(gr.Button("", visible=False, size="sm", elem_id="model-fix"))
    footer(form, "checkpoint")


def suggestion(model: object) -> str | None:
    return did_you_mean(str(model or ""), known_ids(state.engines_root()))


def listen(form: Form) -> None:
    model, fix = form.fields["model"], form.checkpoint.model_fix
    inputs = {model, *form.language_input()}

    def offer(values: dict[Block, Any]) -> dict[Block, Any]:
        meant = suggestion(values.get(model))
        text = t("btn_did_you_mean", form.language(values), suggestion=meant) if meant else ""
        return {fix: gr.Button(value=text, visible=meant is not None)}

    def take(values: dict[Block, Any]) -> dict[Block, Any]:
        meant = suggestion(values.get(model))
        return {model: meant if meant else gr.update(), fix: gr.Button(visible=False)}

    triggers = [model.change, *(lang.change for lang in form.language_input())]  # type: ignore[attr-defined]
    gr.on(
        triggers=triggers,
        fn=offer,
        inputs=inputs,
        outputs=[fix],
        api_name="model_suggestion",
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    fix.click(take, inputs=inputs, outputs=[model, fix], api_name="model_take_suggestion", show_progress="hidden")
