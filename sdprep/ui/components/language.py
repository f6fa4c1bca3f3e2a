"""The language switch (English / Русский) and the page's language for the server.

Gradio translates every label from its locale (ui/i18n.py); the switch changes that locale through Gradio itself.
The page reports its language into a hidden field on load and on every change, and every handler reads it to word
what it composes; on a change the composed parts are drawn again in the new language.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.text import lang_of
from sdprep.ui.form import Form
from sdprep.ui.i18n import DETECT_JS, LANGUAGE_CHOICES, SWITCH_JS, label


def render(form: Form) -> gr.Radio:
    """The switch (returned: it is the page's, app.Page) and the page's language (`form.lang`)."""
    switch = gr.Radio(LANGUAGE_CHOICES, value=None, label=label("language"), elem_id="language", min_width=200)
    # In the page (visible="hidden"), so the script can report the language into it.
    form.lang = gr.Textbox(value="en", visible="hidden", elem_id="page-lang")
    return switch


def listen(form: Form, demo: gr.Blocks) -> None:
    assert form.lang is not None
    switch = form.page.language

    def detect(locale: str) -> tuple[str, str]:
        lang = lang_of(locale)
        return lang, lang

    def follow(locale: str) -> str:
        return lang_of(locale)

    # Everything else that runs on page load chains onto this, so it words its text in the page's language.
    form.events.page_load = demo.load(
        detect,
        inputs=form.lang,
        outputs=[form.lang, switch],
        js=DETECT_JS,
        api_name="detect_language",
        show_progress="hidden",
        concurrency_limit=None,
    )
    switch.input(None, inputs=switch, js=SWITCH_JS, show_progress="hidden", queue=False)
    # Gradio words the label of a tab that has not been opened yet only once, when the page is first drawn: after a
    # change of language the tabs get their labels again.
    tabs = form.page.tab_labels()

    def relabel_tabs() -> dict[Block, Any]:
        return {tab: gr.Tab(label=label(key)) for key, tab in tabs.items()}

    form.lang.change(
        relabel_tabs,
        inputs=None,
        outputs=list(tabs.values()),
        api_name="tabs_relabel",
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    form.lang.input(
        follow,
        inputs=form.lang,
        outputs=switch,
        api_name="language_follow",
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
