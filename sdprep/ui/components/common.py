"""Pieces every form section has: a heading, and under the fields its derived values and its problems."""

from __future__ import annotations

import gradio as gr

from sdprep.params import SPECS
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


def heading(key: str) -> gr.Markdown:
    return gr.Markdown(label(key), elem_classes=["sdprep-heading"])


def footer(form: Form, section: str, extra: tuple[str, ...] = ()) -> None:
    """The section's other declared fields, then its derived values (muted) and its problems, filled live.

    A problem shows under the section whose declared fields include its field (plus `extra`, form-only names).
    """
    form.add_rest(section)
    fields = tuple(name for name, spec in SPECS.items() if spec.section == section) + extra
    # The labels are never shown (Markdown and HTML hide them); they name the outputs in the API.
    hint_box = gr.Markdown("", label=f"{section} derived", elem_classes=["sdprep-hint"], elem_id=f"hint-{section}")
    problems = gr.HTML(
        "", label=f"{section} problems", elem_classes=["sdprep-problems-box"], elem_id=f"problems-{section}"
    )
    form.sections[section] = (fields, problems, hint_box)
