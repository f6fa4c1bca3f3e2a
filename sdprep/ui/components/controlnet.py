"""ControlNet: on/off, how many (cn_count), and one slot group per ControlNet; slots beyond cn_count are not params.

New slots offer ControlNets of the model's family, and follow the model when it changes family (a slot still
holding a known ControlNet of another family gets the one of the same kind for the new family). The conditioning
scale is a runtime value (RUNTIME_DEFAULTS), shown read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component

from sdprep import derive
from sdprep.family import DEFAULT_CONTROLNETS, controlnet_family, controlnet_for
from sdprep.params import DEFAULTS, MAX_CONTROLNETS, PREPROCESSORS
from sdprep.ui.components.common import follow_model_family, footer, heading
from sdprep.ui.form import CN_COUNT, Form
from sdprep.ui.i18n import label

DEFAULT_COUNT = 1


@dataclass(frozen=True)
class ControlNet:
    """The section's own components (its slots are the form's: Form.slots, Form.slot_groups)."""

    details: gr.Column  # shown when ControlNet is on
    scale: gr.Textbox  # the conditioning scale the config gets (a runtime value, read-only)


def render(form: Form) -> None:
    heading("sec_controlnet")
    form.add("use_controlnet")
    defaults = DEFAULT_CONTROLNETS[derive.family(DEFAULTS)]
    with gr.Column(visible=DEFAULTS.use_controlnet) as details:
        form.add(
            CN_COUNT, gr.Slider(0, MAX_CONTROLNETS, step=1, precision=0, value=DEFAULT_COUNT, label=label("f_cn_count"))
        )
        for index in range(MAX_CONTROLNETS):
            model_id, preprocessor = defaults[index % len(defaults)]
            with gr.Group(
                visible=index < DEFAULT_COUNT, elem_classes=["sdprep-slot"], elem_id=f"cn{index}-slot"
            ) as group:
                gr.Markdown(label("cn_title"), elem_classes=["sdprep-slot-title"])
                with gr.Row(equal_height=True):
                    model = gr.Textbox(
                        value=model_id, label=label("f_slot_model_id"), info=label("i_slot_model_id"), scale=3
                    )
                    pre = gr.Dropdown(
                        list(PREPROCESSORS),
                        value=preprocessor,
                        allow_custom_value=True,
                        label=label("f_slot_preprocessor"),
                        scale=2,
                    )
                with gr.Row(equal_height=True):
                    # A textbox, not a number: empty (None, the ControlNet's own default) must stay empty.
                    channels = gr.Textbox(
                        value="", placeholder="3", label=label("f_slot_conditioning_channels"), scale=1
                    )
                    enabled = gr.Checkbox(value=True, label=label("f_slot_enabled"), scale=1)
            slot: dict[str, Component] = {
                "model_id": model,
                "preprocessor": pre,
                "conditioning_channels": channels,
                "enabled": enabled,
            }
            for name, component in slot.items():
                component.elem_id = f"cn{index}-{name}"
            form.slots.append(slot)
            form.slot_groups.append(group)
        scale = gr.Textbox(
            value=f"{form.runtime['controlnet_conditioning_scale']}",
            interactive=False,
            label=label("f_cn_scale"),
            elem_id="cn-scale",
        )
    footer(form, "controlnet", extra=(CN_COUNT,))
    form.controlnet = ControlNet(details, scale)


def visibility(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """The details show when ControlNet is on; as many slot groups as cn_count."""
    on = bool(values.get(form.fields["use_controlnet"]))
    try:
        count = int(values.get(form.fields[CN_COUNT]) or 0)
    except (TypeError, ValueError):
        count = 0
    updates: dict[Block, Any] = {form.controlnet.details: gr.update(visible=on)}
    for index, group in enumerate(form.slot_groups):
        updates[group] = gr.update(visible=index < count)
    return updates


def follow_family(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """Slots holding a known ControlNet of another family get the same kind for the model's family."""
    family = derive.family(form.params(values))
    updates: dict[Block, Any] = {}
    for index, slot in enumerate(form.slots):
        current = str(values.get(slot["model_id"]) or "").strip()
        made_for = controlnet_family(current)
        if made_for is not None and made_for != family:
            updates[slot["model_id"]] = controlnet_for(current, family, index)
    return updates


def listen(form: Form) -> None:
    follow_model_family(form, "controlnets", [slot["model_id"] for slot in form.slots], follow_family)
