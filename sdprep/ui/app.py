"""The page: layout of the sections, the wiring between them, and launching the server.

create_demo(RUNTIME_DEFAULTS) -> gr.Blocks     builds the page (cheap: no probe, no build, no torch)
launch(demo, host, port, auth) -> int          serves it until Ctrl-C
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import urllib.request
import webbrowser
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdprep.config import RuntimeDefaults
from sdprep.jobs.environment import ProbeError, probe
from sdprep.messages import has_errors
from sdprep.params import DEFAULTS
from sdprep.text import labelled, plain_code, system_language, t, word
from sdprep.ui import heap, state
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
    profile,
    resolution,
    sampling,
)
from sdprep.ui.form import Form
from sdprep.ui.i18n import HEAD, I18N, label
from sdprep.ui.sessions import release_closed_sessions
from sdprep.ui.style import CSS, THEME
from sdprep.ui.views.params import summary_markdown

FORM_SECTIONS = (checkpoint, sampling, resolution, lora, controlnet, ipadapter, profile, output)
OPEN_BROWSER_ENV = "SDPREP_OPEN_BROWSER"
MAX_THREADS = build.FOLLOWERS + 64  # Gradio's event slots: every follower of a build, and 64 more for the rest
# Gradio records every event for its monitoring dashboard (up to 10,000 records, about 4 MB, a server's memory growing
# for its first hours) and summarises all of them with pandas after each event (30-50 ms of CPU at 1,000-10,000).
# The app does not offer that dashboard (launch(enable_monitoring=False)): a few records, summarised rarely. Its own
# settings, read when the queue is made; one given in the environment is kept.
GRADIO_EVENT_RECORDS = {"GRADIO_ANALYTICS_MAX_EVENTS": "100", "GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000"}


@dataclass(frozen=True)
class Page:
    """What of the page belongs to no section: the language switch, the tabs, the banner above the form."""

    language: gr.Radio
    tabs: gr.Tabs
    tab_prepare: gr.Tab
    tab_library: gr.Tab
    tab_environment: gr.Tab
    banner: gr.Markdown

    def tab_labels(self) -> dict[str, gr.Tab]:
        """Each tab by its label key."""
        return {
            "tab_prepare": self.tab_prepare,
            "tab_library": self.tab_library,
            "tab_environment": self.tab_environment,
        }


def create_demo(runtime: RuntimeDefaults) -> gr.Blocks:
    form = Form(runtime)
    demo = gr.Blocks(title="StreamDiffusion model prep", analytics_enabled=False)
    with demo:
        with gr.Row(equal_height=True):
            with gr.Column(scale=5):
                gr.Markdown(label("title"), elem_id="title")
                gr.Markdown(label("subtitle"))
            with gr.Column(scale=1, min_width=240):
                switch = language.render(form)
        # Tabs that do not fit a phone's width go to a second row, never into Gradio's "•••" menu (two of three tabs
        # hidden behind it in Russian at 390 px).
        with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as tabs:
            with gr.Tab(label("tab_prepare"), id="prepare", elem_id="tab-prepare") as tab_prepare:
                banner = _prepare_tab(form)
            with gr.Tab(label("tab_library"), id="library", elem_id="tab-library") as tab_library:
                library.render(form)
            with gr.Tab(label("tab_environment"), id="environment", elem_id="tab-environment") as tab_environment:
                environment.render(form)
        form.page = Page(switch, tabs, tab_prepare, tab_library, tab_environment, banner)
        # Language first: the other page-load handlers chain onto its detection; the environment before the preview
        # (the banner needs it). Library last: it refreshes after build, cancel and save.
        language.listen(form, demo)
        output.listen(form)
        environment.listen(form)
        checkpoint.listen(form)
        controlnet.listen(form)
        ipadapter.listen(form)
        profile.listen(form)
        preview.listen(form)
        build.listen(form)
        actions.listen(form)
        library.listen(form, demo)
        release_closed_sessions(demo)
    # No size limit: builds are bounded by the JobBoard, per page and in all, with a message; every other event
    # answers in milliseconds and must never meet "Queue is full". Every running event, a page following a build
    # too, holds one of Gradio's max_threads slots (40 by default): above the builds lane's limit, so followers
    # never take the slots form changes and Cancel need.
    demo.max_threads = MAX_THREADS
    for name, value in GRADIO_EVENT_RECORDS.items():
        os.environ.setdefault(name, value)
    demo.queue(max_size=None, default_concurrency_limit=None)
    _prepare_for_hot_reload(demo)
    return demo


def _prepare_tab(form: Form) -> gr.Markdown:
    """The banner (returned), then the form's sections in order with the build; the live preview beside them; the
    action bar."""
    banner = gr.Markdown("", visible=False, elem_id="setup-banner", elem_classes=["sdprep-banner"])
    with gr.Row():
        with gr.Column(scale=3):
            for section in FORM_SECTIONS:
                with gr.Column(variant="panel"):
                    section.render(form)
            with gr.Column(variant="panel"):
                actions.render(form)
                build.render(form)
        with gr.Column(scale=2, elem_id="preview-column"):
            gr.Markdown(label("sec_preview"), elem_classes=["sdprep-heading"])
            preview.render(form)
    # Last in the tab and sticky: in view at the bottom of the window on every width, and at the very end of the page
    # in its own place, below the content it would otherwise cover.
    problems = preview.check(DEFAULTS)
    actions.render_bar(form, summary_markdown(problems, "en"), build_enabled=not has_errors(problems))
    return banner


def _prepare_for_hot_reload(demo: gr.Blocks) -> None:
    """Under `gradio gradio_prepare.py` a reloaded page is served without launch(): give it launch's look too."""
    settings: dict[str, Any] = {"i18n_instance": I18N, "css": CSS, "css_paths": [], "theme": THEME, "head": HEAD}
    for name, value in settings.items():
        setattr(demo, name, value)
    setter: Any = getattr(demo, "_set_html_css_theme_variables", None)
    if callable(setter):
        setter()


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """ "user:password" -> ("user", "password"); None or "" -> None. ValueError without a user or a password."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user.strip() or not password:
        raise ValueError(t("auth_bad", system_language()))
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


def freeze_startup_heap() -> None:
    """Keep what exists once the page is built and served (Gradio, the page's components, the modules: about 180,000
    objects that live as long as the server) out of the garbage collector's full passes. A full pass otherwise walks
    all of them in the middle of whatever request it interrupts (171 ms in the benchmark's server on this 2-core
    machine; 18 ms once they are kept out). What is made afterwards (sessions, requests) is collected as before."""
    gc.collect()
    gc.freeze()


def launch(
    demo: gr.Blocks,
    host: str,
    port: int,
    auth: str | None,
    open_browser: bool | None = None,
    settings: state.ServerSettings | None = None,
) -> int:
    """Serve until Ctrl-C. `open_browser` (default: $SDPREP_OPEN_BROWSER, set by run.sh / run.bat) opens the page;
    `settings`: the engines folder and build Python the page uses (default: the environment's, ui.state)."""
    lang = system_language()
    if settings is not None:
        state.use_settings(settings)
    try:
        credentials = parse_auth(auth)
    except ValueError as problem:
        print(labelled(t("sev_error", lang), str(problem), lang), file=sys.stderr)  # the message names --auth itself
        return 2
    if host in ("0.0.0.0", "::", "") and credentials is None:
        engines = state.engines_root()
        print(
            plain_code(t("warn_open_server", lang, host=host or "0.0.0.0", port=port, engines=engines)), file=sys.stderr
        )
    # Who may do what (sdprep.ui.access), the same on every start: the page enforces it request by request.
    print(plain_code(t("access_policy_auth" if credentials else "access_policy", lang)), file=sys.stderr, flush=True)
    if open_browser is None:
        open_browser = os.environ.get(OPEN_BROWSER_ENV, "") not in ("", "0")
    main = threading.current_thread() is threading.main_thread()  # not a hot reload's watcher thread
    heap.limit_arenas()  # before Gradio's worker threads exist (sdprep/ui/heap.py says why)
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            auth=credentials,
            i18n=I18N,
            theme=THEME,
            css=CSS,
            head=HEAD,
            show_error=True,
            quiet=True,
            max_file_size=actions.UPLOAD_LIMIT,
            max_threads=MAX_THREADS,
            enable_monitoring=False,
            footer_links=["gradio", "settings"] if credentials else ["api", "gradio", "settings"],
            prevent_thread_lock=True,  # the address is printed once the port is ours, then this thread waits
        )
    except OSError as problem:
        if "port" in str(problem).lower() or "address" in str(problem).lower():
            print(plain_code(t("port_busy", lang, port=port, next=port + 1)), file=sys.stderr)
            return 3
        raise
    print(plain_code(t("serving_at", lang, url=browser_url(host, port))), flush=True)
    if main:  # a hot reload builds the page again: what an earlier one froze would never be freed
        freeze_startup_heap()
    if main:
        if getattr(demo, "server", None) is not None:  # a served page (not a stand-in for launch())
            say_when_cannot_build(lang)
        if open_browser:  # one tab per start, not one per hot reload
            open_browser_when_up(browser_url(host, port))
        demo.block_thread()
    return 0


def say_when_cannot_build(lang: str) -> None:
    """One console line when this machine cannot build (no NVIDIA GPU, torch or TensorRT yet), from a probe in a
    thread: the page is already served, and the probe's answer is the one the first page shows."""

    def probe_and_say() -> None:
        try:
            environment = probe(state.child_spec())
        except ProbeError as problem:
            said = plain_code(word(problem.message, lang))
            print(labelled(t("sev_warning", lang), said, lang), file=sys.stderr, flush=True)
            return
        if state.last_environment() is None:
            state.remember_environment(environment)
        missing = environment.missing()
        if missing:
            said = plain_code(t("console_cannot_build", lang, first=missing[0], count=len(missing)))
            print(said, file=sys.stderr, flush=True)

    threading.Thread(target=probe_and_say, name="sdprep-start-probe", daemon=True).start()
