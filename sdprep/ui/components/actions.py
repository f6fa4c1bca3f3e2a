"""The buttons: Build, Cancel, Save config only (+ Force rebuild), and Load config (a path or an upload).

Build and Cancel are wired in build.py; this module wires saving and loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep import derive
from sdprep.config import ConfigError, load_params, render_config, write_config
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.text import label, t
from sdprep.validate import has_errors


def render(form: Form, build_enabled: bool) -> None:
    form.texted(gr.Markdown(label("sec_actions"), elem_classes=["sdprep-heading"]), value="sec_actions")
    with gr.Row():
        form.part(
            "build",
            gr.Button(label("btn_build"), variant="primary", interactive=build_enabled, elem_id="build-button"),
            value="btn_build",
        )
        form.part("cancel", gr.Button(label("btn_cancel"), variant="stop", elem_id="cancel-button"), value="btn_cancel")
        form.part("save", gr.Button(label("btn_save"), elem_id="save-button"), value="btn_save")
    with gr.Row():
        form.part("force", gr.Checkbox(value=False, label=label("f_force")), label="f_force")
        form.part("check", gr.Checkbox(value=True, label=label("f_check")), label="f_check")
    with form.part("load_box", gr.Accordion(label("btn_load"), open=False), label="btn_load"):
        with gr.Row(equal_height=True):
            form.part(
                "load_path",
                gr.Textbox(
                    placeholder="engines/<model>/config.yaml", label=label("f_load_path"), scale=4, elem_id="load_path"
                ),
                label="f_load_path",
            )
            form.part("load", gr.Button(label("btn_load"), scale=1, elem_id="load-button"), value="btn_load")
        form.part(
            "load_upload",
            gr.File(file_types=[".yaml", ".yml", ".json"], type="filepath", label=label("f_load_upload"), height=90),
            label="f_load_upload",
        )
    form.part("message", gr.Markdown("", label=label("o_actions"), elem_id="action-message"))


def save(form: Form, values: dict[Block, Any]) -> str:
    """Validate, then write config.yaml where the build would; with errors nothing is written."""
    lang = form.language(values)
    params = form.params(values)
    if has_errors(check(params)):
        return t("save_errors", lang)
    path = derive.config_path(params)
    try:
        write_config(path, render_config(params, form.runtime))
    except OSError as error:
        return t("save_failed", lang, path=path, error=error.strerror or error)
    return t("save_ok", lang, path=path)


def load_into_form(form: Form, path: str | None, lang: str) -> dict[Block, Any]:
    """load_params(path) -> every field (slots and cn_count too), and a message with the notes or the error."""
    message = form.parts["message"]
    if not path or not str(path).strip():
        return {message: t("load_no_path", lang)}
    try:
        params, notes = load_params(Path(str(path).strip()).expanduser())
    except ConfigError as error:
        return {message: t("load_failed", lang, error=error)}
    updates, form_notes = form.fill(params, lang)
    lines = [t("load_ok", lang, path=path)] + [t("load_note", lang, note=note) for note in [*notes, *form_notes]]
    updates[message] = "  \n".join(lines)
    return updates


def fill_outputs(form: Form) -> list[Block]:
    """Every component a load may set."""
    blocks: list[Block] = [*form.fields.values(), form.parts["message"]]
    for slot in form.slots:
        blocks += list(slot.values())
    return blocks


def listen(form: Form) -> None:
    lang_input = {form.lang} if form.lang is not None else set()

    def save_config(values: dict[Block, Any]) -> str:
        return save(form, values)

    def load_config(values: dict[Block, Any]) -> dict[Block, Any]:
        return load_into_form(form, values.get(form.parts["load_path"]), form.language(values))

    def load_uploaded(values: dict[Block, Any]) -> dict[Block, Any]:
        uploaded = values.get(form.parts["load_upload"])
        if not uploaded:
            return {}
        return load_into_form(form, uploaded, form.language(values))

    form.events["save"] = form.parts["save"].click(
        save_config, inputs=form.inputs(), outputs=form.parts["message"], api_name="save_config", concurrency_limit=None
    )
    load_inputs = {form.parts["load_path"], *lang_input}
    form.parts["load"].click(
        load_config, inputs=load_inputs, outputs=fill_outputs(form), api_name="load_config", concurrency_limit=None
    )
    form.parts["load_path"].submit(
        load_config,
        inputs=load_inputs,
        outputs=fill_outputs(form),
        api_name="load_config_enter",
        api_visibility="undocumented",
        concurrency_limit=None,
    )
    form.parts["load_upload"].upload(
        load_uploaded,
        inputs={form.parts["load_upload"], *lang_input},
        outputs=fill_outputs(form),
        api_name="load_config_upload",
        concurrency_limit=None,
    )
