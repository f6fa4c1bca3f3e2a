"""The web UI in a real browser (Playwright driving Debian's Chromium), clicking through it as a user would.

Screenshots of the main states go to tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdprep.config import render_config, write_config
from sdprep.params import ControlNetSlot, params_from_values
from tests.conftest import runtime_defaults
from tests.ui_helpers import ARTIFACTS, RunningApp, running_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
TIMEOUT = 20_000  # ms for anything that waits on the server
BUILD_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    env = {"STANDIN_SLOW_SECONDS": "1.5", "STANDIN_SLOW_STEPS": "4"}
    with running_app(tmp_path_factory.mktemp("ui-browser"), env) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def open_page(browser: Any, app: RunningApp, locale: str = "en-US") -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale=locale)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(app.url)
    # The section hints are filled by the page-load chain (language detection, then the preview): once they
    # show, the page will not change under the test's clicks.
    expect(page.locator("#hint-checkpoint")).to_contain_text(re.compile("Detected family|Определённое семейство"))
    return page


@pytest.fixture
def page(browser: Any, app: RunningApp) -> Iterator[Any]:
    page = open_page(browser, app)
    yield page
    page.context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def field(page: Any, name: str) -> Any:
    """The text box of a field: a Textbox's textarea, a Dropdown's input, a Slider's number box.

    Form fields have the elem_id `field-<name>`, ControlNet slot fields `cn<i>-<name>`.
    """
    box = "textarea, input:not([type=checkbox]):not([type=radio]):not([type=range]):not([type=file])"
    root = page.locator(f"#field-{name}, #{name}").first
    return root.locator(box).first


def type_into(page: Any, name: str, value: str) -> None:
    box = field(page, name)
    box.fill(value)
    box.press("Enter")


def button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True)


def use_engines(page: Any, folder: Path) -> None:
    box = field(page, "engines_dir")
    box.fill(str(folder))
    expect(page.locator("#yaml-preview")).to_contain_text(f"engine_dir: {folder}/")


def test_page_shows_every_section_in_order(page: Any) -> None:
    headings = [text.strip() for text in page.locator(".sdprep-heading h3").all_inner_texts() if text.strip()]
    assert headings == [
        "Checkpoint",
        "Sampling",
        "Resolution",
        "LoRA",
        "ControlNet",
        "IP-Adapter",
        "Engine output",
        "Build",
        "Preview",
    ]
    expect(page.get_by_text("Denoise steps (denoise_steps)")).to_be_visible()
    expect(page.locator("#hint-checkpoint")).to_contain_text("Detected family: SD 2.1")
    expect(page.locator("#hint-sampling")).to_contain_text("t_index_list = [32]")
    expect(button(page, "Build")).to_be_enabled()
    shot(page, "01-page")


def test_pipeline_scheduler_appears_only_without_a_consistency_lora(page: Any) -> None:
    page.locator("#field-consistency_lora").get_by_label("lcm").check()
    expect(page.locator("#field-scheduler")).to_be_hidden()
    expect(page.locator("#hint-sampling")).to_contain_text("scheduler lcm")
    page.locator("#field-consistency_lora").get_by_label("none").check()
    expect(page.locator("#field-scheduler")).to_be_visible()
    page.locator("#field-scheduler").get_by_label("tcd").check()
    expect(page.locator("#yaml-preview")).to_contain_text("scheduler: tcd")


def test_two_controlnets_change_the_yaml_preview(page: Any) -> None:
    expect(page.locator("#field-cn_count")).to_be_hidden()
    page.locator("#field-use_controlnet input[type=checkbox]").check()
    type_into(page, "cn_count", "2")
    expect(page.locator("#cn1-model_id")).to_be_visible()
    expect(page.locator("#cn2-model_id")).to_be_hidden()
    field(page, "cn0-model_id").fill("lllyasviel/control_v11p_sd15_lineart")
    field(page, "cn1-model_id").fill("someone/tile-controlnet")
    type_into(page, "cn1-preprocessor", "my_preprocessor")
    field(page, "cn1-conditioning_channels").fill("4")
    yaml = page.locator("#yaml-preview")
    expect(yaml).to_contain_text("model_id: lllyasviel/control_v11p_sd15_lineart")
    expect(yaml).to_contain_text("model_id: someone/tile-controlnet")
    expect(yaml).to_contain_text("conditioning_channels: 4")
    expect(page.locator("#problems-controlnet")).to_contain_text("not a standard StreamDiffusion preprocessor")
    expect(button(page, "Build")).to_be_enabled()  # a warning does not stop a build
    shot(page, "02-controlnets")


def test_bad_lora_json_shows_the_error_and_disables_build(page: Any) -> None:
    field(page, "lora_json").fill('{"owner/lora": 0.8,}')
    problems = page.locator("#problems-lora")
    expect(problems).to_contain_text("The LoRA list is not valid JSON")
    expect(problems.locator("li.sdprep-error")).to_have_count(1)
    expect(button(page, "Build")).to_be_disabled()
    expect(page.get_by_text("Build is disabled until the errors are fixed")).to_be_visible()
    shot(page, "03-bad-lora")
    field(page, "lora_json").fill('{"owner/lora": 0.8}')
    expect(button(page, "Build")).to_be_enabled()
    expect(page.locator("#hint-lora")).to_contain_text('Final lora_dict: {"owner/lora": 0.8}')


def test_build_streams_the_log_then_shows_success(page: Any, tmp_path: Path) -> None:
    type_into(page, "model", "standin/slow-model")
    use_engines(page, tmp_path / "engines")
    button(page, "Build").click()
    result, log, progress = (
        page.locator("#build-result"),
        page.locator("#build-log textarea"),
        page.locator("#build-progress"),
    )
    expect(log).to_have_value(re.compile(r"\[slow\] building unet"), timeout=BUILD_TIMEOUT)
    expect(progress).to_contain_text("elapsed")
    assert "Built" not in result.inner_text()  # the log arrived while the build was still running
    first = log.input_value()
    shot(page, "04-building")
    expect(result).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    assert len(log.input_value()) > len(first)
    config = tmp_path / "engines" / "standin--slow-model" / "config.yaml"
    expect(result).to_contain_text(str(config))
    expect(result).to_contain_text("Stage durations")
    expect(progress).to_contain_text("✔ Built")
    assert config.exists()
    shot(page, "05-built")


def test_cancel_stops_a_hanging_build(page: Any, tmp_path: Path) -> None:
    type_into(page, "model", "standin/hang-model")
    use_engines(page, tmp_path / "engines")
    button(page, "Build").click()
    expect(page.locator("#build-log textarea")).to_have_value(re.compile("hanging"), timeout=BUILD_TIMEOUT)
    button(page, "Cancel").click()
    expect(page.locator("#build-result")).to_contain_text("Cancelled")
    expect(page.locator("#build-progress")).to_contain_text("■ Cancelled")
    assert not (tmp_path / "engines" / "standin--hang-model" / "config.yaml").exists()
    shot(page, "06-cancelled")


def test_load_config_fills_the_form(page: Any, tmp_path: Path) -> None:
    params = params_from_values(
        {
            "model": "KBlueLeaf/kohaku-v2.1",
            "denoise_steps": 2,
            "consistency_lora": "lcm",
            "width": 640,
            "use_controlnet": True,
            "controlnets": [ControlNetSlot("cn/a", "depth"), ControlNetSlot("cn/b", "canny", 3, False)],
            "engines_dir": str(tmp_path / "engines"),
        }
    )
    path = tmp_path / "to-load.yaml"
    write_config(path, render_config(params, runtime_defaults()))  # type: ignore[arg-type]
    page.get_by_text("Load config", exact=True).first.click()  # opens the accordion
    field(page, "load_path").fill(str(path))
    page.locator("#load-button").click()
    expect(page.locator("#action-message")).to_contain_text(f"Loaded {path} into the form.")
    expect(field(page, "model")).to_have_value("KBlueLeaf/kohaku-v2.1")
    expect(field(page, "denoise_steps")).to_have_value("2")
    expect(field(page, "width")).to_have_value("640")
    expect(page.locator("#field-scheduler")).to_be_hidden()
    expect(field(page, "cn1-model_id")).to_have_value("cn/b")
    expect(page.locator("#cn1-enabled input[type=checkbox]")).not_to_be_checked()
    expect(page.locator("#yaml-preview")).to_contain_text("latent-consistency/lcm-lora-sdv1-5")
    shot(page, "07-loaded")


def test_engines_library_lists_and_deletes(page: Any, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    use_engines(page, engines)
    button(page, "Save config only").click()
    expect(page.locator("#action-message")).to_contain_text("Saved")
    page.get_by_role("tab", name="Engines library").click()
    button(page, "Refresh").click()
    library = page.locator("#library")
    expect(library).to_contain_text("stabilityai--sd-turbo")
    expect(library).to_contain_text("no recorded build")
    shot(page, "08-library")
    button(page, "Delete").click()
    expect(page.locator("#library-message")).to_contain_text("Tick “I am sure” first")
    assert (engines / "stabilityai--sd-turbo").is_dir()
    page.get_by_label("I am sure: delete this model's folder").check()
    button(page, "Delete").click()
    expect(page.locator("#library-message")).to_contain_text("Deleted")
    expect(library).to_contain_text("No prepared models")
    assert not (engines / "stabilityai--sd-turbo").exists()
    shot(page, "09-library-deleted")


def test_library_loads_a_built_variant_into_the_form(page: Any, tmp_path: Path) -> None:
    type_into(page, "model", "KBlueLeaf/kohaku-v2.1")
    use_engines(page, tmp_path / "engines")
    page.locator("#field-consistency_lora").get_by_label("tcd").check()
    button(page, "Build").click()
    expect(page.locator("#build-result")).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    page.locator("#field-consistency_lora").get_by_label("none").check()
    page.get_by_role("tab", name="Engines library").click()
    expect(page.locator("#library")).to_contain_text("KBlueLeaf--kohaku-v2.1")  # refreshed after the build
    expect(page.locator("#library")).to_contain_text("NVIDIA GeForce RTX 4090 / 10.16.1.11")
    button(page, "Load into form").click()
    expect(page.locator("#library-message")).to_contain_text("Loaded")
    page.get_by_role("tab", name="Prepare").click()
    expect(page.locator("#field-consistency_lora").get_by_label("tcd")).to_be_checked()


def test_environment_tab(page: Any) -> None:
    page.get_by_role("tab", name="Environment").click()
    button(page, "Check environment").click()
    environment = page.locator("#environment")
    expect(environment).to_contain_text("NVIDIA GeForce RTX 4090")
    expect(environment).to_contain_text("10.16.1.11")
    expect(environment).to_contain_text("Everything needed to build is there.")
    shot(page, "10-environment")


def test_language_switch_and_browser_language(browser: Any, app: RunningApp, page: Any) -> None:
    page.locator("#language").get_by_label("Русский").check()
    expect(page.get_by_text("Шаги шумоподавления (denoise_steps)")).to_be_visible()
    expect(button(page, "Собрать")).to_be_visible()
    expect(page.locator("#derived")).to_contain_text("Итоговый lora_dict")
    page.locator("#language").get_by_label("English").check()
    expect(button(page, "Build")).to_be_visible()

    russian = open_page(browser, app, locale="ru-RU")
    try:
        expect(russian.get_by_text("Шаги шумоподавления (denoise_steps)")).to_be_visible()
        expect(russian.locator("#language").get_by_label("Русский")).to_be_checked()
        expect(russian.locator("#derived")).to_contain_text("Итоговый lora_dict")
        shot(russian, "11-russian")
    finally:
        russian.context.close()


def test_a_reopened_page_shows_the_running_build(browser: Any, app: RunningApp, page: Any, tmp_path: Path) -> None:
    type_into(page, "model", "standin/slow-model")
    use_engines(page, tmp_path / "engines")
    button(page, "Build").click()
    expect(page.locator("#build-log textarea")).to_have_value(re.compile(r"\[slow\]"), timeout=BUILD_TIMEOUT)
    page.close()  # the build goes on in the server
    reopened = open_page(browser, app)
    try:
        expect(reopened.locator("#build-progress")).to_contain_text("⚙")
        expect(reopened.locator("#build-log textarea")).to_have_value(re.compile(r"\[slow\]"))
        shot(reopened, "12-reopened")
        expect(reopened.locator("#build-result")).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    finally:
        reopened.context.close()


@pytest.fixture(autouse=True, scope="module")
def _clean_artifacts() -> None:
    """Fresh screenshots each run (the folder is git-ignored)."""
    if ARTIFACTS.is_dir():
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
