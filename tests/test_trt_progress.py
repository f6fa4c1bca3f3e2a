"""TensorRT's own progress: the build child's progress monitor, its events on the page and the command line, and
Cancel through the monitor (sdprep/child/trt_progress.py, sdprep/jobs/progress.py, sdprep/jobs/job.py).

The stand-in TensorRT's builder calls a progress monitor as TensorRT 10 does (nested phases, steps, False cancels the
build); STANDIN_TRT_STEPS and STANDIN_TRT_STEP_SECONDS set how long its phases take.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdprep.cli.report import Printer
from sdprep.jobs import job as job_module
from sdprep.jobs.board import BuildJob
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import (
    MAX_PHASES,
    MAX_STEPS,
    PHASE_NAME_LIMIT,
    TENSORRT_EVERY,
    TENSORRT_FIRST_EVERY,
    JobEvent,
    Progress,
    TensorrtPhase,
    tensorrt_message,
    tensorrt_phases,
)
from sdprep.messages import msg
from sdprep.params import BakedParams, params_from_values
from sdprep.text import plain_code, t
from sdprep.ui.views.jobs import log_text, progress_markdown
from testkit.app import running_app
from testkit.paths import ARTIFACTS
from testkit.timing import SUITE_TIMEOUT

from .conftest import ROOT, STANDIN, run_cli, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
CHILD_DIR = ROOT / "sdprep" / "child"


def make(tmp_path: Path) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines")})


def build(params: BakedParams, events: list[JobEvent], cancel: threading.Event | None = None) -> BuildResult:
    return run_build(params, runtime_defaults(), OPTIONS, events.append, cancel)


def logged(events: list[JobEvent], code: str) -> list[JobEvent]:
    return [event for event in events if event.kind == "log" and event.message.code == code]


# --- what the parent takes from the child ----------------------------------------------------------------------
def test_phases_from_the_child_are_validated_and_bounded() -> None:
    phases = tensorrt_phases(
        [
            {"name": "Building engine", "step": 5, "steps": 2},  # more steps done than there are: capped
            {"name": "x" * 5000 + "\n\x1b[31m", "step": -4, "steps": 10**12},  # negative, huge, long, escapes
            {"name": "", "step": 0, "steps": -1},
        ]
    )
    assert phases is not None
    assert phases[0] == TensorrtPhase("Building engine", 2, 2) and phases[0].percent == 100
    assert phases[1].steps == MAX_STEPS and phases[1].step == 0
    assert len(phases[1].name) <= PHASE_NAME_LIMIT and "\n" not in phases[1].name and "\x1b" not in phases[1].name
    assert phases[2] == TensorrtPhase("?", 0, 0) and phases[2].percent == 0
    deep = tensorrt_phases([{"name": f"p{n}", "step": 0, "steps": 1} for n in range(1000)])
    assert deep is not None and len(deep) == MAX_PHASES
    for malformed in (
        "Building engine",
        {"name": "a"},
        [{"name": "a", "step": "1", "steps": 2}],
        [{"name": "a", "step": True, "steps": 2}],
        [{"name": "a", "step": 1.5, "steps": 2}],
        [{"name": 7, "step": 1, "steps": 2}],
        [["a", 1, 2]],
    ):
        assert tensorrt_phases(malformed) is None, malformed
    assert tensorrt_phases([]) == ()


def test_the_parent_passes_on_at_most_about_ten_events_a_second_and_every_top_level_change() -> None:
    sent: list[JobEvent] = []
    progress = Progress(sent.append)
    started = time.monotonic()
    for step in range(20_000):
        progress.tensorrt(
            [{"name": "Building engine", "step": 0, "steps": 2}, {"name": "Tactics", "step": step % 500, "steps": 500}]
        )
    seconds = time.monotonic() - started
    # The first one at once, then at most one every TENSORRT_EVERY.
    assert 1 <= len(sent) <= 2 + seconds / TENSORRT_EVERY, (len(sent), seconds)
    assert sent[0].phases[0].name == "Building engine"
    # A waiting state goes out with a flush once its time has come.
    time.sleep(TENSORRT_EVERY)
    progress.tensorrt_flush()
    assert sent[-1].phases[1].step == 19_999 % 500
    # A top-level phase that ends goes out soon (TENSORRT_FIRST_EVERY), and nothing open is left.
    time.sleep(TENSORRT_FIRST_EVERY)
    progress.tensorrt([{"name": "Building engine", "step": 2, "steps": 2}])
    assert sent[-1].phases == (TensorrtPhase("Building engine", 2, 2),) and progress.tensorrt_open()
    time.sleep(TENSORRT_FIRST_EVERY)
    progress.tensorrt([])
    last: JobEvent = sent[-1]
    assert not last.phases and not progress.tensorrt_open()
    # Malformed reports change nothing.
    count = len(sent)
    progress.tensorrt("garbage")
    progress.tensorrt([{"name": "x", "step": "1", "steps": 2}])
    assert len(sent) == count and not progress.tensorrt_open()
    # The log keeps the top-level changes, not every step.
    assert sum("[tensorrt]" in line for line in progress.lines) <= 3


# --- the child's side ------------------------------------------------------------------------------------------
@pytest.fixture
def child_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[types.ModuleType, list[dict[str, Any]]]]:
    """sdprep/child/trt_progress as the build Python runs it (its siblings by bare name), its events collected."""
    monkeypatch.syspath_prepend(str(CHILD_DIR))
    for name in ("protocol", "trt_progress"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import trt_progress  # type: ignore[import-not-found,unused-ignore]

    events: list[dict[str, Any]] = []
    monkeypatch.setattr(trt_progress, "emit", lambda event, **fields: events.append({"event": event, **fields}))
    yield trt_progress, events
    for name in ("protocol", "trt_progress"):
        sys.modules.pop(name, None)


def test_the_child_reports_at_most_about_ten_events_a_second_always_the_top_level_start_and_end(
    child_modules: tuple[types.ModuleType, list[dict[str, Any]]],
) -> None:
    trt_progress, events = child_modules
    stop = threading.Event()
    reporter = trt_progress.PhaseReporter(stop)
    started = time.monotonic()
    reporter.start("Building engine", None, 2)
    for layer in range(2):
        reporter.start("Tactic selection", "Building engine", 3000)
        for step in range(3000):
            assert reporter.step("Tactic selection", step) is True
        reporter.finish("Tactic selection")
        reporter.step("Building engine", layer)
    reporter.finish("Building engine")
    seconds = time.monotonic() - started
    sent = [event["phases"] for event in events if event["event"] == "tensorrt"]
    forced = 3  # the top-level phase's start, last step and end
    assert len(sent) <= forced + 1 + seconds / trt_progress.EMIT_EVERY, (len(sent), seconds)
    assert sent[0] == [{"name": "Building engine", "step": 0, "steps": 2}]
    assert [{"name": "Building engine", "step": 2, "steps": 2}] in sent
    assert sent[-1] == []
    # A stop request: every step answers False from now on, and the child says so once.
    reporter.start("Building engine", None, 1)
    stop.set()
    assert reporter.step("Building engine", 0) is False and reporter.step("Building engine", 0) is False
    assert [event.get("code") for event in events if event["event"] == "log"] == ["trt_stopping"]


def test_the_child_says_once_which_case_it_is(
    child_modules: tuple[types.ModuleType, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    trt_progress, events = child_modules
    # TensorRT before 10: no IProgressMonitor.
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    assert trt_progress.attach_progress(threading.Event()) is False
    # A fork whose utilities have no hook (livepeer's builds through Polygraphy).
    fake_trt = types.SimpleNamespace(__version__="10.16.1.11", IProgressMonitor=object)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setitem(sys.modules, trt_progress.HOOK_MODULE, types.ModuleType(trt_progress.HOOK_MODULE))
    assert trt_progress.attach_progress(threading.Event()) is False
    # A fork without the module at all.
    monkeypatch.setitem(sys.modules, trt_progress.HOOK_MODULE, None)  # import raises ModuleNotFoundError
    assert trt_progress.attach_progress(threading.Event()) is False
    # The module is there but cannot be imported (what it imports is missing): said with its reason.
    monkeypatch.delitem(sys.modules, trt_progress.HOOK_MODULE)

    def import_module(name: str) -> Any:
        if name == trt_progress.HOOK_MODULE:
            raise ModuleNotFoundError("No module named 'diffusers_ipadapter'", name="diffusers_ipadapter")
        return sys.modules[name]

    monkeypatch.setattr(trt_progress, "importlib", types.SimpleNamespace(import_module=import_module))
    assert trt_progress.attach_progress(threading.Event()) is False
    codes = [event["code"] for event in events]
    assert codes == [
        "trt_progress_no_monitor",
        "trt_progress_no_hook",
        "trt_progress_no_hook",
        "trt_progress_unavailable",
    ], codes
    assert "diffusers_ipadapter" in events[-1]["params"]["reason"]
    assert events[0]["params"] == {"version": "8.6.1"}


# --- a build with the stand-ins --------------------------------------------------------------------------------
def test_a_build_reports_tensorrt_phases_and_they_reach_the_page_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_TRT_STEPS", "10")
    monkeypatch.setenv("STANDIN_TRT_STEP_SECONDS", "0.05")
    params = make(tmp_path)
    job = BuildJob(params)
    pages: list[str] = []

    def on_event(event: JobEvent) -> None:
        job.add(event)
        if job.tensorrt is not None and len(pages) < 3:
            pages.append(progress_markdown(job, 0, "ru"))

    result = run_build(params, runtime_defaults(), OPTIONS, on_event)
    assert result.outcome == "built", said(result.reason)
    assert [said(event.message) for event in job.events if event.message.code == "trt_progress_on"] == [
        t("trt_progress_on")
    ], "said once"
    assert pages, "no TensorRT progress reached the page"
    page = pages[-1]
    assert '<progress max="2"' in page and "TensorRT: Building engine" in page
    assert "Graph optimization" in page or "Tactic selection" in page
    # The log box stays the log: the bar's events replace one another, outside it.
    assert all(event.kind != "tensorrt" for event in job.events)
    assert "TensorRT:" not in log_text(job.events, "en")
    assert job.tensorrt is None, "every phase ended"


def test_phase_names_from_the_child_are_shown_as_text_on_the_page(tmp_path: Path) -> None:
    job = BuildJob(make(tmp_path))
    job.add(JobEvent("stage", 1.0, msg("stage_probe"), "probe"))
    hostile = tensorrt_phases([{"name": '<img src=x onerror="alert(1)">**b**', "step": 1, "steps": 3}])
    assert hostile is not None
    job.add(JobEvent("tensorrt", 2.0, tensorrt_message(hostile), None, hostile))
    page = progress_markdown(job, 0, "en")
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;**b**" in page
    assert '<progress max="3" value="1"' in page


def test_cancel_during_a_tensorrt_phase_stops_through_the_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_TRT_STEPS", "100000")  # hours of building, unless stopped
    monkeypatch.setenv("STANDIN_TRT_STEP_SECONDS", "0.01")
    params = make(tmp_path)
    cancel = threading.Event()
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.kind == "tensorrt" and event.phases:
            cancel.set()

    result = run_build(params, runtime_defaults(), OPTIONS, on_event, cancel)
    assert result.outcome == "cancelled", said(result.reason)
    assert logged(events, "stopping_trt") and logged(events, "trt_stopping") and logged(events, "child_stopped")
    assert not logged(events, "stopping_child"), "the child ended by itself, before the kill deadline"
    engines = tmp_path / "engines"
    assert not list(engines.rglob("*.engine")), "the engine being built is not written"
    assert not list(engines.rglob("config.yaml")) and not list(engines.rglob("*.tmp"))


def test_a_child_that_does_not_stop_in_time_is_ended_by_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_module, "STOP_GRACE", 1.0)
    monkeypatch.setenv("STANDIN_TRT_STEP_SECONDS", "600")  # TensorRT inside one long step: no step_complete to answer
    cancel = threading.Event()
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.kind == "tensorrt" and event.phases:
            cancel.set()

    result = run_build(make(tmp_path), runtime_defaults(), OPTIONS, on_event, cancel)
    assert result.outcome == "cancelled"
    asked, ended = logged(events, "stopping_trt"), logged(events, "stopping_child")
    assert asked and ended and ended[0].elapsed - asked[0].elapsed >= 1.0
    assert not logged(events, "child_stopped")
    assert not list((tmp_path / "engines").rglob("*.engine"))


def test_a_fork_without_the_hook_keeps_stages_and_elapsed_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SD_FORK", "livepeer")
    monkeypatch.setenv("STANDIN_TRT_STEPS", "4")  # each engine's TensorRT phase: long enough to be seen as a stage
    monkeypatch.setenv("STANDIN_TRT_STEP_SECONDS", "0.1")
    events: list[JobEvent] = []
    result = build(make(tmp_path), events)
    assert result.outcome == "built", said(result.reason)
    assert [event.message.code for event in events if event.message.code.startswith("trt_progress")] == [
        "trt_progress_no_hook"
    ]
    assert not [event for event in events if event.kind == "tensorrt"]
    assert "engine:unet" in result.stages


def test_cancel_without_the_monitor_ends_the_child_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SD_FORK", "livepeer")
    monkeypatch.setenv("STANDIN_TRT_STEPS", "100000")
    monkeypatch.setenv("STANDIN_TRT_STEP_SECONDS", "0.01")
    cancel = threading.Event()
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.kind == "stage" and (event.stage or "").startswith("engine:"):
            cancel.set()

    result = run_build(make(tmp_path), runtime_defaults(), OPTIONS, on_event, cancel)
    assert result.outcome == "cancelled"
    assert logged(events, "stopping_child") and not logged(events, "stopping_trt")


# --- the command line ------------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def tensorrt_event(elapsed: float, step: int, steps: int = 4, name: str = "Building engine") -> JobEvent:
    phases = (TensorrtPhase(name, step, steps),)
    return JobEvent("tensorrt", elapsed, tensorrt_message(phases), None, phases)


def test_on_a_terminal_the_progress_is_one_line_redrawn() -> None:
    out = Terminal()
    printer = Printer("en", out, out)
    show = printer.event_printer()
    for step in range(4):
        show(tensorrt_event(1.0 + step, step))
    show(JobEvent("log", 6.0, msg("child_stopped")))
    text = out.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 2, repr(text)
    drawn, after = text.split("\n")[0], text.split("\n")[1]
    assert drawn.rsplit("\r", 1)[-1].strip().endswith("TensorRT: Building engine 3/4 (75%)")
    assert t("child_stopped") in after
    # A phase that ends takes its line away: the next line starts clean, with nothing of it left.
    show(tensorrt_event(7.0, 1))
    show(JobEvent("tensorrt", 8.0, tensorrt_message(()), None, ()))
    show(JobEvent("log", 9.0, msg("child_stopped")))
    last = out.getvalue().split("\n")[2]
    assert last.rsplit("\r", 1)[-1].strip().endswith(t("child_stopped")), repr(last)


def test_redirected_the_progress_is_plain_lines_now_and_then() -> None:
    out = io.StringIO()
    printer = Printer("en", out, out)
    show = printer.event_printer()
    for step in range(200):
        show(tensorrt_event(1.0, step % 4))
    show(tensorrt_event(1.0, 4))  # the top-level phase's last step
    show(tensorrt_event(1.0, 0, name="Serializing"))  # another top-level phase
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("...", 1)[1].strip() for line in lines] == [
        "TensorRT: Building engine 0/4 (0%)",
        "TensorRT: Building engine 4/4 (100%)",
        "TensorRT: Serializing 0/4 (0%)",
    ]


def test_the_cli_build_prints_tensorrt_progress(tmp_path: Path) -> None:
    env = {"STANDIN_TRT_STEPS": "10", "STANDIN_TRT_STEP_SECONDS": "0.02"}
    done = run_cli("build", "--engines-dir", str(tmp_path / "engines"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if "TensorRT: Building engine" in line]
    assert progress and all("\r" not in line for line in progress), done.stdout
    assert plain_code(t("trt_progress_on")) in done.stdout  # the console writes code spans plainly
    assert done.stdout.splitlines()[-1].endswith("config.yaml"), "the last line is still the config's path"


# --- the page in a browser -------------------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_the_page_draws_tensorrt_progress_and_cancel_stops_through_the_monitor(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    expect = playwright_api.expect
    timeout = int(SUITE_TIMEOUT * 1000)
    env = {"STANDIN_TRT_STEPS": "100000", "STANDIN_TRT_STEP_SECONDS": "0.01"}  # hours, unless stopped
    with running_app(tmp_path / "app", env) as app, playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(timeout)
            page.goto(app.url)
            expect(page.locator("#hint-checkpoint")).to_contain_text("Detected family", timeout=timeout)
            page.get_by_role("button", name="Build", exact=True).click()
            # A real bar, drawn by the browser from the page's Markdown (the sanitizer keeps <progress>).
            bars = page.locator("#build-progress progress")
            expect(bars.first).to_be_visible(timeout=timeout)
            expect(page.locator("#build-progress")).to_contain_text("TensorRT: Building engine", timeout=timeout)
            expect(page.locator("#build-progress")).to_contain_text("Graph optimization", timeout=timeout)
            assert bars.first.get_attribute("max") == "2"
            inner_max = bars.nth(1).get_attribute("max")
            assert inner_max == "100000", inner_max
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.locator("#build-progress").screenshot(path=str(ARTIFACTS / "trt-progress.png"))
            page.get_by_role("button", name="Cancel", exact=True).click()
            expect(page.locator("#build-result")).to_contain_text("Cancelled", timeout=timeout)
            log = page.locator("#build-log textarea")
            expect(log).to_have_value(re.compile(re.escape(t("child_stopped"))), timeout=timeout)
            assert t("stopping_child") not in log.input_value(), "the child ended by itself"
            assert not list(app.engines.rglob("*.engine")) and not list(app.engines.rglob("config.yaml"))
        finally:
            browser.close()
