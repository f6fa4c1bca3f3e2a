"""The engines library: every prepared model under the form's engines folder, its variants (status, engines and
sizes, when and on which GPU / TensorRT they were built); load one into the form, or delete a model's folder
(only inside the engines folder, only after "I am sure").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.engines import DeleteRefused, PreparedModel, delete_model, list_models
from sdprep.ui import present
from sdprep.ui.components.actions import fill_outputs, load_into_form
from sdprep.ui.form import Form
from sdprep.ui.text import label, t

CURRENT = "config.yaml"  # the variant choice that means the model's current config.yaml


def render(form: Form) -> None:
    form.texted(gr.Markdown(label("lib_intro")), value="lib_intro")
    form.part(
        "lib_refresh",
        gr.Button(label("btn_lib_refresh"), size="sm", elem_id="library-refresh"),
        value="btn_lib_refresh",
    )
    form.part("library", gr.HTML("", label=label("o_library"), elem_id="library"))
    with gr.Row(equal_height=True):
        form.part("lib_model", gr.Dropdown([], value=None, label=label("f_lib_model"), scale=2), label="f_lib_model")
        form.part(
            "lib_variant", gr.Dropdown([], value=None, label=label("f_lib_variant"), scale=3), label="f_lib_variant"
        )
    with gr.Row(equal_height=True):
        form.part(
            "lib_load",
            gr.Button(label("btn_lib_load"), variant="primary", elem_id="library-load"),
            value="btn_lib_load",
        )
        form.part("lib_sure", gr.Checkbox(value=False, label=label("f_lib_sure")), label="f_lib_sure")
        form.part(
            "lib_delete",
            gr.Button(label("btn_lib_delete"), variant="stop", elem_id="library-delete"),
            value="btn_lib_delete",
        )
    form.part("lib_message", gr.Markdown("", label=label("o_lib_message"), elem_id="library-message"))


def _folder(values: dict[Block, Any], form: Form) -> Path:
    return Path(str(values.get(form.fields["engines_dir"]) or "engines").strip() or "engines").expanduser()


def _find(models: list[PreparedModel], slug: str | None) -> PreparedModel | None:
    return next((model for model in models if model.slug == slug), None)


def variant_choices(model: PreparedModel | None, lang: str) -> list[tuple[str, str]]:
    if model is None:
        return []
    choices = [(t("lib_current_config", lang), CURRENT)] if model.config else []
    return choices + [(variant.name, variant.name) for variant in model.variants]


def refresh(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    folder = _folder(values, form)
    models = list_models(folder)
    slugs = [model.slug for model in models]
    selected = values.get(form.parts["lib_model"])
    selected = selected if selected in slugs else (slugs[0] if slugs else None)
    choices = variant_choices(_find(models, selected), lang)
    variant = values.get(form.parts["lib_variant"])
    variant = variant if variant in [value for _, value in choices] else (choices[0][1] if choices else None)
    return {
        form.parts["library"]: present.library_html(models, folder.resolve(), lang),
        form.parts["lib_model"]: gr.update(choices=slugs, value=selected),
        form.parts["lib_variant"]: gr.update(choices=choices, value=variant),
    }


def select_model(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    model = _find(list_models(_folder(values, form)), values.get(form.parts["lib_model"]))
    choices = variant_choices(model, lang)
    return {form.parts["lib_variant"]: gr.update(choices=choices, value=choices[0][1] if choices else None)}


def load(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    message = form.parts["lib_message"]
    slug = values.get(form.parts["lib_model"])
    model = _find(list_models(_folder(values, form)), slug)
    if model is None:
        return {message: t("lib_choose", lang)}
    name = values.get(form.parts["lib_variant"])
    variant = next((v for v in model.variants if v.name == name), None)
    path = variant.config if variant is not None else model.config
    if path is None:
        return {message: t("lib_no_config", lang, slug=slug)}
    updates = load_into_form(form, str(path), lang)
    updates[message] = updates.pop(form.parts["message"], "")
    return updates


def delete(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    message = form.parts["lib_message"]
    slug = values.get(form.parts["lib_model"])
    if not slug:
        return {message: t("lib_choose", lang)}
    if not values.get(form.parts["lib_sure"]):
        return {message: t("lib_sure_first", lang)}
    try:
        deleted = delete_model(_folder(values, form), str(slug))
    except DeleteRefused as error:
        return {message: t("lib_refused", lang, error=error), form.parts["lib_sure"]: False}
    except OSError as error:
        return {message: t("lib_refused", lang, error=error.strerror or error), form.parts["lib_sure"]: False}
    return {message: t("lib_deleted", lang, path=deleted), form.parts["lib_sure"]: False}


def listen(form: Form) -> None:
    lang_input = {form.lang} if form.lang is not None else set()
    base = {form.fields["engines_dir"], *lang_input}
    listing = [form.parts[name] for name in ("library", "lib_model", "lib_variant")]
    refresh_inputs = {*base, form.parts["lib_model"], form.parts["lib_variant"]}

    def list_library(values: dict[Block, Any]) -> dict[Block, Any]:
        return refresh(form, values)

    def variants(values: dict[Block, Any]) -> dict[Block, Any]:
        return select_model(form, values)

    def load_variant(values: dict[Block, Any]) -> dict[Block, Any]:
        return load(form, values)

    def delete_selected(values: dict[Block, Any]) -> dict[Block, Any]:
        return delete(form, values)

    def quiet_refresh(dependency: Any, name: str) -> None:
        dependency.then(
            list_library,
            inputs=refresh_inputs,
            outputs=listing,
            api_name=name,
            api_visibility="undocumented",
            show_progress="hidden",
        )

    form.parts["lib_refresh"].click(list_library, inputs=refresh_inputs, outputs=listing, api_name="library_list")
    form.parts["lib_model"].input(
        variants,
        inputs={*base, form.parts["lib_model"]},
        outputs=form.parts["lib_variant"],
        api_name="library_variants",
    )
    form.parts["lib_load"].click(
        load_variant,
        inputs={*base, form.parts["lib_model"], form.parts["lib_variant"]},
        outputs=[*fill_outputs(form), form.parts["lib_message"]],
        api_name="library_load",
    )
    delete_event = form.parts["lib_delete"].click(
        delete_selected,
        inputs={*base, form.parts["lib_model"], form.parts["lib_sure"]},
        outputs=[form.parts["lib_message"], form.parts["lib_sure"]],
        api_name="library_delete",
    )
    quiet_refresh(delete_event, "library_after_delete")
    form.events["page_load"].then(
        list_library,
        inputs=refresh_inputs,
        outputs=listing,
        api_name="library_on_load",
        api_visibility="undocumented",
        show_progress="hidden",
    )
    for name in ("build", "follow", "cancel", "save"):
        if name in form.events:
            quiet_refresh(form.events[name], f"library_after_{name}")
    if form.lang is not None:
        form.lang.change(
            list_library,
            inputs=refresh_inputs,
            outputs=listing,
            api_name="library_redraw",
            api_visibility="undocumented",
            show_progress="hidden",
        )
    form.fields["engines_dir"].blur(
        list_library,
        inputs=refresh_inputs,
        outputs=listing,
        api_name="library_for_folder",
        api_visibility="undocumented",
    )
