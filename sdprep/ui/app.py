"""The page: layout of the sections, the wiring between them, and launching the server.

create_demo(RUNTIME_DEFAULTS) -> gr.Blocks     builds the page (cheap: no probe, no build, no torch)
launch(demo, host, port, auth) -> int          serves it until Ctrl-C
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
import webbrowser
from typing import Any

import gradio as gr

from sdprep.config import RuntimeDefaults
from sdprep.params import DEFAULTS
from sdprep.ui import text
from sdprep.ui.components import (
    actions,
    build,
    checkpoint,
    controlnet,
    environment,
    ipadapter,
    language,
    library,
    lora,
    output,
    preview,
    resolution,
    sampling,
)
from sdprep.ui.form import Form
from sdprep.ui.text import label
from sdprep.validate import has_errors

FORM_SECTIONS = (checkpoint, sampling, resolution, lora, controlnet, ipadapter, output)
QUEUE_SIZE = 64
OPEN_BROWSER_ENV = "SDPREP_OPEN_BROWSER"

THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=("ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Consolas", "monospace"),
)
CSS = """
.sdprep-heading h3 { margin: 0 0 .25rem 0; }
.sdprep-hint { color: var(--body-text-color-subdued); font-size: .9em; }
.sdprep-hint p { margin: .1rem 0; }
.sdprep-problems { list-style: none; margin: .2rem 0 0 0; padding: 0; }
.sdprep-problems li { margin: .2rem 0; padding: .3rem .55rem; border-radius: 6px; font-size: .9em; }
.sdprep-problems li.sdprep-error { color: #991b1b; background: #fee2e2; border-left: 4px solid #dc2626; }
.sdprep-problems li.sdprep-warning { color: #92400e; background: #fef3c7; border-left: 4px solid #d97706; }
.dark .sdprep-problems li.sdprep-error { color: #fecaca; background: #450a0a; }
.dark .sdprep-problems li.sdprep-warning { color: #fde68a; background: #451a03; }
.sdprep-severity { font-weight: 600; text-transform: uppercase; font-size: .75em; margin-right: .3rem; }
.sdprep-slot { padding: .4rem; }
.sdprep-muted { color: var(--body-text-color-subdued); }
#build-log textarea { font-family: var(--font-mono); font-size: 12.5px; line-height: 1.35; }
#library .sdprep-model { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .5rem .8rem;
  margin: 0 0 .8rem 0; }
#library h4 { margin: .2rem 0; }
#library table { width: 100%; border-collapse: collapse; font-size: .9em; }
#library th, #library td { text-align: left; padding: .25rem .4rem; vertical-align: top;
  border-bottom: 1px solid var(--border-color-primary); }
#library li.sdprep-error { color: #b91c1c; }
.sdprep-badge { font-size: .7em; font-weight: 600; padding: .1rem .45rem; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--body-text-color); vertical-align: middle; }
#language { max-width: 260px; margin-left: auto; }
#derived table { width: 100%; table-layout: auto; }
#derived td:first-child, #derived th:first-child { white-space: nowrap; width: 1%; }
#derived code { word-break: break-all; white-space: normal; }
#build-result code { word-break: break-all; }
"""


def create_demo(runtime: RuntimeDefaults) -> gr.Blocks:
    form = Form(runtime)
    with gr.Blocks(title=text.t("title").lstrip("# "), analytics_enabled=False) as demo:
        with gr.Row(equal_height=True):
            with gr.Column(scale=5):
                form.texted(gr.Markdown(label("title"), elem_id="title"), value="title")
                form.texted(gr.Markdown(label("subtitle")), value="subtitle")
            with gr.Column(scale=1, min_width=240):
                language.render(form)
        with gr.Tabs():
            with form.part("tab_prepare", gr.Tab(label("tab_prepare"), id="prepare"), label="tab_prepare"):
                _prepare_tab(form, runtime)
            with form.part("tab_library", gr.Tab(label("tab_library"), id="library"), label="tab_library"):
                library.render(form)
            with form.part(
                "tab_environment", gr.Tab(label("tab_environment"), id="environment"), label="tab_environment"
            ):
                environment.render(form)
        # Language first: the other page-load handlers chain onto its detection. Library last: it refreshes after
        # build, cancel and save.
        language.listen(form, demo)
        build.listen(form)
        actions.listen(form)
        environment.listen(form)
        preview.listen(form)
        library.listen(form)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=None)
    _prepare_for_hot_reload(demo)
    return demo


def _prepare_tab(form: Form, runtime: RuntimeDefaults) -> None:
    """The form's sections in the spec's order, then the buttons and the build; the live preview beside them."""
    with gr.Row():
        with gr.Column(scale=3):
            for section in FORM_SECTIONS:
                with gr.Column(variant="panel"):
                    section.render(form)
            with gr.Column(variant="panel"):
                actions.render(form, build_enabled=not has_errors(preview.check(DEFAULTS)))
                build.render(form)
        with gr.Column(scale=2):
            form.texted(gr.Markdown(label("sec_preview"), elem_classes=["sdprep-heading"]), value="sec_preview")
            preview.render(form, runtime)


def _prepare_for_hot_reload(demo: gr.Blocks) -> None:
    """Under `gradio gradio_prepare.py` a reloaded page is served without launch(): give it launch's look too."""
    demo.i18n_instance = text.i18n()  # type: ignore[attr-defined]
    demo.css = CSS
    demo.css_paths = []  # type: ignore[attr-defined]
    demo.theme = THEME
    setter: Any = getattr(demo, "_set_html_css_theme_variables", None)
    if callable(setter):
        setter()


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """ "user:password" -> ("user", "password"); None or "" -> None. Raises ValueError without a colon."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user:
        raise ValueError('--auth must look like "user:password".')
    return user, password


def browser_url(host: str, port: int) -> str:
    """The address a browser on this machine opens: all-interfaces hosts are reached through 127.0.0.1."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "", "localhost") else host
    return f"http://{reachable}:{port}/"


def open_browser_when_up(url: str, timeout: float = 120.0) -> None:
    """Open `url` in the default browser as soon as the server answers (in a thread: launch() blocks)."""

    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    webbrowser.open(url)
                    return
            except OSError:
                time.sleep(0.5)

    threading.Thread(target=wait_then_open, name="sdprep-open-browser", daemon=True).start()


def launch(demo: gr.Blocks, host: str, port: int, auth: str | None, open_browser: bool | None = None) -> int:
    """Serve until Ctrl-C. `open_browser` (default: $SDPREP_OPEN_BROWSER, set by run.sh / run.bat) opens the page."""
    try:
        credentials = parse_auth(auth)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if host in ("0.0.0.0", "::", "") and credentials is None:
        print(
            f"warning: serving on all interfaces ({host or '0.0.0.0'}:{port}) without a password: anyone on this "
            "network can build and delete engines. Use --auth user:password (or SDPREP_AUTH), or --host 127.0.0.1.",
            file=sys.stderr,
            flush=True,
        )
    if open_browser is None:
        open_browser = os.environ.get(OPEN_BROWSER_ENV, "") not in ("", "0")
    # Not on a hot reload (launch() then runs in the reloader's thread): one tab per start is enough.
    if open_browser and threading.current_thread() is threading.main_thread():
        open_browser_when_up(browser_url(host, port))
    demo.launch(
        server_name=host,
        server_port=port,
        auth=credentials,
        i18n=text.i18n(),
        theme=THEME,
        css=CSS,
        show_error=True,
        footer_links=["api", "gradio", "settings"],
    )
    return 0
