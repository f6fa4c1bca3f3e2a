"""The buttons: Build, Cancel, Save config only (+ Force rebuild, Check after build), and Load config (a path inside
the engines folder, or an upload of at most a megabyte).

Build and Cancel are wired in build.py; this module wires saving and loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.config_load import ConfigError, load_params
from sdprep.messages import has_errors
from sdprep.paths import inside
from sdprep.save import save_config
from sdprep.text import t, word
from sdprep.ui import state
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.i18n import label

UPLOAD_LIMIT = "1mb"  # launch(max_file_size=...): a config is a few KB


def render(form: Form, build_enabled: bool) -> None:
    gr.Markdown(label("sec_actions"), elem_classes=["sdprep-heading"])
    with gr.Row():
        form.part(
            "build", gr.Button(label("btn_build"), variant="primary", interactive=build_enabled, elem_id="build-button")
        )
        form.part("cancel", gr.Button(label("btn_cancel"), variant="stop", interactive=False, elem_id="cancel-button"))
        form.part("save", gr.Button(label("btn_save"), interactive=build_enabled, elem_id="save-button"))
    with gr.Row():
        form.part("force", gr.Checkbox(value=False, label=label("f_force")))
        form.part("check", gr.Checkbox(value=True, label=label("f_check")))
    with form.part("load_box", gr.Accordion(label("btn_load"), open=False)):
        with gr.Row(equal_height=True):
            form.part(
                "load_path",
                gr.Textbox(placeholder="<model>/config.yaml", label=label("f_load_path"), scale=4, elem_id="load_path"),
            )
            form.part("load", gr.Button(label("btn_load"), scale=1, elem_id="load-button"))
        form.part(
            "load_upload",
            gr.File(file_types=[".yaml", ".yml", ".json"], type="filepath", label=label("f_load_upload"), height=120),
        )
    form.part("message", gr.Markdown("", elem_id="action-message"))


def save(form: Form, values: dict[Block, Any]) -> str:
    """Validate, then write config.yaml where the build would, and say what it replaced and what loading it does."""
    lang = form.language(values)
    params = form.params(values)
    if has_errors(check(params)):
        return t("save_errors", lang)
    saved = save_config(params, form.runtime)
    lines = [word(saved.reason, lang), *[word(note, lang) for note in saved.notes]]
    return "  \n".join(lines)


def _config_path(typed: str) -> Path | None:
    """A typed config path, relative to the engines folder (or absolute), if it lies inside it; else None."""
    root = state.engines_root()
    path = Path(typed.strip()).expanduser()
    path = path if path.is_absolute() else root / path
    return path if inside(root, path) else None


def load_into_form(form: Form, path: Path, lang: str) -> dict[Block, Any]:
    """load_params(path) -> every field (slots and cn_count too), and a message with the notes or the error."""
    message = form.parts["message"]
    try:
        params, notes = load_params(path)
    except ConfigError as problem:
        return {message: t("load_failed", lang, error=word(problem.message, lang))}
    updates, form_notes = form.fill(params, lang)
    lines = [t("load_ok", lang, path=path.name)]
    lines += [t("load_note", lang, note=note) for note in [*(word(n, lang) for n in notes), *form_notes]]
    updates[message] = "  \n".join(lines)
    return updates


def fill_outputs(form: Form) -> list[Block]:
    """Every component a load may set."""
    blocks: list[Block] = [c for name, c in form.fields.items() if name != "engines_dir"] + [form.parts["message"]]
    for slot in form.slots:
        blocks += list(slot.values())
    return blocks


def listen(form: Form) -> None:
    lang_input = {form.lang} if form.lang is not None else set()

    def save_config_only(values: dict[Block, Any]) -> str:
        return save(form, values)

    def load_config(values: dict[Block, Any]) -> dict[Block, Any]:
        lang = form.language(values)
        typed = str(values.get(form.parts["load_path"]) or "")
        if not typed.strip():
            return {form.parts["message"]: t("load_no_path", lang)}
        path = _config_path(typed)
        if path is None:
            return {form.parts["message"]: t("load_outside", lang, root=state.engines_root())}
        return load_into_form(form, path, lang)

    def load_uploaded(values: dict[Block, Any]) -> dict[Block, Any]:
        uploaded = values.get(form.parts["load_upload"])
        if not uploaded:
            return {form.parts["message"]: gr.update()}
        return load_into_form(form, Path(str(uploaded)), form.language(values))

    form.events["save"] = form.parts["save"].click(
        save_config_only,
        inputs=form.inputs(),
        outputs=form.parts["message"],
        api_name="save_config",
        concurrency_limit=None,
    )
    load_inputs = {form.parts["load_path"], *lang_input}
    for trigger, name in (
        (form.parts["load"].click, "load_config"),
        (form.parts["load_path"].submit, "load_config_enter"),
    ):
        trigger(load_config, inputs=load_inputs, outputs=fill_outputs(form), api_name=name, concurrency_limit=None)
    form.parts["load_upload"].upload(
        load_uploaded,
        inputs={form.parts["load_upload"], *lang_input},
        outputs=fill_outputs(form),
        api_name="load_config_upload",
        concurrency_limit=None,
    )
