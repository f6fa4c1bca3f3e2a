"""The language switch: English / Russian. The first paint follows the browser's language through gr.I18n; on
load the switch is set from navigator.language, and any change re-renders every label from the text table.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.ui.form import Form
from sdprep.ui.text import LANGUAGE_CHOICES, label, lang_of

DETECT_JS = "(locale) => navigator.language || 'en'"


def render(form: Form) -> None:
    form.lang = form.texted(
        gr.Radio(LANGUAGE_CHOICES, value="en", label=label("language"), elem_id="language", min_width=200),
        label="language",
    )  # type: ignore[assignment]
    form.part("locale", gr.Textbox(value="", visible=False, label="locale"))


def listen(form: Form, demo: gr.Blocks) -> None:
    assert form.lang is not None

    def detect_language(locale: str) -> str:
        return lang_of(locale)

    def relabel(lang: str) -> dict[Block, Any]:
        return form.relabel(lang)

    # Everything else that runs on page load chains onto this, so it renders in the detected language.
    form.events["page_load"] = demo.load(
        detect_language,
        inputs=form.parts["locale"],
        outputs=form.lang,
        js=DETECT_JS,
        api_name="detect_language",
        show_progress="hidden",
        concurrency_limit=None,
    )
    form.lang.change(
        relabel,
        inputs=form.lang,
        outputs=[block for block, _ in form.texts],
        api_name="set_language",
        show_progress="hidden",
        concurrency_limit=None,
    )
