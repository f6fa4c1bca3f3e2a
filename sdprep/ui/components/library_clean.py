"""The library's Clean up: what no build uses (sdprep.clean), listed with sizes, removed after "I am sure".

Under Delete's rules (sdprep.ui.access): removing is for the machine's own user only, and a model that builds or
checks is skipped. What was listed is kept on the server (a gr.State), and only that is removed, and only what is
still unused then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.events import Dependency

from sdprep.clean import find_leftovers, plan_messages, removal_messages, remove_leftovers
from sdprep.messages import Message, msg
from sdprep.ui import state
from sdprep.ui.access import owner_only
from sdprep.ui.components.common import MessageBox, message_box, redraw_on_language
from sdprep.ui.form import Form
from sdprep.ui.i18n import label

CLEAN_SHOWN = 200  # listed lines on the page; the command line lists all


@dataclass(frozen=True)
class LibraryClean:
    """Find what no build uses, and remove it after "I am sure"."""

    find: gr.Button
    sure: gr.Checkbox
    clean: gr.Button
    paths: gr.State  # what the last Find listed: only that may be removed
    listing: MessageBox  # what Find found, or what the removal did

    def outputs(self) -> list[Block]:
        return [*self.listing.outputs(), self.paths, self.sure, self.clean]


def render(form: Form) -> None:
    with gr.Accordion(label("btn_lib_clean"), open=False, elem_id="library-clean-box"):
        gr.Markdown(label("lib_clean_intro"))
        with gr.Row(equal_height=True):
            find = gr.Button(label("btn_lib_clean_find"), size="sm", elem_id="library-clean-find")
            sure = gr.Checkbox(
                value=False, label=label("f_lib_clean_sure"), interactive=False, elem_id="library-clean-sure"
            )
            clean_button = gr.Button(label("btn_lib_clean"), variant="stop", interactive=False, elem_id="library-clean")
        paths = gr.State([])
        listing = message_box("library-clean-list")
    form.clean = LibraryClean(find, sure, clean_button, paths, listing)


def _bounded(lines: list[Message]) -> list[Message]:
    if len(lines) <= CLEAN_SHOWN:
        return lines
    return [*lines[: CLEAN_SHOWN - 1], msg("clean_more", count=len(lines) - CLEAN_SHOWN + 1)]


def find_clean(form: Form, values: dict[Block, Any], request: gr.Request | None) -> dict[Block, Any]:
    """List what no build uses; "I am sure" becomes available to the machine's own user when there is some."""
    lang = form.language(values)
    handles = form.clean
    plan = find_leftovers(state.engines_root())
    lines = _bounded(plan_messages(plan))
    reason = owner_only("clean", request)
    if plan.items and reason is not None:
        lines.append(reason)
    return {
        **handles.listing.say(lines, lang),
        handles.paths: [str(item.path) for item in plan.items],
        handles.sure: gr.Checkbox(value=False, interactive=bool(plan.items) and reason is None),
        handles.clean: gr.Button(interactive=False),
    }


def clean(form: Form, values: dict[Block, Any], request: gr.Request | None) -> dict[Block, Any]:
    """Remove what was listed (and is still unused), after "I am sure"; only for the machine's own user."""
    lang = form.language(values)
    handles = form.clean
    reset: dict[Block, Any] = {
        handles.sure: gr.Checkbox(value=False, interactive=False),
        handles.clean: gr.Button(interactive=False),
    }
    not_owner = owner_only("clean", request)
    if not_owner is not None:  # the page disables the controls; this is for requests sent without it
        return {**handles.listing.say([not_owner], lang), **reset}
    listed = values.get(handles.paths)
    if not isinstance(listed, list) or not listed:
        return {**handles.listing.say([msg("lib_clean_find_first")], lang), **reset}
    if not values.get(handles.sure):
        return handles.listing.say([msg("lib_clean_sure_first")], lang)
    removal = remove_leftovers(state.engines_root(), only=[Path(str(path)) for path in listed])
    skipped = [msg("clean_skipped", model=item.model, reason=item.reason) for item in removal.plan.skipped]
    lines = _bounded([*skipped, *removal_messages(removal)])
    return {**handles.listing.say(lines, lang), handles.paths: [], **reset}


def listen(form: Form) -> Dependency:
    """The Clean up controls' events; returns the removal's event (the library is listed again after it)."""
    lang_input = {form.lang} if form.lang is not None else set()
    handles = form.clean
    outputs = handles.outputs()

    def find_selected(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        return find_clean(form, values, request)

    def clean_listed(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        return clean(form, values, request)

    find_inputs: set[Block] = {handles.paths, *lang_input}
    handles.find.click(
        find_selected, inputs=find_inputs, outputs=outputs, api_name="library_clean_find", concurrency_limit=None
    )
    handles.sure.change(
        lambda sure: gr.Button(interactive=bool(sure)),
        inputs=handles.sure,
        outputs=handles.clean,
        api_name="library_clean_sure",
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    redraw_on_language(form, handles.listing, "lib_clean_list_redraw")
    clean_inputs: set[Block] = {handles.paths, handles.sure, *lang_input}
    return handles.clean.click(
        clean_listed,
        inputs=clean_inputs,
        outputs=outputs,
        api_name="library_clean",
        concurrency_limit=1,  # one removal at a time: a second waits and finds the first one's work done
    )
