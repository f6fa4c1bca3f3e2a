"""Pieces the form sections share: a heading, under the fields their derived values and problems, and add-on
fields that follow the model's family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component

from sdprep.messages import Message
from sdprep.params import SPECS
from sdprep.ui.form import Form, on
from sdprep.ui.i18n import label
from sdprep.ui.views.html import page_word


def heading(key: str) -> gr.Markdown:
    return gr.Markdown(label(key), elem_classes=["sdprep-heading"])


def footer(form: Form, section: str, extra: tuple[str, ...] = ()) -> None:
    """The section's other declared fields, then its derived values (muted) and its problems, filled live.

    A problem shows under the section whose declared fields include its field (plus `extra`, form-only names).
    """
    form.add_rest(section)
    fields = tuple(name for name, spec in SPECS.items() if spec.section == section) + extra
    hint_box = gr.Markdown("", elem_classes=["sdprep-hint"], elem_id=f"hint-{section}")
    problems = gr.HTML("", elem_classes=["sdprep-problems-box"], elem_id=f"problems-{section}")
    form.sections[section] = (fields, problems, hint_box)


@dataclass(frozen=True)
class MessageBox:
    """A box for what the last action said, kept as Messages too (`said`) so that a change of the page's language
    words it again."""

    box: gr.Markdown
    said: gr.State

    def say(self, messages: list[Message], lang: str) -> dict[Block, Any]:
        """Updates that show `messages` (one per line), replacing what it said before."""
        return {self.box: "  \n".join(page_word(message, lang) for message in messages), self.said: list(messages)}

    def cleared(self) -> dict[Block, Any]:
        return {self.box: "", self.said: []}

    def outputs(self) -> list[Block]:
        return [self.box, self.said]


def message_box(elem_id: str) -> MessageBox:
    return MessageBox(said=gr.State([]), box=gr.Markdown("", elem_id=elem_id))


def redraw_on_language(form: Form, message: MessageBox, api_name: str) -> None:
    """Word the box again when the page's language changes."""
    if form.lang is None:
        return

    def redraw(values: dict[Block, Any]) -> dict[Block, Any]:
        return message.say(list(values.get(message.said) or []), form.language(values))

    form.lang.change(
        redraw,
        inputs={message.said, form.lang},
        outputs=message.outputs(),
        api_name=api_name,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )


def follow_model_family(
    form: Form, api: str, targets: list[Component], follow: Callable[[Form, dict[Block, Any]], dict[Block, Any]]
) -> None:
    """When the model or its family changes, `follow` swaps known add-ons of another family in `targets` for the
    model's own (ControlNets, the IP-Adapter); nothing changes when it returns no update."""

    def handler(values: dict[Block, Any]) -> dict[Block, Any]:
        return follow(form, values)

    for name in ("model", "model_family"):
        on(form.fields[name], "change")(
            plain_values(handler, list(targets)),
            inputs={form.fields["model"], form.fields["model_family"], *targets},
            outputs=targets,
            api_name=f"{api}_follow_{name}",
            api_visibility="undocumented",
            show_progress="hidden",
            queue=False,
        )


# --- property updates of fields that are inputs -----------------------------------------------------------------
# Gradio keeps, in a page's session, a new copy of a component for every property update (or skipped output) it gets
# while it is also the input of an event (docs/gradio-session-growth.md): a page's memory would grow with every form
# change. So no event has such a field as an output unless it always gives it a plain value; its property updates
# (interactive, info, choices) go through a state of its own, and an event whose only input is that state applies
# them, which Gradio runs only when the state changes.
_PROPERTIES = ("interactive", "info", "visible", "choices", "value", "minimum", "maximum")


def property_relay(form: Form, target: Block, api_name: str) -> gr.State:
    """The state a handler sets to change `target`'s properties (a plain dict, e.g. {"interactive": False})."""
    relay = form.relays[target] = gr.State(None)

    def apply(props: dict[str, Any]) -> Any:
        return gr.update(**props)

    relay.change(
        apply,
        inputs=relay,
        outputs=target,
        api_name=api_name,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    return relay


def relay_of(form: Form, target: Block) -> gr.State:
    return form.relays[target]


def relayed(form: Form, updates: dict[Block, Any]) -> dict[Block, Any]:
    """`updates` of related fields (components or gr.update()s) as updates of their relay states."""
    relays: dict[Block, Any] = {}
    for target, update in updates.items():
        args = update.constructor_args if isinstance(update, Block) else update if isinstance(update, dict) else {}
        relays[relay_of(form, target)] = {key: value for key, value in args.items() if key in _PROPERTIES}
    return relays


def plain_values(
    handler: Callable[[dict[Block, Any]], dict[Block, Any]], fields: Sequence[Block]
) -> Callable[[dict[Block, Any]], dict[Block, Any]]:
    """`handler` for an event whose outputs include input `fields` (which must be its inputs too): each of them gets
    a plain value, the one it has when the handler sets none (a skipped output is a property update to Gradio)."""

    def wrapped(values: dict[Block, Any]) -> dict[Block, Any]:
        updates = handler(values)
        for block in fields:
            update = updates.get(block, values.get(block))
            if isinstance(update, dict) and update.get("__type__") == "update":
                update = update.get("value", values.get(block))
            updates[block] = update
        return updates

    return wrapped


def only_changed(record: Block, values: dict[Block, Any], updates: dict[Block, Any]) -> dict[Block, Any]:
    """`updates` with each property update of the event's input fields (a list's choices) turned into its plain value
    when the page was sent the same properties last (`record`, a gr.State that is an input and an output of the
    event). Updates of other components (buttons) are left as they are."""
    sent = values.get(record)
    sent = dict(sent) if isinstance(sent, dict) else {}
    changed: dict[Block, Any] = {}
    for block, update in updates.items():
        args = update.constructor_args if isinstance(update, Block) else update if isinstance(update, dict) else None
        if args is None or block not in values:  # not an input of this event: nothing to keep the same size
            changed[block] = update
            continue
        props = repr(sorted((key, value) for key, value in args.items() if key in _PROPERTIES and key != "value"))
        key = str(block.elem_id or block._id)
        if sent.get(key) == props:
            changed[block] = args.get("value", values.get(block))
        else:
            changed[block] = update
            sent[key] = props
    changed[record] = sent
    return changed
