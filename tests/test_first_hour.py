"""What a new user meets in the first hour, from the command line and the console: refusals before estimates, help
with defaults and rules, the usual fix of a JSON mistake, Russian that reads as Russian, console lines in order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    assert lines[0] == "cannot run here: this machine cannot build yet; nothing was built:", lines
    assert lines[1].startswith("  - PyTorch cannot be imported") and lines[2].startswith("  - TensorRT")
    assert "., " not in done.stderr
    assert not (tmp_path / "e").exists()


def test_build_help_shows_defaults_and_the_multiple_of_8_rule() -> None:
    def unwrapped(text: str) -> str:  # argparse wraps lines, also after a hyphen
        return "".join(text.split())

    text = unwrapped(run_cli("build", "--help", "--lang", "en").stdout)
    for expected in (
        "--width N Width (width) [384-1024, a multiple of 8; default: 512]",
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
