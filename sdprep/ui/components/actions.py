"""The buttons: Build, Rehearse, Cancel, Save config only (+ Force rebuild, Rehearse first, Check after build), and
Load config (a path inside
the engines folder, or an upload of at most a megabyte).

Build and Cancel are wired in build.py; this module wires saving and loading.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr
from gradio.blocks import Block

from sdprep.config_load import ConfigError
from sdprep.hub import TIMEOUT as HUB_TIMEOUT
from sdprep.jobs.rehearsal import rehearse_by_default
from sdprep.messages import Message, has_errors, msg
from sdprep.paths import inside, user_path
from sdprep.runtime import load_config, summary
from sdprep.save import save_config
from sdprep.ui import state
from sdprep.ui.components import build
from sdprep.ui.components.common import MessageBox, message_box, plain_values, redraw_on_language
from sdprep.ui.components.preview import check
from sdprep.ui.form import Form
from sdprep.ui.i18n import label

UPLOAD_LIMIT = "1mb"  # launch(max_file_size=...): a config is a few KB


@dataclass(frozen=True)
class ActionBar:
    """The action bar: what the form's state is, and the buttons that act on it."""

    summary: gr.Markdown
    build: gr.Button
    rehearse: gr.Button  # Rehearse: only the rehearsal, now
    cancel: gr.Button
    save: gr.Button


@dataclass(frozen=True)
class Actions:
    """Under the form: how to build, loading a config, and what the last action said."""

    force: gr.Checkbox
    rehearse_first: gr.Checkbox  # Rehearse first: a rehearsal before each build
    check: gr.Checkbox
    load_box: gr.Accordion
    load_path: gr.Textbox
    load: gr.Button
    load_upload: gr.File
    message: MessageBox


def render_bar(form: Form, summary: str, build_enabled: bool) -> None:
    """The action bar, kept in view at the bottom of the window (CSS, sticky): the state of the form (why Build is
    disabled, in one line), then Build, Cancel and Save config only."""
    with gr.Row(elem_id="action-bar", elem_classes=["sdprep-action-bar"], equal_height=True):
        shown = gr.Markdown(summary, elem_id="summary", elem_classes=["sdprep-summary"])
        with gr.Row(elem_classes=["sdprep-action-buttons"]):
            buttons: tuple[tuple[str, Literal["primary", "secondary", "stop"], bool, str], ...] = (
                ("btn_build", "primary", build_enabled, "build-button"),
                ("btn_rehearse", "secondary", True, "rehearse-button"),
                ("btn_cancel", "stop", False, "cancel-button"),
                ("btn_save", "secondary", build_enabled, "save-button"),
            )
            build, rehearse, cancel, save = (
                gr.Button(label(key), variant=variant, interactive=enabled, elem_id=elem_id, min_width=90)
                for key, variant, enabled, elem_id in buttons
            )
    form.bar = ActionBar(shown, build, rehearse, cancel, save)


def render(form: Form) -> None:
    """Under the form: how to build (force, check), loading a config, and what the last action said."""
    gr.Markdown(label("sec_actions"), elem_classes=["sdprep-heading"])
    with gr.Row(elem_classes=["sdprep-wrap"]):
        force = gr.Checkbox(value=False, label=label("f_force"), elem_id="force")
        rehearse_first = gr.Checkbox(value=rehearse_by_default(), label=label("f_rehearse"), elem_id="rehearse")
        check_after = gr.Checkbox(value=True, label=label("f_check"), elem_id="check")
    with gr.Accordion(label("btn_load"), open=False, elem_id="load-box") as load_box:
        with gr.Row(equal_height=True):
            load_path = gr.Textbox(
                placeholder="<model>/config.yaml", label=label("f_load_path"), scale=4, elem_id="load_path"
            )
            load_button = gr.Button(label("btn_load"), scale=1, elem_id="load-button")
        load_upload = gr.File(
            file_types=[".yaml", ".yml", ".json"],
            type="filepath",
            label=label("f_load_upload"),
            height=170,
            elem_id="load_upload",
        )
    message = message_box("action-message")
    form.loaded_runtime = gr.State(None)
    form.actions = Actions(force, rehearse_first, check_after, load_box, load_path, load_button, load_upload, message)


def save(form: Form, values: dict[Block, Any]) -> list[Message]:
    """Validate, then write config.yaml where the build would, and say what it replaced and what loading it does."""
    params = form.params(values)
    if has_errors(check(params, hub_wait=HUB_TIMEOUT)):
        return [msg("save_errors")]
    saved = save_config(params, form.runtime, form.loaded(values))
    return [saved.reason, *saved.notes]


def config_path(typed: str) -> Path | None:
    """A typed config path, relative to the engines folder (or absolute), if it lies inside it; else None."""
    root = state.engines_root()
    path = user_path(typed.strip())
    path = path if path.is_absolute() else root / path
    return path if inside(root, path) else None


def load_into_form(form: Form, path: Path, shown_as: str | None = None) -> tuple[dict[Block, Any], list[Message]]:
    """load_config(path) -> updates of every field (slots and cn_count too) and of the page's loaded runtime values,
    and what to say: the notes or the error."""
    try:
        params, notes, runtime = load_config(path, shown_as=path.name)
    except ConfigError as problem:
        return {}, [msg("load_failed", error=problem.message)]
    updates, form_notes = form.fill(params)
    if form.loaded_runtime is not None:
        updates[form.loaded_runtime] = runtime
    lines = [msg("load_ok", path=shown_as or path.name), summary(runtime)]
    lines += [msg("load_note", note=note) for note in [*notes, *form_notes]]
    return updates, lines


def fill_fields(form: Form) -> list[Block]:
    """Every form field a load may set: also inputs of the load, which gives each a plain value (plain_values)."""
    blocks: list[Block] = [c for name, c in form.fields.items() if name != "engines_dir"]
    for slot in form.slots:
        blocks += list(slot.values())
    return blocks


def fill_outputs(form: Form) -> list[Block]:
    """Every component a load may set: the fields and the page's loaded runtime values."""
    return [*fill_fields(form), *([form.loaded_runtime] if form.loaded_runtime is not None else [])]


def listen(form: Form) -> None:
    lang_input = form.language_input()
    actions = form.actions
    page_build = {form.build.job, form.build.refused}
    said = actions.message.outputs()

    def answer(values: dict[Block, Any], messages: list[Message]) -> dict[Block, Any]:
        """What an action says replaces the message and the last build's result (unless this page's build runs)."""
        lang = form.language(values)
        return {**build.idle_view(form, values, lang), **actions.message.say(messages, lang)}

    def save_config_only(values: dict[Block, Any]) -> dict[Block, Any]:
        return answer(values, save(form, values))

    def load_config(values: dict[Block, Any]) -> dict[Block, Any]:
        typed = str(values.get(actions.load_path) or "")
        if not typed.strip():
            return answer(values, [msg("load_no_path")])
        path = config_path(typed)
        if path is None:
            return answer(values, [msg("load_outside", root=state.engines_root())])
        updates, messages = load_into_form(form, path, shown_as=str(path))
        return {**updates, **answer(values, messages)}

    def load_uploaded(values: dict[Block, Any]) -> dict[Block, Any]:
        uploaded = values.get(actions.load_upload)
        if not uploaded:
            return {actions.message.box: gr.update()}
        path = Path(str(uploaded))
        updates, messages = load_into_form(form, path, shown_as=path.name)
        return {**updates, **answer(values, messages)}

    build_view = build.outputs(form)
    form.events.save = form.bar.save.click(
        save_config_only,
        inputs={*form.inputs(), *page_build},
        outputs=[*said, *build_view],
        api_name="save_config",
        concurrency_limit=None,
    )
    fields = fill_fields(form)
    load_inputs = {actions.load_path, *page_build, *lang_input, *fields}
    for trigger, name in ((actions.load.click, "load_config"), (actions.load_path.submit, "load_config_enter")):
        trigger(
            plain_values(load_config, fields),
            inputs=load_inputs,
            outputs=[*fill_outputs(form), *said, *build_view],
            api_name=name,
            concurrency_limit=None,
        )
    actions.load_upload.upload(
        plain_values(load_uploaded, fields),
        inputs={actions.load_upload, *page_build, *lang_input, *fields},
        outputs=[*fill_outputs(form), *said, *build_view],
        api_name="load_config_upload",
        concurrency_limit=None,
    )
    redraw_on_language(form, actions.message, "message_redraw")
    if form.lang is not None:
        upload = actions.load_upload

        def remount_upload() -> Iterator[Any]:
            """Gradio words the upload box's own text ("Drop File Here") once, when it is drawn: after a change of
            language it is drawn again, hidden for a moment and shown."""
            yield gr.File(visible=False)
            yield gr.File(visible=True)

        form.lang.change(
            remount_upload,
            inputs=None,
            outputs=upload,
            api_name="load_upload_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
