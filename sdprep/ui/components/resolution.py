"""Resolution and the switches baked with it: tiny VAE, cached attention (and its frame count), safety checker."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import CACHE_MAXFRAMES_RANGE, DEFAULTS, SIZE_RANGE, SIZE_STEP
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.text import label

FIELDS = ("width", "height", "use_tiny_vae", "use_cached_attn", "cache_maxframes", "use_safety_checker")


def render(form: Form) -> None:
    heading(form, "sec_resolution")
    with gr.Row():
        for name in ("width", "height"):
            form.add(
                name,
                gr.Slider(
                    *SIZE_RANGE, step=SIZE_STEP, precision=0, value=getattr(DEFAULTS, name), label=label(f"f_{name}")
                ),
            )
    with gr.Row():
        for name in ("use_tiny_vae", "use_cached_attn", "use_safety_checker"):
            form.add(name, gr.Checkbox(value=getattr(DEFAULTS, name), label=label(f"f_{name}")))
    form.add(
        "cache_maxframes",
        gr.Slider(
            *CACHE_MAXFRAMES_RANGE,
            step=1,
            precision=0,
            value=DEFAULTS.cache_maxframes,
            label=label("f_cache_maxframes"),
            visible=DEFAULTS.use_cached_attn,
        ),
    )
    footer(form, "resolution", FIELDS)


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    return {form.fields["cache_maxframes"]: gr.update(visible=bool(raw.get("use_cached_attn")))}
