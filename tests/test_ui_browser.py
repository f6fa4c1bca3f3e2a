"""The web UI in a real browser (Playwright driving Debian's Chromium), clicking through it as a user would.

Screenshots of the main states go to tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdprep.config import render_config
from sdprep.params import ControlNetSlot, params_from_values
from sdprep.paths import atomic_write_text
from sdprep.text import t
from testkit.api import Api
from testkit.app import RunningApp, held, running_app
from testkit.paths import ARTIFACTS
from testkit.timing import SUITE_TIMEOUT
from tests.conftest import runtime_defaults

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
TIMEOUT = int(SUITE_TIMEOUT * 1000)  # ms for anything that waits on the server
BUILD_TIMEOUT = TIMEOUT
expect.set_options(timeout=TIMEOUT)


@pytest.fixture(autouse=True, scope="module")
def _clean_artifacts() -> None:
    """Fresh screenshots each run (the folder is git-ignored)."""
    if ARTIFACTS.is_dir():
        for old in ARTIFACTS.glob("*.png"):
            old.unlink()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    env = {"STANDIN_SLOW_SECONDS": "1.5", "STANDIN_SLOW_STEPS": "4"}
    with running_app(tmp_path_factory.mktemp("ui-browser"), env) as running:
        yield running


@pytest.fixture
def engines(app: RunningApp) -> Path:
    """The app's engines folder, emptied: each test starts with an empty library."""
    if app.engines.exists():
        shutil.rmtree(app.engines)
    return app.engines


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def open_page(browser: Any, app: RunningApp, locale: str = "en-US", query: str = "", width: int = 1400) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 1000}, locale=locale)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(app.url + query)
    # The section hints are filled by the page-load chain (language detection, then the preview): once they
    # show, the page will not change under the test's clicks.
    expect(page.locator("#hint-checkpoint")).to_contain_text(re.compile("Detected family|Определённое семейство"))
    return page


@pytest.fixture
def page(browser: Any, app: RunningApp, engines: Path) -> Iterator[Any]:
    page = open_page(browser, app)
    yield page
    page.context.close()


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def field(page: Any, name: str) -> Any:
    """The text box of a field: a Textbox's textarea, a Dropdown's input, a Slider's number box.

    Form fields have the elem_id `field-<name>`, ControlNet slot fields `cn<i>-<name>`, others their own.
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


def write_config(path: Path, **values: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_config(params_from_values(values), runtime_defaults()))
    return path


# --- the form ---------------------------------------------------------------------------------------------------
def test_page_shows_every_section_in_order(page: Any) -> None:
    headings = [text.strip() for text in page.locator(".sdprep-heading h3").all_inner_texts() if text.strip()]
    wanted = ["Checkpoint", "Sampling", "Resolution", "LoRA", "ControlNet", "IP-Adapter", "Build profile"]
    wanted += ["Engine output", "Build", "Preview"]
    assert [heading for heading in headings if heading in wanted] == wanted
    expect(page.get_by_text("Denoise steps (denoise_steps)")).to_be_visible()
    expect(page.locator("#hint-checkpoint")).to_contain_text("Detected family: SD 2.1")
    expect(page.locator("#hint-sampling")).to_contain_text("t_index_list = [32]")
    expect(button(page, "Build")).to_be_enabled()
    shot(page, "01-page")


def test_pipeline_scheduler_appears_only_without_a_consistency_lora(page: Any) -> None:
    type_into(page, "model", "KBlueLeaf/kohaku-v2.1")
    page.locator("#field-consistency_lora").get_by_label("lcm").check()
    expect(page.locator("#field-scheduler")).to_be_hidden()
    expect(page.locator("#hint-sampling")).to_contain_text("scheduler lcm")
    page.locator("#field-consistency_lora").get_by_label("none").check()
    expect(page.locator("#field-scheduler")).to_be_visible()
    page.locator("#field-scheduler").get_by_label("tcd").check()
    expect(page.locator("#yaml-preview")).to_contain_text("scheduler: tcd")


def test_two_controlnets_change_the_yaml_preview(page: Any) -> None:
    type_into(page, "model", "KBlueLeaf/kohaku-v2.1")
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


def test_bad_lora_json_shows_the_error_and_disables_build_and_save(page: Any) -> None:
    field(page, "lora_json").fill('{"owner/lora": 0.8,}')
    problems = page.locator("#problems-lora")
    expect(problems).to_contain_text("The LoRA list is not valid JSON")
    expect(problems.locator("li.sdprep-error")).to_have_count(1)
    expect(button(page, "Build")).to_be_disabled()
    expect(button(page, "Save config only")).to_be_disabled()  # issue 12 point 7: Save follows the errors too
    expect(page.locator("#summary")).to_contain_text("Build is disabled until the errors are fixed")
    shot(page, "03-bad-lora")
    field(page, "lora_json").fill('{"owner/lora": 0.8}')
    expect(button(page, "Build")).to_be_enabled()
    expect(button(page, "Save config only")).to_be_enabled()
    expect(page.locator("#hint-lora")).to_contain_text('Final lora_dict: {"owner/lora": 0.8}')


def test_markup_in_a_lora_id_and_a_model_folder_is_shown_as_text(page: Any, tmp_path: Path) -> None:
    """Issue 16: a LoRA id with a backtick and tags, and a model folder named m`<b>X, once rendered as elements in
    the derived values, the hints and the build's progress line; now they show as the characters typed."""
    lora = '{"own`er/<b id=inj>X</b>": 0.5, "<img id=inj-img src=http://127.0.0.1:9/leak.png>": 0.2}'
    field(page, "lora_json").fill(lora)
    expect(page.locator("#derived")).to_contain_text("own`er/<b id=inj>X</b>")
    expect(page.locator("#hint-lora")).to_contain_text("<img id=inj-img")
    folder = tmp_path / "m`<b id=inj>X"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}", encoding="utf-8")
    type_into(page, "model", str(folder))
    expect(page.locator("#derived")).to_contain_text("m-b-id-inj-X")
    button(page, "Build").click()
    expect(page.locator("#build-progress")).to_contain_text("m`<b id=inj>X", timeout=BUILD_TIMEOUT)
    shot(page, "16-markup-as-text")
    assert page.locator("#inj, #inj-img, #derived b, #build-progress b").count() == 0


def test_width_2000_ends_in_one_consistent_state(page: Any, app: RunningApp) -> None:
    """Issue 12 point 3: the box, the preview and the problem under Width agree; Build is disabled; no traceback."""
    type_into(page, "width", "2000")
    problems = page.locator("#problems-resolution")
    expect(problems).to_contain_text("2000")
    expect(problems.locator("li.sdprep-error")).to_have_count(1)
    expect(field(page, "width")).to_have_value("2000")
    expect(page.locator("#summary")).to_contain_text("1 error(s)")
    expect(page.locator("#yaml-preview")).to_contain_text(t("yaml_blocked"))
    expect(page.locator("#yaml-preview")).not_to_contain_text("width: 512")
    expect(button(page, "Build")).to_be_disabled()
    expect(page.locator(".toast-body")).to_have_count(0)  # no Gradio error toast over the preview
    shot(page, "13-width-2000", full_page=False)
    # Back in range: the same three agree again.
    type_into(page, "width", "768")
    expect(page.locator("#problems-resolution li")).to_have_count(0)
    expect(page.locator("#yaml-preview")).to_contain_text("width: 768")
    expect(button(page, "Build")).to_be_enabled()
    assert "Traceback" not in app.log_text()


# --- building ---------------------------------------------------------------------------------------------------
def test_build_streams_the_log_then_shows_success(page: Any, app: RunningApp, engines: Path) -> None:
    expect(button(page, "Cancel")).to_be_disabled()  # nothing runs yet
    type_into(page, "model", "standin/slow-model")
    page.locator("#check input[type=checkbox]").uncheck()
    result, log, progress = (
        page.locator("#build-result"),
        page.locator("#build-log textarea"),
        page.locator("#build-progress"),
    )
    with held(app):
        button(page, "Build").click()
        expect(log).to_have_value(re.compile(r"\[slow\] exporting unet"), timeout=BUILD_TIMEOUT)
        expect(progress).to_contain_text("elapsed")
        expect(button(page, "Cancel")).to_be_enabled()
        assert "Built" not in result.inner_text()  # the log arrived while the build was still running
        first = log.input_value()
        shot(page, "04-building")
    expect(result).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    assert len(log.input_value()) > len(first)
    config = engines / "standin--slow-model" / "config.yaml"
    expect(result).to_contain_text(str(config))
    expect(result).to_contain_text("Stage durations")
    expect(progress).to_contain_text("✔ Built")
    expect(button(page, "Cancel")).to_be_disabled()
    assert config.exists()
    shot(page, "05-built")


def test_cancel_stops_a_hanging_build(page: Any, engines: Path) -> None:
    type_into(page, "model", "standin/hang-model")
    button(page, "Build").click()
    expect(page.locator("#build-log textarea")).to_have_value(re.compile("hanging"), timeout=BUILD_TIMEOUT)
    button(page, "Cancel").click()
    expect(page.locator("#build-result")).to_contain_text("Cancelled")
    expect(page.locator("#build-progress")).to_contain_text("■ Cancelled")
    expect(button(page, "Cancel")).to_be_disabled()
    assert not (engines / "standin--hang-model" / "config.yaml").exists()
    shot(page, "06-cancelled")


def test_results_replace_each_other_and_no_stale_block(browser: Any, app: RunningApp, page: Any) -> None:
    """Issue 12 point 7: after a refused build a new page starts clean; a result replaces the one before it."""
    progress, result = page.locator("#build-progress"), page.locator("#build-result")
    message = page.locator("#action-message")
    type_into(page, "model", "standin/exception-model")
    page.locator("#check input[type=checkbox]").uncheck()
    button(page, "Build").click()
    expect(result).to_contain_text(t("out_failed"), timeout=BUILD_TIMEOUT)
    type_into(page, "model", "stabilityai/sd-turbo")
    button(page, "Save config only").click()
    expect(message).to_contain_text("Saved")
    expect(result).to_have_text("")  # the failed build's block is gone: Save's answer replaced it
    expect(progress).to_have_text(t("prog_idle"))
    button(page, "Build").click()
    expect(result).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    expect(message).to_have_text("")  # and "Saved …" does not stay above the build's result
    shot(page, "14-result-replaced")

    # A build refused on another page (a form with errors) leaves nothing for a page opened after it.
    other = Api(app.url)
    assert other.call("/build", lora_json="{bad")["build-progress"] == t("out_refused")
    other.close()
    fresh = open_page(browser, app)
    try:
        expect(fresh.locator("#build-progress")).to_have_text(t("prog_idle"))
        expect(fresh.locator("#build-result")).to_have_text("")
        expect(button(fresh, "Cancel")).to_be_disabled()
    finally:
        fresh.context.close()


def test_a_reopened_page_shows_the_running_build_and_can_cancel_it(browser: Any, app: RunningApp, page: Any) -> None:
    type_into(page, "model", "standin/hang-model")
    button(page, "Build").click()
    expect(page.locator("#build-log textarea")).to_have_value(re.compile("hanging"), timeout=BUILD_TIMEOUT)
    page.close()  # the build goes on in the server
    reopened = open_page(browser, app)
    try:
        expect(reopened.locator("#build-progress")).to_contain_text("⚙")
        expect(reopened.locator("#build-log textarea")).to_have_value(re.compile("hanging"))
        expect(button(reopened, "Cancel")).to_be_enabled()
        shot(reopened, "12-reopened")
        button(reopened, "Cancel").click()
        expect(reopened.locator("#build-progress")).to_contain_text("■ Cancelled")
        expect(button(reopened, "Cancel")).to_be_disabled()
    finally:
        reopened.context.close()


# --- loading ----------------------------------------------------------------------------------------------------
def test_load_config_fills_the_form(page: Any, engines: Path) -> None:
    path = write_config(
        engines / "to-load" / "config.yaml",
        model="KBlueLeaf/kohaku-v2.1",
        denoise_steps=2,
        consistency_lora="lcm",
        width=640,
        use_controlnet=True,
        controlnets=[
            ControlNetSlot("lllyasviel/control_v11f1p_sd15_depth", "depth"),
            ControlNetSlot("cn/b", "canny", 3, False),
        ],
        engines_dir=str(engines),
    )
    page.locator("#load-box").get_by_text("Load config", exact=True).first.click()  # opens the accordion
    field(page, "load_path").fill("to-load/config.yaml")
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


UPLOAD_LAYOUT_JS = """(root) => {
  const inside = (r, box) => r.top >= box.top - 1 && r.bottom <= box.bottom + 1 && r.left >= box.left - 1
    && r.right <= box.right + 1;
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const box = root.getBoundingClientRect();
  const label = root.querySelector('label').getBoundingClientRect();
  const problems = [];
  for (const el of root.querySelectorAll('button *')) {
    const r = el.getBoundingClientRect();
    const drawn = r.width > 0 && r.height > 0 && el.checkVisibility();
    const text = el.childElementCount ? '' : el.textContent.trim();
    if (!drawn || !(text || el.tagName.toLowerCase() === 'svg')) continue;
    if (!inside(r, box)) problems.push('outside the box: ' + (text || 'icon'));
    if (meets(r, label)) problems.push('under the label: ' + (text || 'icon'));
  }
  return problems;
}"""


@pytest.mark.parametrize(("query", "width"), [("", 1400), ("?lang=ru", 700)])
def test_load_config_upload_box_is_not_clipped(browser: Any, app: RunningApp, query: str, width: int) -> None:
    """Issue 12 point 9: the upload box shows its whole text, clear of its label, in both languages."""
    page = open_page(browser, app, query=query, width=width)
    try:
        page.locator("#load-box button").first.click()  # opens the accordion
        upload = page.locator("#load_upload")
        # After a change of language the box is drawn again (actions.remount_upload): wait for it in this language.
        wording = "Перетащите" if query else "Drop File Here"
        expect(upload).to_contain_text(wording)
        layout: Any = None
        for _ in range(10):
            try:
                upload.scroll_into_view_if_needed()
                layout = upload.evaluate(UPLOAD_LAYOUT_JS)
                break
            except playwright_api.Error:  # drawn again meanwhile (the remount): the locator finds the new one
                expect(upload).to_contain_text(wording)
        assert layout == []
        upload.screenshot(path=str(ARTIFACTS / f"15-upload-box-{width}px{query.replace('?lang=', '-')}.png"))
    finally:
        page.context.close()


def test_narrow_window_keeps_summary_and_problems_in_view(browser: Any, app: RunningApp, engines: Path) -> None:
    """Issue 12 point 9: below 800 px the preview's summary stays in view while one edits the form."""
    page = open_page(browser, app, width=700)
    try:
        field(page, "lora_json").fill("{bad")
        expect(page.locator("#summary")).to_contain_text("error")
        field(page, "lora_json").scroll_into_view_if_needed()
        summary = page.locator("#summary").bounding_box()
        box = field(page, "lora_json").bounding_box()
        viewport = page.viewport_size
        assert summary is not None and box is not None
        assert summary["y"] >= 0 and summary["y"] + summary["height"] <= viewport["height"], summary
        assert not (box["y"] < summary["y"] + summary["height"] and summary["y"] < box["y"] + box["height"]), (
            "the summary covers the field being edited",
            summary,
            box,
        )
        shot(page, "16-narrow-700px", full_page=False)
    finally:
        page.context.close()


# --- the library ------------------------------------------------------------------------------------------------
def test_an_empty_library_offers_nothing_to_load_or_delete(page: Any) -> None:
    page.get_by_role("tab", name="Engines library").click()
    button(page, "Refresh").click()
    expect(page.locator("#library")).to_contain_text("No prepared models")
    expect(button(page, "Load into form")).to_be_disabled()
    expect(button(page, "Delete")).to_be_disabled()
    expect(page.locator("#library-sure input[type=checkbox]")).to_be_disabled()
    shot(page, "17-library-empty")


def test_engines_library_lists_and_deletes(page: Any, engines: Path) -> None:
    button(page, "Save config only").click()
    expect(page.locator("#action-message")).to_contain_text("Saved")
    page.get_by_role("tab", name="Engines library").click()
    button(page, "Refresh").click()
    library = page.locator("#library")
    expect(library).to_contain_text("stabilityai--sd-turbo")
    expect(library).to_contain_text("no recorded build")
    expect(button(page, "Delete")).to_be_disabled()  # until "I am sure" is ticked
    shot(page, "08-library")
    page.locator("#library-sure input[type=checkbox]").check()
    expect(button(page, "Delete")).to_be_enabled()
    page.locator("#library-sure input[type=checkbox]").uncheck()
    expect(button(page, "Delete")).to_be_disabled()
    assert (engines / "stabilityai--sd-turbo").is_dir()
    page.locator("#library-sure input[type=checkbox]").check()
    button(page, "Delete").click()
    expect(page.locator("#library-message")).to_contain_text("Deleted")
    expect(library).to_contain_text("No prepared models")
    expect(button(page, "Delete")).to_be_disabled()
    assert not (engines / "stabilityai--sd-turbo").exists()
    shot(page, "09-library-deleted")


def test_library_loads_a_built_variant_into_the_form(page: Any) -> None:
    type_into(page, "model", "KBlueLeaf/kohaku-v2.1")
    page.locator("#field-consistency_lora").get_by_label("tcd").check()
    page.locator("#check input[type=checkbox]").uncheck()
    button(page, "Build").click()
    expect(page.locator("#build-result")).to_contain_text("Built", timeout=BUILD_TIMEOUT)
    page.locator("#field-consistency_lora").get_by_label("none").check()
    page.get_by_role("tab", name="Engines library").click()
    expect(page.locator("#library")).to_contain_text("KBlueLeaf--kohaku-v2.1")  # refreshed after the build
    expect(page.locator("#library")).to_contain_text("NVIDIA GeForce RTX 4090 / 10.16.1.11")
    button(page, "Load into form").click()
    # Loading goes to the form, and says there what it loaded.
    expect(page.get_by_role("tab", name="Prepare")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#action-message")).to_contain_text("Loaded")
    expect(page.locator("#field-consistency_lora").get_by_label("tcd")).to_be_checked()


def test_environment_tab(page: Any) -> None:
    page.get_by_role("tab", name="Environment").click()
    button(page, "Check again").click()
    environment = page.locator("#environment")
    expect(environment).to_contain_text("NVIDIA GeForce RTX 4090")
    expect(environment).to_contain_text("10.16.1.11")
    expect(environment).to_contain_text("Everything needed to build is there.")
    shot(page, "10-environment")


def test_a_remote_page_shows_setup_and_delete_disabled_with_the_reason(
    browser: Any, app: RunningApp, engines: Path
) -> None:
    """A client on another machine, presented as a proxy on this machine presents one (tests/test_ui_access.py)."""
    write_config(engines / "stabilityai--sd-turbo" / "config.yaml")
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, locale="en-US", extra_http_headers={"X-Forwarded-For": "203.0.113.7"}
    )
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Environment").click()
        expect(page.locator("#setup-access")).to_contain_text(t("access_setup_owner_only"))
        expect(button(page, "Set up the build environment")).to_be_disabled()
        expect(button(page, "Run the self-test")).to_be_enabled()
        shot(page, "22-remote-setup-disabled")
        page.get_by_role("tab", name="Engines library").click()
        expect(page.locator("#library")).to_contain_text("stabilityai--sd-turbo")
        expect(page.locator("#library-access")).to_contain_text(t("access_delete_owner_only"))
        expect(button(page, "Delete")).to_be_disabled()
        expect(button(page, "Load into form")).to_be_enabled()
    finally:
        context.close()


# --- language ---------------------------------------------------------------------------------------------------
# What counts as an English sentence on a Russian page: a run of 3+ ASCII words with at least one common English
# function word, in visible text outside code, the YAML preview, the log and file paths.
FUNCTION_WORDS = {
    "the", "is", "are", "to", "of", "and", "with", "for", "not", "be", "this", "no", "a", "an", "in", "on", "it",
    "or", "was", "has", "have", "can", "will", "from", "by", "at", "as", "that", "your", "you", "here", "there",
}  # fmt: skip
VISIBLE_TEXT_JS = """() => {
  const skip = 'script, style, code, pre, textarea, input, .cm-editor, #yaml-preview, #build-log, #command-line';
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest(skip)) continue;
    if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    out.push(text);
  }
  return out;
}"""
_PATH = re.compile(r"(?:[\w.~-]*[/\\][^\s,;:()]*)|\S+\.(?:ya?ml|json|log|engine|onnx|safetensors|ckpt|png)\b")
_ASCII_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ \t]+[A-Za-z][A-Za-z'’-]*){2,}")


def english_sentences(texts: list[str]) -> list[str]:
    """The visible texts that hold an English sentence (see FUNCTION_WORDS); paths are removed first."""
    found = []
    for text in texts:
        for run in _ASCII_RUN.findall(_PATH.sub(" ", text)):
            if {word.lower() for word in run.split()} & FUNCTION_WORDS:
                found.append(text)
                break
    return found


def test_the_english_detector() -> None:
    assert english_sentences(["The LoRA list is not valid JSON"]) == ["The LoRA list is not valid JSON"]
    assert english_sentences(["Nothing was written: fix the errors first."])
    assert not english_sentences(["Шаги шумоподавления (denoise_steps)", "NVIDIA GeForce RTX 4090 / 10.16.1.11"])
    assert not english_sentences(["Загружено: /tmp/to the engines/config.yaml", "StreamDiffusion model prep"])
    assert not english_sentences(["UNet · 496 Б · собран", "t_index_list = [32] · UNet batch 1 · scheduler lcm"])


def assert_no_english(page: Any, where: str) -> None:
    found = english_sentences(page.evaluate(VISIBLE_TEXT_JS))
    assert not found, f"English on the Russian page ({where}): {found}"


def ru(key: str, **values: object) -> str:
    return t(key, "ru", **values)


def test_russian_page_has_no_english_sentence(browser: Any, app: RunningApp, engines: Path) -> None:
    """Issue 11 point 2: the error, refusal, build and library scenarios in Russian meet no English sentence."""
    page = open_page(browser, app, locale="en-US", query="?lang=ru")
    try:
        expect(button(page, ru("btn_build"))).to_be_visible()
        expect(page.locator("#summary")).to_contain_text(ru("sum_ok"))
        assert_no_english(page, "on load")
        # Errors under the fields.
        field(page, "lora_json").fill('{"": 1}')
        field(page, "width").fill("2000")
        field(page, "width").press("Enter")
        expect(page.locator("#problems-lora li.sdprep-error")).to_have_count(1)
        expect(page.locator("#problems-resolution li.sdprep-error")).to_have_count(1)
        assert_no_english(page, "form errors")
        shot(page, "18-ru-errors")
        field(page, "lora_json").fill("{}")
        type_into(page, "width", "512")
        expect(page.locator("#summary")).to_contain_text(ru("sum_ok"))
        # Refusals: a config outside the engines folder, a build that fails.
        page.locator("#load-box").get_by_text(ru("btn_load"), exact=True).first.click()
        type_into(page, "load_path", "/etc/passwd")
        expect(page.locator("#action-message")).to_contain_text(ru("load_outside", root=engines))
        type_into(page, "model", "standin/exception-model")
        page.locator("#check input[type=checkbox]").uncheck()
        button(page, ru("btn_build")).click()
        expect(page.locator("#build-result")).to_contain_text(ru("out_failed"), timeout=BUILD_TIMEOUT)
        assert_no_english(page, "refusal and failure")
        shot(page, "19-ru-failed")
        # A build that succeeds.
        type_into(page, "model", "KBlueLeaf/kohaku-v2.1")
        page.locator("#check input[type=checkbox]").check()
        button(page, ru("btn_build")).click()
        expect(page.locator("#build-result")).to_contain_text(ru("out_built"), timeout=BUILD_TIMEOUT)
        expect(page.locator("#check-result")).to_contain_text(ru("chk_passed"), timeout=BUILD_TIMEOUT)
        assert_no_english(page, "build")
        shot(page, "20-ru-built")
        # The library: list, load, refuse a delete, delete.
        page.get_by_role("tab", name=ru("tab_library")).click()
        expect(page.locator("#library")).to_contain_text("KBlueLeaf--kohaku-v2.1")
        button(page, ru("btn_lib_load")).click()
        expect(page.locator("#action-message")).to_contain_text(ru("load_ok", path="")[:10])
        page.get_by_role("tab", name=ru("tab_library")).click()
        expect(page.locator("#library-message")).to_contain_text(ru("load_ok", path="")[:10])
        expect(button(page, ru("btn_lib_delete"))).to_be_disabled()
        assert_no_english(page, "library")
        shot(page, "21-ru-library")
        page.locator("#library-sure input[type=checkbox]").check()
        button(page, ru("btn_lib_delete")).click()
        expect(page.locator("#library-message")).to_contain_text(ru("lib_deleted", path="")[:8])
        assert_no_english(page, "library after delete")
        page.get_by_role("tab", name=ru("tab_environment")).click()
        button(page, ru("btn_env_check")).click()
        expect(page.locator("#environment")).to_contain_text(ru("env_ready"))
        assert_no_english(page, "environment")
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def livepeer_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """An app whose StreamDiffusion loader ignores the profile keys (livepeer's fork) and has no FP8."""
    with running_app(tmp_path_factory.mktemp("ui-livepeer"), {"STANDIN_SD_FORK": "livepeer"}) as running:
        yield running


def test_the_profile_lock_reaches_the_page(browser: Any, livepeer_app: RunningApp) -> None:
    """The profile radio and FP8 are locked with their reason once the page knows the machine; the lock goes
    through a state of its own (ui/components/common.py says why), which the page's script applies."""
    page = open_page(browser, livepeer_app)
    try:
        expect(page.locator("#field-profile")).to_contain_text("Only Flexible builds as chosen here")
        page.get_by_text(t("profile_expert")).click()
        expect(page.locator("#field-fp8")).to_contain_text("FP8 cannot be built here")
        expect(page.locator("#field-fp8 input[type=checkbox]")).to_be_disabled()
        expect(page.locator("#field-profile input[type=radio]").first).to_be_disabled()
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def blocked_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """An app whose build Python has no TensorRT: the banner says what is missing, Build is disabled."""
    with running_app(tmp_path_factory.mktemp("ui-blocked"), {"STANDIN_NO_TRT": "1"}) as running:
        yield running


def test_russian_banner_when_the_machine_cannot_build(browser: Any, blocked_app: RunningApp) -> None:
    page = open_page(browser, blocked_app, locale="ru-RU")
    try:
        banner = page.locator("#setup-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(ru("banner_cannot_build").strip("*").split("**")[0])
        expect(banner).to_contain_text("TensorRT")
        expect(button(page, ru("btn_build"))).to_be_disabled()
        shot(page, "22-ru-banner", full_page=False)
    finally:
        page.context.close()


def test_russian_banner_has_no_english_sentence(browser: Any, blocked_app: RunningApp) -> None:
    page = open_page(browser, blocked_app, locale="ru-RU")
    try:
        expect(page.locator("#setup-banner")).to_be_visible()
        assert_no_english(page, "banner")
    finally:
        page.context.close()


def test_russian_lora_json_syntax_error(browser: Any, app: RunningApp) -> None:
    page = open_page(browser, app, query="?lang=ru")
    try:
        field(page, "lora_json").fill('{"owner/lora": 0.8,}')
        expect(page.locator("#problems-lora li.sdprep-error")).to_have_count(1)
        assert_no_english(page, "a LoRA JSON syntax error")
    finally:
        page.context.close()


def switch_to(page: Any, name: str) -> None:
    page.locator("#language").get_by_label(name).check()


def test_live_language_switch_relabels_and_redraws(page: Any) -> None:
    """Clicking Русский relabels Gradio's labels and redraws what the server composed, and back."""
    field(page, "lora_json").fill('{"": 1}')
    expect(page.locator("#problems-lora")).to_contain_text("empty LoRA id")
    page.locator("#load-box").get_by_text("Load config", exact=True).first.click()
    type_into(page, "load_path", "/etc/passwd")
    expect(page.locator("#action-message")).to_contain_text("Only configs inside the engines folder")
    page.get_by_role("tab", name="Environment").click()
    button(page, "Check again").click()
    expect(page.locator("#environment")).to_contain_text("Everything needed to build is there.")
    page.get_by_role("tab", name="Prepare").click()

    switch_to(page, "Русский")
    expect(page.get_by_text(ru("f_denoise_steps"))).to_be_visible()
    expect(button(page, ru("btn_build"))).to_be_visible()
    expect(page.locator("#summary")).to_contain_text(ru("sum_errors", errors=1, warnings=0).split(",")[0])
    expect(page.locator("#problems-lora")).to_contain_text(ru("sev_error"))
    expect(page.locator("#hint-checkpoint")).to_contain_text("Определённое семейство")
    expect(page.locator("#action-message")).to_contain_text(ru("load_outside", root="")[:20])
    expect(page.locator("#build-progress")).to_have_text(ru("prog_idle"))
    page.get_by_role("tab", name=ru("tab_environment")).click()
    expect(page.locator("#environment")).to_contain_text(ru("env_ready"))
    page.get_by_role("tab", name=ru("tab_prepare")).click()
    assert_no_english(page, "after the switch")
    shot(page, "11-russian")

    switch_to(page, "English")
    expect(button(page, "Build")).to_be_visible()
    expect(page.locator("#summary")).to_contain_text("Build is disabled until the errors are fixed")
    expect(page.locator("#action-message")).to_contain_text("Only configs inside the engines folder")

    # A build's result is drawn again too.
    field(page, "lora_json").fill("{}")
    type_into(page, "model", "standin/exception-model")
    page.locator("#check input[type=checkbox]").uncheck()
    button(page, "Build").click()
    expect(page.locator("#build-result")).to_contain_text(t("out_failed"), timeout=BUILD_TIMEOUT)
    switch_to(page, "Русский")
    expect(page.locator("#build-result")).to_contain_text(ru("res_child_error"))
    expect(page.locator("#build-progress")).to_contain_text(ru("out_failed"))
    switch_to(page, "English")
    expect(page.locator("#build-result")).to_contain_text(t("res_child_error"))


def test_browser_language_chooses_russian(browser: Any, app: RunningApp) -> None:
    russian = open_page(browser, app, locale="ru-RU")
    try:
        expect(russian.get_by_text(ru("f_denoise_steps"))).to_be_visible()
        expect(russian.locator("#language").get_by_label("Русский")).to_be_checked()
        expect(russian.locator("#derived")).to_contain_text(ru("d_lora_dict"))
        expect(russian.locator("#build-progress")).to_have_text(ru("prog_idle"))
    finally:
        russian.context.close()
