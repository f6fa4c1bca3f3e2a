"""The library's sizes and Clean up in a browser: the sizes show, Clean up lists what no build uses, and removes it
only once "I am sure" is ticked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.params import params_from_values
from testkit.app import RunningApp, running_app
from testkit.paths import ARTIFACTS, STANDIN

from .conftest import runtime_defaults

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
TIMEOUT = 20_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("clean-browser")) as running:
        params = params_from_values({"engines_dir": str(running.engines)})
        options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
        assert run_build(params, runtime_defaults(), options).ok
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield chromium
        chromium.close()


def test_clean_up_lists_what_no_build_uses_and_removes_it_after_i_am_sure(browser: Any, app: RunningApp) -> None:
    onnx = next(app.engines.rglob("unet.engine")).parent / "unet.onnx"
    onnx.write_bytes(b"o" * 4096)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()
        page.goto(app.url)
        expect(page.locator("#hint-checkpoint")).to_contain_text("Detected family")  # the page-load chain is done
        page.get_by_role("tab", name="Engines library").click()
        expect(page.locator("#library")).to_contain_text(re.compile(r"on disk: .*KiB"))
        expect(page.locator("#library")).to_contain_text("free on its disk")
        page.locator("#library-clean-box").get_by_text("Clean up").first.click()  # open the accordion
        page.locator("#library-clean-find").click()
        listed = page.locator("#library-clean-list")
        expect(listed).to_contain_text("unet.onnx")
        expect(listed).to_contain_text("4.0 KiB")
        expect(page.locator("#library-clean")).to_be_disabled()  # until "I am sure" is ticked
        page.locator("#library-clean-sure input[type=checkbox]").check()
        expect(page.locator("#library-clean")).to_be_enabled()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "clean-up-listed.png"), full_page=True)
        assert onnx.exists(), "nothing is removed before Clean up is clicked"
        page.locator("#library-clean").click()
        expect(listed).to_contain_text("Removed 1 item(s), freed 4.0 KiB")
        expect(page.locator("#library-clean")).to_be_disabled()
        assert not onnx.exists() and next(app.engines.rglob("unet.engine")).exists()
    finally:
        context.close()
