"""Pieces every form section has: a heading, and under the fields its derived values and its problems."""

from __future__ import annotations

import gradio as gr

from sdprep.ui.form import Form
from sdprep.ui.text import label


def heading(form: Form, key: str) -> gr.Markdown:
    return form.texted(gr.Markdown(label(key), elem_classes=["sdprep-heading"]), value=key)  # type: ignore[return-value]


def footer(form: Form, section: str, fields: tuple[str, ...], hint: str = "") -> None:
    """The section's derived values (muted) and its problems (red errors, amber warnings), filled live."""
    # The labels are never shown (Markdown and HTML hide them); they name the outputs in the API.
    hint_box = gr.Markdown(hint, label=f"{section} derived", elem_classes=["sdprep-hint"], elem_id=f"hint-{section}")
    problems = gr.HTML(
        "", label=f"{section} problems", elem_classes=["sdprep-problems-box"], elem_id=f"problems-{section}"
    )
    form.sections[section] = (fields, problems, hint_box)
