"""ControlNet: on/off, how many (cn_count), and one slot group per ControlNet; slots beyond cn_count are not params.

The conditioning scale is a runtime value (RUNTIME_DEFAULTS), shown read-only.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS, MAX_CONTROLNETS, PREPROCESSORS, ControlNetSlot
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import CN_COUNT, Form
from sdprep.ui.text import label

FIELDS = ("use_controlnet", "controlnets", CN_COUNT)
DEFAULT_COUNT = 1
# What a new slot offers: a different common SD 1.5 ControlNet per slot, so two slots do not start as duplicates.
SLOT_DEFAULTS: tuple[ControlNetSlot, ...] = (
    ControlNetSlot(),
    ControlNetSlot(model_id="lllyasviel/control_v11f1p_sd15_depth", preprocessor="depth"),
    ControlNetSlot(model_id="lllyasviel/control_v11p_sd15_openpose", preprocessor="openpose"),
)


def render(form: Form) -> None:
    heading(form, "sec_controlnet")
    form.add("use_controlnet", gr.Checkbox(value=DEFAULTS.use_controlnet, label=label("f_use_controlnet")))
    with form.part("controlnet_details", gr.Column(visible=DEFAULTS.use_controlnet)):
        form.add(
            CN_COUNT,
            gr.Slider(0, MAX_CONTROLNETS, step=1, precision=0, value=DEFAULT_COUNT, label=label("f_cn_count")),
        )
        for index in range(MAX_CONTROLNETS):
            default = SLOT_DEFAULTS[index % len(SLOT_DEFAULTS)]
            with gr.Group(
                visible=index < DEFAULT_COUNT, elem_classes=["sdprep-slot"], elem_id=f"cn{index}-slot"
            ) as group:
                form.texted(
                    gr.Markdown(label(f"cn{index}_title"), elem_classes=["sdprep-slot-title"]), value=f"cn{index}_title"
                )
                with gr.Row(equal_height=True):
                    model_id = gr.Textbox(value=default.model_id, label=label(f"cn{index}_model_id"), scale=3)
                    preprocessor = gr.Dropdown(
                        list(PREPROCESSORS),
                        value=default.preprocessor,
                        allow_custom_value=True,
                        label=label(f"cn{index}_preprocessor"),
                        scale=2,
                    )
                with gr.Row(equal_height=True):
                    # A textbox, not a number: empty (None, the ControlNet's own default) must stay empty.
                    channels = gr.Textbox(
                        value=_channels_text(default.conditioning_channels),
                        placeholder="3",
                        label=label(f"cn{index}_conditioning_channels"),
                        scale=1,
                    )
                    enabled = gr.Checkbox(value=default.enabled, label=label(f"cn{index}_enabled"), scale=1)
            slot = {
                "model_id": model_id,
                "preprocessor": preprocessor,
                "conditioning_channels": channels,
                "enabled": enabled,
            }
            for name, component in slot.items():
                component.elem_id = f"cn{index}-{name}"
                form.texted(component, label=f"cn{index}_{name}")
            form.slots.append(slot)
            form.slot_groups.append(group)
        form.part(
            "cn_scale",
            gr.Textbox(
                value=f"{form.runtime['controlnet_conditioning_scale']}",
                interactive=False,
                label=label("f_cn_scale"),
            ),
            label="f_cn_scale",
        )
    footer(form, "controlnet", FIELDS)


def _channels_text(channels: int | None) -> str:
    return "" if channels is None else str(channels)


def visibility(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    """The details show when ControlNet is on; as many slot groups as cn_count."""
    on = bool(values.get(form.fields["use_controlnet"]))
    try:
        count = int(values.get(form.fields[CN_COUNT]) or 0)
    except (TypeError, ValueError):
        count = 0
    updates: dict[Block, Any] = {form.parts["controlnet_details"]: gr.update(visible=on)}
    for index, group in enumerate(form.slot_groups):
        updates[group] = gr.update(visible=index < count)
    return updates
