"""A widget for each declared parameter, made from its declaration: a choice is a radio, a bounded whole number a
slider, a switch a checkbox, text a textbox. Sections may place a field with other options, but a new parameter
appears in its section without a line of UI code.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components import Component

from sdprep.params import DEFAULTS, SIZE_STEP, SPECS, TYPES, choices_of
from sdprep.text import TABLE
from sdprep.ui.i18n import label


class WholeNumberSlider(gr.Slider):
    """A slider whose typed value reaches the rules as typed, in or out of range.

    Gradio's Slider raises on a value typed outside its range: a toast, a traceback on the console, and the whole
    preview event dropped, so the box shows the new value while the preview keeps the old one. This one hands the
    value on (a whole number when it is one); validate() then names the problem under the field, Build is disabled,
    and the page agrees with itself.
    """

    def get_block_name(self) -> str:
        return "slider"  # the same widget in the browser

    def preprocess(self, payload: Any) -> Any:
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            return payload
        if isinstance(payload, float) and payload.is_integer():
            return int(payload)
        return payload


def _info(name: str) -> Any:
    return label(f"i_{name}") if f"i_{name}" in TABLE["en"] else None


def widget_for(name: str, **options: Any) -> Component:
    """The default widget of a declared field, labelled from the text table (f_<name>, i_<name>)."""
    spec = SPECS[name]
    bounds = options.pop("bounds", spec.bounds)  # a narrower range the page starts with (the size under Flexible)
    value = getattr(DEFAULTS, name)
    common: dict[str, Any] = {"value": value, "label": label(f"f_{name}"), "info": _info(name), **options}
    choices = choices_of(name)
    if choices is not None:
        return gr.Radio(list(choices), **common)
    if TYPES[name] is bool:
        return gr.Checkbox(**common)
    if bounds is not None:
        step = SIZE_STEP if name in ("width", "height") else 1
        return WholeNumberSlider(*bounds, step=step, precision=0, **common)
    return gr.Textbox(**common)
