"""Resolution and the switches baked with it: tiny VAE, cached attention (and its frame count), safety checker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.params import DEFAULTS, BakedParams, size_range
from sdprep.text import t
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


@dataclass(frozen=True)
class Resolution:
    cache_maxframes_box: gr.Column  # the cached attention's frame count, shown only with cached attention


def render(form: Form) -> None:
    heading("sec_resolution")
    bounds = size_range(DEFAULTS.static_shapes)
    info = None if DEFAULTS.static_shapes else label("i_size_flexible")
    with gr.Row():
        form.add("width", bounds=bounds, info=info)
        form.add("height", bounds=bounds, info=info)
    with gr.Row(elem_classes=["sdprep-wrap"]):
        for name in ("use_tiny_vae", "use_cached_attn", "use_safety_checker"):
            form.add(name)
    # Shown and hidden through its box, like the scheduler (sampling.py says why).
    with gr.Column(visible=DEFAULTS.use_cached_attn) as cache_maxframes_box:
        form.add("cache_maxframes")
    footer(form, "resolution")
    form.resolution = Resolution(cache_maxframes_box)


def follow_profile(form: Form, params: BakedParams, lang: str) -> dict[Block, Any]:
    """The size sliders start where the chosen shapes allow (256 static, 384 Flexible), saying why under Flexible."""
    low, high = size_range(params.static_shapes)
    info = None if params.static_shapes else t("i_size_flexible", lang)
    return {form.fields[name]: gr.update(minimum=low, maximum=high, info=info) for name in ("width", "height")}


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    return {form.resolution.cache_maxframes_box: gr.update(visible=bool(raw.get("use_cached_attn")))}
