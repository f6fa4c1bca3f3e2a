"""Build profile: Flexible / Fast build / Quality / FP8, or its three fields by hand (static shapes, TensorRT's
optimisation level, FP8) in an expert accordion. The profile radio only sets those fields; the fields decide.

What the last probed StreamDiffusion and GPU can build decides what is offered (`availability`, run with the live
preview): a config loader that ignores the profile keys leaves only Flexible (Gradio cannot disable one radio
choice, so the radio is locked with the reason in its info); FP8 without its GPU or ModelOpt locks the FP8 field
with its reason. A locked field still opens when it holds a value that cannot build, so it can be changed back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS, BakedParams
from sdprep.profiles import PROFILE_NAMES, profile_of, profile_values
from sdprep.text import t
from sdprep.ui import state
from sdprep.ui.components.common import footer, heading, plain_values, property_relay
from sdprep.ui.form import Form, on
from sdprep.ui.i18n import label
from sdprep.ui.views.params import profile_availability

CUSTOM = "custom"


@dataclass(frozen=True)
class Profile:
    radio: gr.Radio  # Flexible / Fast build / Quality / FP8 / custom: it only sets the expert fields
    expert: gr.Accordion  # the fields the profile sets, by hand


def render(form: Form) -> None:
    heading("sec_profile")
    choices = [(label(f"profile_{name}"), name) for name in (*PROFILE_NAMES, CUSTOM)]
    radio = gr.Radio(
        choices,
        value=profile_of(DEFAULTS),
        label=label("f_profile"),
        info=label("i_profile"),
        elem_id="field-profile",
    )
    with gr.Accordion(label("profile_expert"), open=False) as expert:
        form.add_rest("profile")
    footer(form, "profile")
    form.profile = Profile(radio, expert)


def listen(form: Form) -> None:
    fields = [form.fields[name] for name in ("static_shapes", "opt_level", "fp8")]
    radio = form.profile.radio

    def apply(values: dict[Block, Any]) -> dict[Block, Any]:
        name = values.get(radio)
        if name not in PROFILE_NAMES:
            return {}  # "custom": the fields keep their values
        chosen = profile_values(name)
        return {form.fields[key]: value for key, value in chosen.items()}

    def name_of(values: dict[Block, Any]) -> str:
        static, level, fp8 = (values.get(component) for component in fields)
        level = int(level) if isinstance(level, (int, float)) else DEFAULTS.opt_level
        return profile_of(replace(DEFAULTS, static_shapes=bool(static), opt_level=level, fp8=bool(fp8)))

    # .input: only a person's choice; the fields' change then names the profile back (custom when none fits).
    radio.input(
        plain_values(apply, fields),
        inputs={radio, *fields},
        outputs=fields,
        api_name="profile_apply",
        show_progress="hidden",
        queue=False,
    )
    # The locks (availability) reach the radio and the fields through states of their own (common.property_relay).
    for component in outputs(form):
        property_relay(form, component, f"profile_lock_{component.elem_id}")
    for component in fields:
        on(component, "change")(
            name_of,
            inputs=set(fields),
            outputs=radio,
            api_name=f"profile_name_{component.elem_id}",
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )


def availability(form: Form, params: BakedParams, lang: str) -> dict[Block, Any]:
    """The radio and the expert fields locked, with the reason, where this StreamDiffusion or GPU cannot build them."""
    others, fp8 = profile_availability(state.last_environment(), params, lang)
    flexible = profile_values("flexible")
    info = t("i_profile", lang)
    if others:
        info = t("profile_unavailable", lang, reason=others)
    elif fp8:
        info = f"{info} {t('fp8_unavailable', lang, reason=fp8)}"
    return {
        form.profile.radio: gr.update(interactive=not others or profile_of(params) != "flexible", info=info),
        form.fields["static_shapes"]: gr.update(interactive=not others or params.static_shapes),
        form.fields["opt_level"]: gr.update(interactive=not others or params.opt_level != flexible["opt_level"]),
        form.fields["fp8"]: gr.update(
            interactive=not fp8 or params.fp8,
            info=t("fp8_unavailable", lang, reason=fp8) if fp8 else t("i_fp8", lang),
        ),
    }


def outputs(form: Form) -> list[Block]:
    return [form.profile.radio, *(form.fields[name] for name in ("static_shapes", "opt_level", "fp8"))]
