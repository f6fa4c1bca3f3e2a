"""Engine output: the server's engines folder (shown, not chosen: --engines-dir sets it); each model gets
<folder>/<model_slug>/ with its engines and config.yaml."""

from __future__ import annotations

import gradio as gr

from sdprep.ui import state
from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form
from sdprep.ui.i18n import label


def render(form: Form) -> None:
    heading("sec_output")
    form.add(
        "engines_dir",
        gr.Textbox(
            value=str(state.engines_root()),
            interactive=False,
            label=label("f_engines_dir"),
            info=label("i_engines_dir"),
        ),
    )
    footer(form, "output")


def listen(form: Form) -> None:
    """The folder shown is the server's own on every page load: the page is built when the app is imported, before
    serve() hands over its settings (--engines-dir)."""

    def engines_folder() -> str:
        return str(state.engines_root())

    form.events.loaded().then(
        engines_folder,
        inputs=None,
        outputs=form.fields["engines_dir"],
        api_name="engines_folder",
        api_visibility="undocumented",
        show_progress="hidden",
        queue=False,
    )
