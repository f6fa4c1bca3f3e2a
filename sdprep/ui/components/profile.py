"""Build profile: Flexible / Fast build / Quality / FP8, or its three fields by hand (static shapes, TensorRT's
optimisation level, FP8) in an expert accordion. The profile radio only sets those fields; the fields decide.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS
from sdprep.profiles import PROFILE_NAMES, profile_of, profile_values
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label

CUSTOM = "custom"


def render(form: Form) -> None:
    heading("sec_profile")
    choices = [(label(f"profile_{name}"), name) for name in (*PROFILE_NAMES, CUSTOM)]
    form.part(
        "profile",
        gr.Radio(
            choices,
            value=profile_of(DEFAULTS),
            label=label("f_profile"),
            info=label("i_profile"),
            elem_id="field-profile",
        ),
    )
    with form.part("profile_expert", gr.Accordion(label("profile_expert"), open=False)):
        form.add_rest("profile")
    footer(form, "profile")


def listen(form: Form) -> None:
    fields = [form.fields[name] for name in ("static_shapes", "opt_level", "fp8")]
    radio = form.parts["profile"]

    def apply(values: dict[Block, Any]) -> dict[Block, Any]:
        name = values.get(radio)
        if name not in PROFILE_NAMES:
            return {fields[0]: gr.update()}
        chosen = profile_values(name)
        return {form.fields[key]: value for key, value in chosen.items()}

    def name_of(values: dict[Block, Any]) -> str:
        chosen = {name: values.get(form.fields[name]) for name in ("static_shapes", "opt_level", "fp8")}
        return profile_of(replace(DEFAULTS, **chosen))

    # .input: only a person's choice; the fields' change then names the profile back (custom when none fits).
    radio.input(apply, inputs={radio}, outputs=fields, api_name="profile_apply", show_progress="hidden", queue=False)
    for component in fields:
        component.change(
            name_of,
            inputs=set(fields),
            outputs=radio,
            api_name=f"profile_name_{component.elem_id}",
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
