"""The form's registry: components keyed by BakedParams field name, and the two conversions params <-> form.

Handlers take `{component: value}` (Gradio's set-of-inputs form) and look values up by field name here, so
adding a field never shifts a positional argument list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component

from sdprep.config import RuntimeDefaults
from sdprep.params import (
    CACHE_MAXFRAMES_RANGE,
    FRAME_BUFFER_RANGE,
    MAX_CONTROLNETS,
    PARAM_NAMES,
    SIZE_RANGE,
    STEPS_RANGE,
    BakedParams,
    ControlNetSlot,
    params_from_values,
)
from sdprep.ui import text

CN_COUNT = "cn_count"  # the form's own field: how many ControlNet slots are part of the params
SLIDER_RANGES: dict[str, tuple[int, int]] = {
    "denoise_steps": STEPS_RANGE,
    "width": SIZE_RANGE,
    "height": SIZE_RANGE,
    "frame_buffer_size": FRAME_BUFFER_RANGE,
    "cache_maxframes": CACHE_MAXFRAMES_RANGE,
}
STRING_FIELDS = ("model", "lora_json", "ipadapter_model_path", "ipadapter_encoder_path", "engines_dir")


@dataclass
class Form:
    """Every component the handlers need, by name. Sections fill it in `render()`, wire it in `listen()`."""

    runtime: RuntimeDefaults
    fields: dict[str, Component] = field(default_factory=dict)  # BakedParams names (no `controlnets`) + cn_count
    slots: list[dict[str, Component]] = field(default_factory=list)  # ControlNetSlot names, per slot
    slot_groups: list[Block] = field(default_factory=list)
    # section name -> (fields it shows problems for, its problems box, its derived-values hint)
    sections: dict[str, tuple[tuple[str, ...], gr.HTML, gr.Markdown]] = field(default_factory=dict)
    # blocks whose text follows the language switch: (block, {attribute: text key})
    texts: list[tuple[Block, dict[str, str]]] = field(default_factory=list)
    # other named components: buttons, outputs, states, containers
    parts: dict[str, Block] = field(default_factory=dict)
    lang: gr.Radio | None = None
    # events other sections chain onto (e.g. the library refreshes after "build")
    events: dict[str, Any] = field(default_factory=dict)

    # --- building ------------------------------------------------------------------------------------------
    def texted(self, block: Block, **keys: str) -> Block:
        """Register `block` so the language switch re-renders its `label`, `info`, `value`, ... from `keys`."""
        self.texts.append((block, keys))
        return block

    def add(self, name: str, component: Component, info: bool = False) -> Component:
        """A form field: labelled `f_<name>` (and `i_<name>` as info when `info`)."""
        keys = {"label": f"f_{name}"}
        if info:
            keys["info"] = f"i_{name}"
        self.fields[name] = component
        if component.elem_id is None:
            component.elem_id = f"field-{name}"  # stable hooks for CSS and browser tests
        return self.texted(component, **keys)  # type: ignore[return-value]

    def part(self, name: str, block: Block, **keys: str) -> Any:
        self.parts[name] = block
        if keys:
            self.texted(block, **keys)
        return block

    # --- reading -------------------------------------------------------------------------------------------
    def inputs(self) -> set[Block]:
        """Every component whose value makes the params, and the language."""
        components: set[Block] = set(self.fields.values())
        for slot in self.slots:
            components.update(slot.values())
        if self.lang is not None:
            components.add(self.lang)
        return components

    def language(self, values: dict[Block, Any]) -> str:
        return str(values.get(self.lang) or "en") if self.lang is not None else "en"

    def raw_values(self, values: dict[Block, Any]) -> dict[str, Any]:
        """The form's values by field name, as typed (controlnets: the first cn_count slots when ControlNet is on)."""
        raw: dict[str, Any] = {name: values.get(component) for name, component in self.fields.items()}
        for name in STRING_FIELDS:
            raw[name] = "" if raw.get(name) is None else str(raw[name])
        for name in (*SLIDER_RANGES, "ipadapter_tokens"):
            raw[name] = _whole(raw.get(name))
        count = max(0, min(MAX_CONTROLNETS, _whole(raw.pop(CN_COUNT, 0)) or 0))
        slots = []
        for slot in self.slots[:count] if raw.get("use_controlnet") else []:
            item = {name: values.get(component) for name, component in slot.items()}
            item["model_id"] = str(item.get("model_id") or "").strip()
            item["preprocessor"] = str(item.get("preprocessor") or "").strip()
            item["conditioning_channels"] = _channels(item.get("conditioning_channels"))
            item["enabled"] = bool(item.get("enabled"))
            slots.append(item)
        raw["controlnets"] = slots
        return raw

    def params(self, values: dict[Block, Any]) -> BakedParams:
        return params_from_values({k: v for k, v in self.raw_values(values).items() if k in PARAM_NAMES})

    # --- writing -------------------------------------------------------------------------------------------
    def fill(self, params: BakedParams, lang: str) -> tuple[dict[Block, Any], list[str]]:
        """Updates that put `params` into the form, and notes on what the form could not show exactly."""
        notes: list[str] = []
        updates: dict[Block, Any] = {}
        for name, component in self.fields.items():
            if name == CN_COUNT or name not in PARAM_NAMES:
                continue
            value = getattr(params, name)
            if name in SLIDER_RANGES and isinstance(value, int):
                low, high = SLIDER_RANGES[name]
                shown = min(max(value, low), high)
                if shown != value:
                    notes.append(text.t("load_clamped", lang, field=name, value=value, shown=shown))
                value = shown
            if not _offers(component, value):
                notes.append(text.t("load_not_a_choice", lang, field=name, value=value))
                continue
            updates[component] = value
        slots: tuple[ControlNetSlot, ...] = params.controlnets
        if len(slots) > MAX_CONTROLNETS:
            notes.append(text.t("load_extra_controlnets", lang, count=len(slots), max=MAX_CONTROLNETS))
            slots = slots[:MAX_CONTROLNETS]
        if params.use_controlnet:
            updates[self.fields[CN_COUNT]] = len(slots)
        for slot, components in zip(slots, self.slots, strict=False):
            for name, component in components.items():
                value = getattr(slot, name)
                updates[component] = ("" if value is None else str(value)) if name == "conditioning_channels" else value
        return updates, notes

    def relabel(self, lang: str) -> dict[Block, Any]:
        return {
            block: gr.update(**{attribute: text.t(key, lang) for attribute, key in keys.items()})
            for block, keys in self.texts
        }


def _offers(component: Component, value: Any) -> bool:
    """Whether a Radio / Dropdown with fixed choices can show `value` (anything else can show anything)."""
    choices = getattr(component, "choices", None)
    if not choices or getattr(component, "allow_custom_value", False):
        return True
    return value in [choice[1] if isinstance(choice, tuple) else choice for choice in choices]


def _whole(value: Any) -> Any:
    """Sliders and numbers may send 3.0 for 3; BakedParams wants ints. Anything else is left for validate()."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _channels(value: Any) -> Any:
    """Conditioning channels as typed: empty -> None (the ControlNet's default), digits -> int, else as typed
    (validate() then explains what is wrong with it)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _whole(value)
    typed = str(value).strip()
    if not typed:
        return None
    try:
        return int(typed)
    except ValueError:
        return typed
