"""A page's session stays the same size however long it is used, and a closed page's session is released.

Gradio keeps each page's session (a copy of the page's config, its gr.State values) on the server; a component that
is an input and also gets property updates (or skipped outputs) adds a copy of itself to it every time
(docs/gradio-session-growth.md). The app runs in this process here, so the tests can look at Gradio's own record of
the sessions; the page is driven through its API, as the page's script drives it.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from bench.soak import build_then_cancel
from sdprep.ui import sessions
from sdprep.ui.app import GRADIO_EVENT_RECORDS, MAX_THREADS, create_demo
from testkit.page_client import PageClient
from tests.conftest import ROOT, runtime_defaults
from tests.ui_helpers import STANDIN, Api

FORK_CONFIG = ROOT / "tests" / "data" / "forkni" / "profiling_quality_ipa.yaml"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[gr.Blocks, str]]:
    monkeypatch.setenv("SDPREP_ENGINES_DIR", str(tmp_path / "engines"))
    blocks = create_demo(runtime_defaults())
    _, url, _ = blocks.launch(prevent_thread_lock=True, quiet=True, max_threads=MAX_THREADS)
    try:
        yield blocks, url
    finally:
        blocks.close()


def session_size(blocks: gr.Blocks, session: str) -> tuple[int, int]:
    """How many components the session holds, and how many component configs."""
    state: Any = blocks.state_holder.session_data[session]
    return len(state.blocks_config.blocks), len(state.config_values)


def random_form(rng: random.Random) -> dict[str, Any]:
    """A change of the form as a person makes them: switches, choices and sizes that show, hide and lock fields."""
    return {
        "consistency_lora": rng.choice(["none", "lcm", "tcd"]),
        "scheduler": rng.choice(["lcm", "tcd"]),
        "use_cached_attn": rng.random() < 0.5,
        "cache_maxframes": rng.choice([1, 2, 4]),
        "static_shapes": rng.random() < 0.5,
        "opt_level": rng.choice([2, 3, 4]),
        "fp8": rng.random() < 0.3,
        "use_controlnet": rng.random() < 0.5,
        "cn_count": rng.choice([1, 2, 3]),
        "use_ipadapter": rng.random() < 0.5,
        "denoise_steps": rng.choice([1, 2, 3]),
        "width": rng.choice([512, 640, 768]),
        "model": rng.choice(["stabilityai/sd-turbo", "stabilityai/sdxl-turbo", "KBlueLeaf/kohaku-v2.1"]),
    }


@pytest.mark.slow
def test_a_thousand_form_changes_leave_the_session_the_same_size(demo: tuple[gr.Blocks, str], tmp_path: Path) -> None:
    blocks, url = demo
    (tmp_path / "engines" / "fork").mkdir(parents=True)
    shutil.copy(FORK_CONFIG, tmp_path / "engines" / "fork" / "config.yaml")
    api = Api(url)
    try:
        session = api.client.session_hash
        rng = random.Random(21)
        # Every kind of change once first (a load, a profile choice), so the session holds what it ever will.
        api.call("/preview", **random_form(rng))
        api.call("/load_config", load_path="fork/config.yaml")
        api.call("/profile_apply", profile="quality")
        api.call("/preview", **random_form(rng))
        before = session_size(blocks, session)
        for change in range(1000):
            api.call("/preview", **random_form(rng))
            if change % 100 == 0:
                api.call("/load_config", load_path="fork/config.yaml")
                api.call("/profile_apply", profile=rng.choice(["flexible", "fast", "quality", "custom"]))
        assert session_size(blocks, session) == before
        assert list(blocks.state_holder.session_data) == [session]
    finally:
        api.close()


def test_library_refreshes_leave_the_session_the_same_size(demo: tuple[gr.Blocks, str]) -> None:
    """The library refreshes after every build, cancel and save: its lists get their choices only when they change."""
    blocks, url = demo
    api = Api(url)
    try:
        api.call("/save_config", width=640)
        api.call("/library_list")
        api.call("/library_variants", **{"library-model": "stabilityai--sd-turbo"})
        api.call("/library_list")
        before = session_size(blocks, api.client.session_hash)
        for _ in range(200):
            api.call("/library_list")
            api.call("/library_variants", **{"library-model": "stabilityai--sd-turbo"})
        assert session_size(blocks, api.client.session_hash) == before
    finally:
        api.close()


def test_builds_cancels_and_saves_leave_the_session_the_same_size(
    demo: tuple[gr.Blocks, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each build cleared the message box in its first update and left it out of the rest (a skipped output): the
    next build's plain value added a copy of the box to the session, one a build."""
    blocks, url = demo
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))
    monkeypatch.setenv("STANDIN_SLOW_SECONDS", "0.2")
    page = PageClient(url, deadline=120)
    try:

        def round_of_actions(n: int) -> None:
            page.call("build", model=f"standin/success-{n % 2}", denoise_steps=1 + n % 3)
            page.call("build", model="standin/exception-0")
            build_then_cancel(page, {"model": "standin/slow-0", "denoise_steps": 2}, 0.1)
            page.call("save_config", model="standin/success-0", denoise_steps=1 + n % 3)

        round_of_actions(0)
        before = session_size(blocks, page.session)
        for n in range(1, 6):
            round_of_actions(n)
        assert session_size(blocks, page.session) == before
    finally:
        page.close()


def test_a_library_that_changes_between_refreshes_leaves_the_session_the_same_size(
    demo: tuple[gr.Blocks, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each build adds a model or a variant, so each refresh gives the lists new choices: Gradio keeps a copy of a list
    for each change once it is read again; the refresh drops the earlier copies."""
    blocks, url = demo
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))
    page = PageClient(url, deadline=120)
    try:

        def round_of_actions(n: int) -> None:
            page.call("build", model=f"standin/success-{n}", denoise_steps=1 + n % 2, check=n % 3 == 0)
            page.call("library_list")
            page.call("library_variants", **{"library-model": f"standin--success-{n}"})

        for n in range(3):  # the lists' copies Gradio reads: the one now kept and the one before it
            round_of_actions(n)
        before = session_size(blocks, page.session)
        for n in range(3, 10):
            round_of_actions(n)
        assert session_size(blocks, page.session) == before
    finally:
        page.close()


def test_gradio_keeps_a_bounded_record_of_events(demo: tuple[gr.Blocks, str]) -> None:
    """Gradio records each event for its monitoring dashboard, 10,000 of them unless told (and summarises them all
    after each event); the app keeps a few."""
    blocks, url = demo
    bound = int(GRADIO_EVENT_RECORDS["GRADIO_ANALYTICS_MAX_EVENTS"])
    page = PageClient(url, deadline=60)
    try:
        for n in range(bound + 20):
            page.call("preview", width=512 + 64 * (n % 3))
    finally:
        page.close()
    assert 0 < len(blocks._queue.event_analytics) <= bound


def test_a_closed_page_session_is_released(demo: tuple[gr.Blocks, str], monkeypatch: pytest.MonkeyPatch) -> None:
    blocks, url = demo
    monkeypatch.setattr(sessions, "CLOSED_SESSION_GRACE", 0.2)
    page = PageClient(url, deadline=60)
    try:
        page.beat()  # the page's heartbeat: open while the page is, ended when it closes
        page.call("preview", width=640)
        assert page.session in blocks.state_holder.session_data
    finally:
        page.close()
    deadline = time.monotonic() + 30
    while page.session in blocks.state_holder.session_data and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page.session not in blocks.state_holder.session_data


def test_a_page_that_comes_back_keeps_its_session(demo: tuple[gr.Blocks, str]) -> None:
    blocks, url = demo
    api = Api(url)
    try:
        api.call("/preview", width=640)
        session = api.client.session_hash
        closed_at = time.time()
        time.sleep(1.1)  # past the second of slack the release allows for the unload event's own read
        api.call("/preview", width=512)
        assert not sessions.release(blocks, session, closed_at)
        assert session in blocks.state_holder.session_data
    finally:
        api.close()
