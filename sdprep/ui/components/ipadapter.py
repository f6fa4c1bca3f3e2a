"""IP-Adapter: on/off, weights and image encoder, tokens (4 regular, 16 Plus), type; the scale is a runtime value.

The weights follow the model's family like ControlNet slots do: a known adapter of another family is replaced by the
family's own (SD 2.1 has none; validate() says so).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep import derive
from sdprep.family import DEFAULT_IPADAPTERS, ipadapter_family
from sdprep.params import DEFAULTS, BakedParams
from sdprep.text import TABLE, t
from sdprep.ui import state
from sdprep.ui.components.common import follow_model_family, footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views.params import feature_lock


@dataclass(frozen=True)
class IPAdapter:
    details: gr.Column  # shown when the IP-Adapter is on
    scale: gr.Textbox  # the scale the config gets (a runtime value, read-only)


def render(form: Form) -> None:
    heading("sec_ipadapter")
    form.add("use_ipadapter")
    with gr.Column(visible=DEFAULTS.use_ipadapter) as details:
        with gr.Row():
            form.add("ipadapter_model_path")
            form.add("ipadapter_encoder_path")
        with gr.Row():
            form.add("ipadapter_tokens")
            form.add("ipadapter_type")
            scale = gr.Textbox(
                value=f"{form.runtime['ipadapter_scale']}",
                interactive=False,
                label=label("f_ipadapter_scale"),
                elem_id="ipadapter-scale",
            )
    footer(form, "ipadapter")
    form.ipadapter = IPAdapter(details, scale)


def visibility(form: Form, raw: dict[str, Any]) -> dict[Block, Any]:
    return {form.ipadapter.details: gr.update(visible=bool(raw.get("use_ipadapter")))}


def availability(form: Form, params: BakedParams, lang: str) -> dict[Block, Any]:
    """The IP-Adapter switch locked, and FaceID's reason shown, where the build Python lacks what they import (a
    switch already on stays changeable, so it can be turned off)."""
    environment = state.last_environment()
    adapter = feature_lock(environment, replace(params, use_ipadapter=True), "use_ipadapter", lang)
    faceid = replace(params, use_ipadapter=True, ipadapter_type="faceid")
    face = feature_lock(environment, faceid, "ipadapter_type", lang)
    return {
        form.fields["use_ipadapter"]: gr.update(
            interactive=not adapter or params.use_ipadapter, info=adapter or _info("use_ipadapter", lang)
        ),
        form.fields["ipadapter_type"]: gr.update(info=face or _info("ipadapter_type", lang)),
    }


def _info(name: str, lang: str) -> str | None:
    return t(f"i_{name}", lang) if f"i_{name}" in TABLE["en"] else None


def follow_family(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    family = derive.family(form.params(values))
    current = str(values.get(form.fields["ipadapter_model_path"]) or "")
    made_for = ipadapter_family(current)
    if made_for is None or made_for == family or family not in DEFAULT_IPADAPTERS:
        return {}
    model, encoder = DEFAULT_IPADAPTERS[family]
    return {form.fields["ipadapter_model_path"]: model, form.fields["ipadapter_encoder_path"]: encoder}


def listen(form: Form) -> None:
    paths = [form.fields["ipadapter_model_path"], form.fields["ipadapter_encoder_path"]]
    follow_model_family(form, "ipadapter", paths, follow_family)
