"""The engines library: every prepared model under the server's engines folder, its variants (status, profile,
engines and sizes, when and on which GPU / TensorRT they were built, the measured speed); load one into the form, or
delete a model's folder (only inside the engines folder, only after "I am sure", never while it builds, and only
for the machine's own user: sdprep.ui.access); clean up what no build uses (sdprep.clean) under the same rules.

The folder is the server's (--engines-dir); a request names a model by its folder name only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.disk import disk_use
from sdprep.engines import DeleteRefused, PreparedModel, delete_model, find_model, list_models
from sdprep.messages import msg, os_reason
from sdprep.model_folder import outside
from sdprep.text import t, word
from sdprep.ui import state
from sdprep.ui.access import is_owner, owner_only
from sdprep.ui.components import library_clean, library_pack
from sdprep.ui.components.actions import fill_fields, fill_outputs, load_into_form
from sdprep.ui.components.common import MessageBox, message_box, only_changed, plain_values, redraw_on_language
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.sessions import drop_stale_copies
from sdprep.ui.views.library import library_html

CURRENT = "config.yaml"  # the variant choice that means the model's current config.yaml


@dataclass(frozen=True)
class Library:
    """The listing of the engines folder and what can be done with a model of it."""

    refresh: gr.Button
    listing: gr.HTML
    model: gr.Dropdown
    variant: gr.Dropdown
    load: gr.Button
    sure: gr.Checkbox  # "I am sure": Delete waits for it
    delete: gr.Button
    access: gr.Markdown  # why this client may not delete
    message: MessageBox
    sent: gr.State  # the lists' properties the page was sent last (common.only_changed)

    def controls(self) -> list[Block]:
        """What a refresh redraws."""
        return [self.listing, self.model, self.variant, self.load, self.sure, self.delete, self.access, self.sent]


def render(form: Form) -> None:
    gr.Markdown(label("lib_intro_server"))
    refresh_button = gr.Button(label("btn_lib_refresh"), size="sm", elem_id="library-refresh")
    listing = gr.HTML("", elem_id="library")
    with gr.Row(equal_height=True):
        model = gr.Dropdown(
            [], value=None, label=label("f_lib_model"), scale=2, interactive=False, elem_id="library-model"
        )
        variant = gr.Dropdown(
            [], value=None, label=label("f_lib_variant"), scale=3, interactive=False, elem_id="library-variant"
        )
    with gr.Row(equal_height=True):
        load_button = gr.Button(label("btn_lib_load"), variant="primary", interactive=False, elem_id="library-load")
        sure = gr.Checkbox(value=False, label=label("f_lib_sure"), interactive=False, elem_id="library-sure")
        delete_button = gr.Button(label("btn_lib_delete"), variant="stop", interactive=False, elem_id="library-delete")
    access = gr.Markdown("", visible=False, elem_id="library-access")
    message = message_box("library-message")
    sent = gr.State(None)
    form.library = Library(
        refresh_button, listing, model, variant, load_button, sure, delete_button, access, message, sent
    )
    library_pack.render(form)  # Pack and Import: their own section (sdprep/ui/components/library_pack.py)
    library_clean.render(form)  # Clean up: its own section (sdprep/ui/components/library_clean.py)


def _find(models: list[PreparedModel], slug: str | None) -> PreparedModel | None:
    return next((model for model in models if model.slug == slug), None)


def variant_choices(model: PreparedModel | None, lang: str) -> list[tuple[str, str]]:
    if model is None:
        return []
    choices = [(t("lib_current_config", lang), CURRENT)] if model.config else []
    return choices + [(variant.name, variant.name) for variant in model.variants]


def refresh(form: Form, values: dict[Block, Any], owner: bool) -> dict[Block, Any]:
    """The listing and the controls; Delete (and "I am sure") only for the machine's own user, else the reason."""
    lang = form.language(values)
    root = state.engines_root()
    disk = disk_use(root)
    models = list_models(root, disk)
    slugs = [model.slug for model in models]
    selected = values.get(form.library.model)
    selected = selected if selected in slugs else (slugs[0] if slugs else None)
    choices = variant_choices(_find(models, selected), lang)
    variant = values.get(form.library.variant)
    variant = variant if variant in [value for _, value in choices] else (choices[0][1] if choices else None)
    some = bool(models)
    reason = None if owner else owner_only("delete", None)
    return {
        form.library.listing: library_html(models, root, lang, disk),
        form.library.model: gr.Dropdown(choices=slugs, value=selected, interactive=some),
        form.library.variant: gr.Dropdown(choices=choices, value=variant, interactive=some),
        form.library.load: gr.Button(interactive=bool(choices)),
        form.library.sure: gr.Checkbox(value=False, interactive=some and owner),
        form.library.delete: gr.Button(interactive=False),  # until "I am sure" is ticked
        form.library.access: gr.Markdown(word(reason, lang) if reason else "", visible=reason is not None),
    }


def select_model(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    slug = values.get(form.library.model)
    model = find_model(state.engines_root(), str(slug)) if slug else None
    choices = variant_choices(model, lang)
    return {
        # The same properties as refresh() gives it (a model was chosen, so the library is not empty): only a change
        # of choices is sent as one (common.only_changed).
        form.library.variant: gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, interactive=True),
        form.library.load: gr.Button(interactive=bool(choices)),
    }


def load(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    slug = values.get(form.library.model)
    model = find_model(state.engines_root(), str(slug)) if slug else None
    if model is None:
        return form.library.message.say([msg("lib_choose")], lang)
    name = values.get(form.library.variant)
    variant = next((v for v in model.variants if v.name == name), None)
    path = variant.config if variant is not None else model.config
    if path is None:
        return form.library.message.say([msg("lib_no_config", slug=slug)], lang)
    if outside(state.engines_root(), path):  # a configs/<variant>.yaml that is a link out: Load config's rule
        return form.library.message.say([msg("load_outside", root=state.engines_root())], lang)
    updates, messages = load_into_form(form, path, shown_as=str(path))
    if updates:  # loaded: the form is where it shows, and where Build is; what was loaded is said there too
        updates[form.page.tabs] = gr.Tabs(selected="prepare")
        updates.update(form.actions.message.say(messages, lang))
    return {**updates, **form.library.message.say(messages, lang)}


def delete(form: Form, values: dict[Block, Any], request: gr.Request | None) -> dict[Block, Any]:
    lang = form.language(values)
    sure = form.library.sure
    not_owner = owner_only("delete", request)
    if not_owner is not None:  # the page disables the button; this is for requests sent without it
        return {**form.library.message.say([not_owner], lang), sure: False}
    slug = values.get(form.library.model)
    if not slug:
        return form.library.message.say([msg("lib_choose")], lang)
    if not values.get(sure):
        return form.library.message.say([msg("lib_sure_first")], lang)
    try:
        deleted = delete_model(state.engines_root(), str(slug))
    except DeleteRefused as refused:
        said = msg("lib_refused", error=refused.message)
    except OSError as problem:
        said = msg("lib_refused", error=os_reason(problem))
    else:
        said = msg("lib_deleted", path=deleted)
    return {**form.library.message.say([said], lang), sure: False}


def listen(form: Form, demo: gr.Blocks) -> None:
    library_pack.listen(form)  # first: the listing below refreshes after an import
    lang_input = {form.lang} if form.lang is not None else set()
    library = form.library
    listing = library.controls()
    # The lists get their choices only when they change (common.only_changed): they are inputs too.
    sent = library.sent
    refresh_inputs: set[Block] = {library.model, library.variant, library.sure, sent, *lang_input}

    def list_library(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        # A change of the lists' choices leaves a copy of each in the page's session; a refresh (after every build,
        # cancel and save) drops the earlier ones, so a page open for days keeps the same size.
        if request.session_hash:
            drop_stale_copies(demo, request.session_hash)
        return only_changed(sent, values, refresh(form, values, is_owner(request)))

    def variants(values: dict[Block, Any]) -> dict[Block, Any]:
        return only_changed(sent, values, select_model(form, values))

    def load_variant(values: dict[Block, Any]) -> dict[Block, Any]:
        return load(form, values)

    def delete_selected(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        return delete(form, values, request)

    def quiet_refresh(dependency: Any, name: str) -> None:
        dependency.then(
            list_library,
            inputs=refresh_inputs,
            outputs=listing,
            api_name=name,
            api_visibility="undocumented",
            show_progress="hidden",
            concurrency_limit=None,
        )

    library.refresh.click(
        list_library, inputs=refresh_inputs, outputs=listing, api_name="library_list", concurrency_limit=None
    )
    library.model.input(
        variants,
        inputs={library.model, library.variant, sent, *lang_input},
        outputs=[library.variant, library.load, sent],
        api_name="library_variants",
        concurrency_limit=None,
    )
    fields = fill_fields(form)
    library.load.click(
        plain_values(load_variant, fields),
        inputs={library.model, library.variant, *lang_input, *fields},
        outputs=[
            *fill_outputs(form),
            *library.message.outputs(),
            *form.actions.message.outputs(),
            form.page.tabs,
        ],
        api_name="library_load",
        concurrency_limit=None,
    )
    library.sure.change(
        lambda sure, model: gr.Button(interactive=bool(sure and model)),
        inputs=[library.sure, library.model],
        outputs=library.delete,
        api_name="library_sure",
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    delete_event = library.delete.click(
        delete_selected,
        inputs={library.model, library.sure, *lang_input},
        outputs=[*library.message.outputs(), library.sure],
        api_name="library_delete",
        concurrency_limit=None,
    )
    quiet_refresh(delete_event, "library_after_delete")
    quiet_refresh(library_clean.listen(form), "library_after_clean")
    quiet_refresh(form.events.loaded(), "library_on_load")
    events = form.events
    after = {
        "build": events.build,
        "follow": events.follow,
        "cancel": events.cancel,
        "save": events.save,
        "lib_import": events.lib_import,
    }
    for name, event in after.items():
        if event is not None:
            quiet_refresh(event, f"library_after_{name}")
    if form.lang is not None:
        form.lang.change(
            list_library,
            inputs=refresh_inputs,
            outputs=listing,
            api_name="library_redraw",
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
    redraw_on_language(form, library.message, "lib_message_redraw")
