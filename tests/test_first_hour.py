"""What a new user meets in the first hour, from the command line and the console: refusals before estimates, help
with defaults and rules, the usual fix of a JSON mistake, Russian that reads as Russian, console lines in order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdprep.derive import InvalidLoras, parse_lora_json
from sdprep.messages import msg
from sdprep.text import word

from .conftest import ROOT, run_cli
from .ui_helpers import running_app


def lora_error(text: str, lang: str = "en") -> str:
    with pytest.raises(InvalidLoras) as raised:
        parse_lora_json(text)
    return word(raised.value.message, lang)


# --- words ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "fix"),
    [
        ("{'me/style': 0.8}", "use double quotes"),
        ('{"me/style": 0.8,}', "remove the comma"),
        ('"me/style": 0.8', "inside braces"),
        ('{"me/a": 0.8 "me/b": 0.5}', "put a comma between"),
        ("{me/style: 0.8}", "in double quotes"),
    ],
)
def test_a_json_mistake_comes_with_its_usual_fix(typed: str, fix: str) -> None:
    said = lora_error(typed)
    assert said.startswith("The LoRA list is not valid JSON (") and fix in said, said


def test_russian_has_no_capital_after_a_colon_and_one_term_for_the_consistency_lora() -> None:
    nested = word(msg("fp8_unavailable", reason=msg("env_sd_missing")), "ru")
    assert nested.startswith("FP8 здесь собрать нельзя: в Python сборки"), nested
    assert "«LoRA согласованности»" in word(msg("lora_is_consistency", lora="x/y"), "ru")
    assert word(msg("hint_no_consistency"), "ru") == "LoRA согласованности не добавляется."
    from sdprep.text import ru

    assert not [key for key, text in ru.TEXT.items() if "consistency LoRA" in text or "Consistency LoRA" in text]
    assert ru.TEXT["env_none_gpu"] == "не найдена"  # "Видеокарта: не найдена"


def test_sentences_in_a_list_are_not_joined_with_commas() -> None:
    two = word(msg("env_cannot_build", missing=[msg("env_sd_missing"), msg("env_no_config_loader")]))
    assert "., " not in two and "src. " in two, two
    assert word(msg("env_cannot_build", missing=["a", "b"])).endswith(": a, b")  # short items stay a list


# --- the CLI ----------------------------------------------------------------------------------------------------
def test_build_without_a_gpu_refuses_first_one_reason_a_line_and_no_estimate(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SDPREP_STREAMDIFFUSION")}
    env["SDPREP_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "gradio_prepare.py"),
            "build",
            "--engines-dir",
            str(tmp_path / "e"),
            "--lang",
            "en",
        ],
        capture_output=True,
        text=True,
        env={**env, "SDPREP_PYTHON": sys.executable},  # the app's own Python: no torch, no TensorRT
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "Estimate before building" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "This machine cannot build yet, so nothing was built. Missing:", lines
    assert lines[1].startswith("  - PyTorch cannot be imported") and lines[2].startswith("  - TensorRT")
    assert "., " not in done.stderr
    assert not (tmp_path / "e").exists()


def test_build_help_shows_defaults_and_the_multiple_of_8_rule() -> None:
    def unwrapped(text: str) -> str:  # argparse wraps lines, also after a hyphen
        return "".join(text.split())

    text = unwrapped(run_cli("build", "--help", "--lang", "en").stdout)
    for expected in (
        "--width N Width (width) [256-1024, a multiple of 8; default: 512]",
        "[1-8; default: 1]",
        "[default: stabilityai/sd-turbo]",
        "[default: --tiny-vae]",
        "[default: flexible]",
        "[default: engines]",
    ):
        assert unwrapped(expected) in text, expected
    assert unwrapped("кратно 8; по умолчанию: 512]") in unwrapped(run_cli("build", "--help", "--lang", "ru").stdout)


# --- the console ------------------------------------------------------------------------------------------------
def test_a_taken_port_is_said_without_an_address_first(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "gradio_prepare.py"), "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "LANG": "C.UTF-8", "SDPREP_ENGINES_DIR": str(tmp_path / "e")},
            timeout=120,
        )
    assert done.returncode == 3, done.stderr
    assert f"port {port} is in use" in done.stderr
    assert "http://" not in done.stdout, done.stdout


def test_the_console_says_when_this_machine_cannot_build(tmp_path: Path) -> None:
    empty = tmp_path / "no-fork"
    empty.mkdir()
    # The app's own Python without the stand-in: no torch, no TensorRT, no StreamDiffusion.
    with running_app(tmp_path / "app", {"SDPREP_STREAMDIFFUSION_SRC": str(empty), "LANG": "C.UTF-8"}) as app:
        deadline = time.monotonic() + 60
        while "cannot build engines yet" not in app.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = app.log_text()
    assert "This machine cannot build engines yet: PyTorch cannot be imported" in log, log
    assert log.index("Open http://127.0.0.1:") < log.index("cannot build engines yet")


# --- results named by what ran ----------------------------------------------------------------------------------
def test_results_are_headed_by_the_job_that_ran() -> None:
    from sdprep.ui.views.jobs import outcome_label

    assert outcome_label("failed", "en") == "✘ Build failed"
    assert outcome_label("failed", "en", "setup") == "✘ Setup failed"
    assert outcome_label("failed", "en", "doctor") == "✘ Self-test failed"
    assert outcome_label("passed", "ru", "doctor") == "✔ Самопроверка пройдена"


def test_a_self_test_without_torch_is_a_failed_self_test_in_one_line_a_check(tmp_path: Path) -> None:
    from .ui_helpers import Api

    empty = tmp_path / "no-fork"
    empty.mkdir()
    with running_app(tmp_path / "app", {"SDPREP_STREAMDIFFUSION_SRC": str(empty)}) as app:
        out = Api(app.url).call("/doctor")
    assert out["setup-progress"].startswith("✘ Self-test failed"), out["setup-progress"]
    assert "Build failed" not in out["setup-progress"]
    log = out["setup-log"]
    assert "✘ torch: torch is not installed in this Python." in log, log
    assert "Traceback" not in log and "ModuleNotFoundError" not in log, log


def test_the_cli_self_test_prints_no_traceback_for_an_expected_state(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SDPREP_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "gradio_prepare.py"), "doctor", "--lang", "en", "--python", sys.executable],
        capture_output=True,
        text=True,
        env={**env, "SDPREP_CACHE_DIR": str(tmp_path / "cache")},
        timeout=120,
    )
    assert done.returncode == 1
    assert "torch is not installed in this Python" in done.stdout
    assert "ModuleNotFoundError" not in done.stdout + done.stderr and "Last lines of the log" not in done.stderr


# --- ids: near misses and the Hub -------------------------------------------------------------------------------
HUB_MODELS: dict[str, dict[str, object]] = {
    "stabilityai/sd-turbo": {
        "gated": False,
        "siblings": [{"rfilename": "model_index.json"}, {"rfilename": "unet/config.json"}],
    },
    "someone/gated-model": {"gated": "manual", "siblings": [{"rfilename": "model_index.json"}]},
    "someone/single-file": {"gated": False, "siblings": [{"rfilename": "model.safetensors"}]},
}


class FakeHub:
    """A Hugging Face Hub on 127.0.0.1 that knows a few ids: its model API, as the real one answers it."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        models = HUB_MODELS

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                model = self.path.removeprefix("/api/models/")
                body = models.get(model)
                if body is None:
                    self.send_response(401)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    payload = b'{"error": "Repository not found"}'
                else:
                    self.send_response(200)
                    payload = json.dumps({"id": model, **body}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    yield hub
    hub.close()


def test_a_near_miss_of_a_known_id_is_a_warning_with_the_known_id(tmp_path: Path) -> None:
    from sdprep.model_ids import did_you_mean, known_ids
    from sdprep.params import params_from_values
    from sdprep.validate import validate

    known = known_ids()
    assert did_you_mean("stabilityai/sd-trubo", known) == "stabilityai/sd-turbo"  # two letters swapped
    assert did_you_mean("StabilityAI/SD-Turbo", known) == "stabilityai/sd-turbo"  # case
    assert did_you_mean("kblueleaf/kohaku-v2.1", known) == "KBlueLeaf/kohaku-v2.1"
    assert did_you_mean("stabilityai/sd-turbo", known) is None and did_you_mean("stabilityai/sdxl-turbo", known) is None
    assert did_you_mean("someone/completely-else", known) is None and did_you_mean("./a/b", known) is None
    # A model prepared earlier in the engines folder is known too.
    (tmp_path / "me--my-model-v3").mkdir()
    (tmp_path / "me--my-model-v3" / "config.yaml").write_text("model_id: me/my-model-v3\n", encoding="utf-8")
    params = params_from_values({"model": "me/my-modle-v3", "engines_dir": str(tmp_path)})
    said = [str(problem) for problem in validate(params) if problem.message.code == "model_did_you_mean"]
    assert said == ["warning: model: me/my-modle-v3 is not a model this app knows; did you mean me/my-model-v3?"]


@given(a=st.text("abc/-", max_size=9), b=st.text("abc/-", max_size=9), limit=st.integers(0, 3))
@settings(max_examples=300, deadline=None)
def test_a_bounded_edit_distance_is_the_distance_up_to_its_limit(a: str, b: str, limit: int) -> None:
    from sdprep.model_ids import edits

    assert edits(a, b, limit) == min(edits(a, b), limit + 1)


def test_prepared_ids_are_compared_with_the_known_ones_once_per_change_of_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every form change asks for "did you mean": the ids prepared in the engines folder were compared with every
    known id each time (20 prepared models cost ~30 ms per form change); now once, until the folder changes."""
    from sdprep import model_ids
    from sdprep.params import params_from_values
    from sdprep.validate import validate

    for index in range(20):
        folder = tmp_path / f"me--model-{index:02d}"
        folder.mkdir()
        (folder / "config.yaml").write_text(f"model_id: me/model-{index:02d}\n", encoding="utf-8")
    compared: list[str] = []
    real = model_ids.did_you_mean

    def counting(typed: str, candidates: tuple[str, ...]) -> str | None:
        compared.append(typed)
        return real(typed, candidates)

    monkeypatch.setattr(model_ids, "did_you_mean", counting)
    params = params_from_values({"model": "me/model-O7", "engines_dir": str(tmp_path)})
    for _ in range(10):
        said = [str(problem) for problem in validate(params) if problem.message.code == "model_did_you_mean"]
        assert said and "did you mean me/model-07?" in said[0], said
    assert sorted(compared) == [f"me/model-{index:02d}" for index in range(20)]
    (tmp_path / "me--model-20").mkdir()  # a new model prepared: the folder changed, read and compared again
    (tmp_path / "me--model-20" / "config.yaml").write_text("model_id: me/model-20\n", encoding="utf-8")
    os.utime(tmp_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    validate(params)
    assert len(compared) == 41


def test_the_hub_answers_exists_gated_missing_and_which_files(fake_hub: FakeHub) -> None:
    from sdprep.hub import HubChecker

    checker = HubChecker()
    turbo = checker.answer("stabilityai/sd-turbo", wait=10)
    assert turbo is not None and turbo.status == "exists" and turbo.diffusers and "unet/config.json" in turbo.files
    gated = checker.answer("someone/gated-model", wait=10)
    assert gated is not None and gated.status == "gated"
    missing = checker.answer("stabilityai/sd-trubo", wait=10)
    assert missing is not None and missing.status == "missing"


def test_offline_the_hub_check_is_skipped_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdprep.hub import HubChecker

    with socket.socket() as closed:  # a port nobody listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    checker = HubChecker()
    first = checker.answer("stabilityai/sd-turbo", wait=10)
    assert first is not None and first.status == "skipped"
    # Known to be offline now: another id is answered at once, with no question asked (no thread, no wait).
    again = checker.answer("someone/other-model", wait=0)
    assert again is not None and again.status == "skipped"


@pytest.fixture
def packet_dropping_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Hub behind a firewall that drops packets: its listening queue is full, so a new connection is never
    answered (the kernel drops the SYN) and opening one waits for its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    queued = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(server.getsockname())
        except BlockingIOError:
            pass
        queued.append(filler)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        yield url
    finally:
        for filler in queued:
            filler.close()
        server.close()


def test_a_hub_out_of_reach_is_found_out_within_the_connect_timeout(packet_dropping_hub: str) -> None:
    """Issue 18's leftover: offline, the CLI's first hub check waited the whole question's 3 s."""
    import httpx

    from sdprep import hub

    started = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        hub.ask_hub("stabilityai/sd-turbo")
    # A kernel timer, not work: this machine's load does not stretch it.
    assert time.monotonic() - started < hub.TIMEOUT
    assert hub.CONNECT_TIMEOUT < hub.TIMEOUT


def test_the_next_process_knows_the_hub_is_out_of_reach_and_asks_again_once_it_answers(
    monkeypatch: pytest.MonkeyPatch, packet_dropping_hub: str
) -> None:
    from sdprep.hub import HubChecker, known_unreachable

    first = HubChecker().answer("stabilityai/sd-turbo", wait=30)
    assert first is not None and first.status == "skipped"
    assert known_unreachable()
    # A new process (a new checker): answered at once, no question asked, no wait.
    again = HubChecker().answer("someone/other-model", wait=0)
    assert again is not None and again.status == "skipped"
    # Another endpoint is not this one: it is asked; an answer from it clears what was known.
    hub = FakeHub()
    try:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert not known_unreachable()
        answer = HubChecker().answer("stabilityai/sd-turbo", wait=30)
        assert answer is not None and answer.status == "exists"
        monkeypatch.setenv("HF_ENDPOINT", packet_dropping_hub)
        assert not known_unreachable()
    finally:
        hub.close()


def test_cli_refuses_an_id_the_hub_does_not_have_and_names_the_near_miss(fake_hub: FakeHub, tmp_path: Path) -> None:
    done = run_cli(
        "build", "--model", "stabilityai/sd-trubo", "--config-only", "--engines-dir", str(tmp_path), "--lang", "en"
    )
    assert done.returncode == 2, done.stderr
    assert "error: --model: stabilityai/sd-trubo does not exist on Hugging Face" in done.stderr
    assert "did you mean stabilityai/sd-turbo?" in done.stderr
    assert not any(tmp_path.iterdir())
    ok = run_cli("build", "--model", "stabilityai/sd-turbo", "--config-only", "--engines-dir", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    single = run_cli("build", "--model", "someone/single-file", "--config-only", "--engines-dir", str(tmp_path))
    assert single.returncode == 2 and "has no model_index.json on Hugging Face" in single.stderr


def test_the_page_marks_a_missing_id_an_error_and_says_when_the_check_was_skipped(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    from .ui_helpers import Api

    with running_app(tmp_path / "app") as app:
        api = Api(app.url)
        out = api.call("/preview", model="stabilityai/sd-trubo")
        deadline = time.monotonic() + 30
        while "does not exist on Hugging Face" not in out["problems-checkpoint"] and time.monotonic() < deadline:
            out = api.call("/preview", model="stabilityai/sd-trubo")  # the answer arrives in the background
        assert "does not exist on Hugging Face" in out["problems-checkpoint"], out["problems-checkpoint"]
        assert "did you mean stabilityai/sd-turbo?" in out["problems-checkpoint"]
        assert "On Hugging Face: not found." in out["hint-checkpoint"]
        refused = api.call("/build", model="stabilityai/sd-trubo")
        assert refused["build-result"].startswith("#### ⊘ Not started"), refused["build-result"]
        fine = api.call("/preview", model="stabilityai/sd-turbo")
        assert "On Hugging Face: found (2 files)." in fine["hint-checkpoint"] or "checking" in fine["hint-checkpoint"]
    with running_app(tmp_path / "offline", {"HF_HUB_OFFLINE": "1"}) as app:
        out = Api(app.url).call("/preview", model="stabilityai/sd-trubo")
        assert "Hugging Face check off" in out["hint-checkpoint"]
        assert "does not exist" not in out["problems-checkpoint"]


# --- paths from another machine ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "server", "kind"),
    [
        ("C:\\Users\\me\\models\\dreamshaper_8.safetensors", "posix", "windows"),
        ("d:/models/x.safetensors", "posix", "windows"),
        ("\\\\nas\\share\\model.ckpt", "posix", "windows"),
        ("/home/me/models/x.safetensors", "nt", "posix"),
        ("~/models/x.safetensors", "nt", "posix"),
        ("/home/me/models/x.safetensors", "posix", None),
        ("stabilityai/sd-turbo", "posix", None),
    ],
)
def test_a_path_of_another_machine_is_named_as_such(typed: str, server: str, kind: str | None) -> None:
    from sdprep.paths import foreign_path

    assert foreign_path(typed, server) == kind


@pytest.mark.skipif(os.name == "nt", reason="a Windows path on a POSIX server")
def test_a_windows_model_path_says_the_server_runs_on_another_system(tmp_path: Path) -> None:
    typed = "C:\\Users\\me\\models\\dreamshaper_8.safetensors"
    done = run_cli("build", "--model", typed, "--config-only", "--engines-dir", str(tmp_path), "--lang", "en")
    assert done.returncode == 2
    assert f"error: --model: {typed} is a path on a Windows machine; the server runs on " in done.stderr
    assert "give a path on the server or a Hugging Face id." in done.stderr
    assert str(ROOT) not in done.stderr  # not "the local model <app folder>/C:\Users\... does not exist"


# --- the README -------------------------------------------------------------------------------------------------
def test_the_readme_starts_short_with_a_screenshot_and_the_test_time() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = [line for line in readme.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Quick start", sections[:3]
    start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for needed in ("run.bat", "./run.sh", "setup", "Build", "config.yaml", "Without an NVIDIA GPU", "about"):
        assert needed in start, needed
    assert len(start.splitlines()) <= 40, "the short start stays short"
    shot = ROOT / "docs" / "screenshot-prepare.png"
    assert "(docs/screenshot-prepare.png)" in start and shot.is_file()
    assert shot.stat().st_size < 300_000


def test_russian_problems_after_a_field_label_start_in_lower_case(tmp_path: Path) -> None:
    from sdprep.params import params_from_values
    from sdprep.ui.views.params import problems_html
    from sdprep.validate import validate

    missing = str(tmp_path / "nope.safetensors")
    params = params_from_values({"model": missing, "engines_dir": str(tmp_path)})
    html = problems_html(validate(params), "ru")
    assert f"Модель (model_id)</b>: локальной модели {missing} нет" in html, html
    done = run_cli("build", "--model", missing, "--config-only", "--engines-dir", str(tmp_path), "--lang", "ru")
    assert f"ошибка: --model: локальной модели {missing} нет" in done.stderr, done.stderr


def test_the_summary_does_not_allow_a_build_the_machine_refuses() -> None:
    from sdprep.messages import warning
    from sdprep.ui.views.params import summary_markdown

    warned = [warning("model", "turbo_with_lora")]
    assert "the build is allowed" in summary_markdown(warned, "en")
    blocked = summary_markdown(warned, "en", "⊘ Build is disabled: this machine cannot build yet.")
    assert "the build is allowed" not in blocked and "Save config only works" in blocked


def test_a_typo_saved_once_does_not_silence_the_suggestion(tmp_path: Path) -> None:
    """A near miss written to the engines folder (Save config only, --config-only) stays a near miss: it is not a
    spelling that the next form change takes for known (a new user found the warning gone on the second try)."""
    from sdprep.params import params_from_values
    from sdprep.validate import validate

    for typo in ("stabilityai/sd-trubo", "stabilityai/SD-Turbo"):
        folder = tmp_path / typo.replace("/", "--")
        folder.mkdir()
        (folder / "config.yaml").write_text(f"model_id: {typo}\n", encoding="utf-8")
        params = params_from_values({"model": typo, "engines_dir": str(tmp_path)})
        said = [problem for problem in validate(params) if problem.message.code == "model_did_you_mean"]
        assert said and "stabilityai/sd-turbo" in str(said[0]), (typo, said)


def test_save_names_the_variant_it_replaced_before_any_build(tmp_path: Path) -> None:
    """Save config only, then another profile saved over it: the message names the first variant (from its copy in
    configs/), not "?" (nothing is recorded in build.json before a build)."""
    done = run_cli("build", "--config-only", "--engines-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    first = next((tmp_path / "stabilityai--sd-turbo" / "configs").glob("*.yaml")).stem
    again = run_cli("build", "--config-only", "--engines-dir", str(tmp_path), "--profile", "fast")
    assert again.returncode == 0, again.stderr
    said = again.stdout + again.stderr
    assert f"variant {first}" in said and "variant ?" not in said, said
