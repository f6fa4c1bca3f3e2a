"""Resolution and the switches baked with it: tiny VAE, cached attention (and its frame count), safety checker."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form


def render(form: Form) -> None:
    heading("sec_resolution")
    with gr.Row():
        form.add("width")
        form.add("height")
    with gr.Row(elem_classes=["sdprep-wrap"]):
        for name in ("use_tiny_vae", "use_cached_attn", "use_safety_checker"):
            form.add(name)
    form.add("cache_maxframes", visible=DEFAULTS.use_cached_attn)
    footer(form, "resolution")


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    return {form.fields["cache_maxframes"]: gr.update(visible=bool(raw.get("use_cached_attn")))}
