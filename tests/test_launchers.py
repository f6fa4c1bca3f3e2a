"""run.bat, run.sh and requirements.txt: what a Windows or Git Bash user's first start depends on, read as text
(no Windows here to run cmd: these lines are the parts a review of run.bat against cmd's behaviour asked for)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from sdprep.launcher import APP_DIR, app_command
from sdprep.text import TABLE, t

ROOT = Path(__file__).resolve().parents[1]
RUN_BAT = ROOT / "run.bat"


def bat_lines() -> list[str]:
    return RUN_BAT.read_bytes().decode("ascii").split("\r\n")


def test_run_bat_has_crlf_line_endings_and_git_keeps_them() -> None:
    data = RUN_BAT.read_bytes()
    assert b"\n" in data and data.count(b"\n") == data.count(b"\r\n"), "an LF batch file breaks cmd's goto labels"
    attributes = subprocess.run(
        ["git", "check-attr", "text", "eol", "--", "run.bat", "run.sh"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "run.bat: text: unset" in attributes  # stored and checked out byte for byte: CRLF stays CRLF
    assert "run.sh: eol: lf" in attributes


def test_run_bat_speaks_utf8_to_python_whatever_the_console_code_page() -> None:
    assert 'set "PYTHONUTF8=1"' in bat_lines()


def test_run_bat_chooses_a_64_bit_python_3_10_to_3_12_through_the_py_launcher_newest_first() -> None:
    lines = bat_lines()
    tried = [line.split("call :try_python ", 1)[1] for line in lines if "call :try_python " in line]
    assert tried == ["py -3.12", "py -3.11", "py -3.10", "python"]
    check = next(line for line in lines if line.startswith('set "PY_CHECK='))
    assert "struct.calcsize('P') * 8" in check and "bits == 64" in check and "(3, 10) <= v <= (3, 12)" in check
    assert not any(re.search(r"\bpy -3(?![.\d])", line) for line in lines), "py -3 takes 3.9 or a 32-bit Python"


def test_run_bat_says_why_py_failed_instead_of_hiding_it() -> None:
    lines = bat_lines()
    assert not any(re.search(r"^\s*(py|%\*|%BASE_PY%)\b.*2>\s*nul", line) for line in lines)
    attempt = next(line for line in lines if line.startswith('%* -c "%PY_CHECK%"'))
    assert '>> "%PY_LOG%" 2>&1' in attempt  # kept, and shown when no Python fits
    no_python = lines[lines.index(":no_python") :]
    assert 'type "%PY_LOG%"' in no_python[: no_python.index("exit /b 1")]


def test_run_bat_checks_its_folder_is_writable_and_extracted_before_blaming_python() -> None:
    lines = bat_lines()
    first_python = next(index for index, line in enumerate(lines) if "call :try_python" in line)
    assert lines.index('if not exist "gradio_prepare.py" goto not_extracted') < first_python
    assert lines.index('if not exist "%WRITE_TEST%" goto not_writable') < first_python
    assert any(line.startswith("copy /y nul") and "%WRITE_TEST%" in line for line in lines)


def test_run_bat_rebuilds_a_broken_venv() -> None:
    lines = bat_lines()
    assert 'if not exist "%VENV_PY%" goto broken_venv' in lines
    assert '"%VENV_PY%" -c "import sys" >nul 2>&1 || goto broken_venv' in lines
    broken = lines[lines.index(":broken_venv") :]
    assert 'rmdir /s /q ".venv"' in broken[:4]


def test_run_bat_pauses_on_any_non_zero_exit_including_negative_crash_codes() -> None:
    lines = bat_lines()
    commands = [line for line in lines if not line.startswith("rem ")]
    assert not any("if errorlevel" in line.lower() for line in commands), "'if errorlevel 1' misses negative codes"
    start = lines.index('"%VENV_PY%" gradio_prepare.py %*')
    assert lines[start + 1 : start + 5] == [
        'set "CODE=%ERRORLEVEL%"',
        lines[start + 2],  # the comment on why
        'if not "%CODE%"=="0" pause',
        "exit /b %CODE%",
    ]
    # Every step that can fail goes to a label that pauses before it exits.
    for label in (":no_python", ":venv_failed", ":venv_locked", ":install_failed", ":not_writable", ":not_extracted"):
        block = lines[lines.index(label) :]
        assert "pause" in block[: block.index("exit /b 1")]


def test_run_sh_finds_the_venv_python_under_git_bash_too() -> None:
    text = (ROOT / "run.sh").read_text(encoding="utf-8")
    assert "MINGW* | MSYS* | CYGWIN*)" in text
    assert "venv_python=.venv/Scripts/python.exe" in text
    assert "export PYTHONUTF8=1" in text
    subprocess.run(["bash", "-n", str(ROOT / "run.sh")], check=True)


def test_requirements_ask_for_a_uv_that_has_torch_backend() -> None:
    """setup passes --torch-backend, which uv has outside preview only from 0.7.14 on."""
    line = next(
        line for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines() if line.startswith("uv")
    )
    assert re.fullmatch(r"uv>=0\.7\.14(,<\d+)?", line)


# --- the command a message tells a person to type --------------------------------------------------------------


def test_the_app_started_from_its_own_venv_is_started_again_by_its_run_script() -> None:
    venv = str(APP_DIR / ".venv")
    assert app_command(windows=True, prefix=venv, cwd=str(APP_DIR)) == "run.bat"
    assert app_command(windows=False, prefix=venv, cwd=str(APP_DIR)) == "./run.sh"
    # From another folder the script is named by its full path, quoted for the shell that reads it.
    elsewhere = app_command(windows=False, prefix=venv, cwd="/")
    assert elsewhere == shlex.quote(str(APP_DIR / "run.sh"))


def test_any_other_python_is_named_by_its_full_path_with_the_apps_script() -> None:
    command = app_command(windows=False, prefix="/usr", python="/opt/my python/bin/python3", cwd=str(APP_DIR))
    assert shlex.split(command) == ["/opt/my python/bin/python3", str(APP_DIR / "gradio_prepare.py")]
    windows = app_command(windows=True, prefix=r"C:\Py312", python=r"C:\Program Files\Python312\python.exe")
    assert windows.startswith('"C:\\Program Files\\Python312\\python.exe" ')


def test_every_message_that_sends_a_person_to_setup_names_the_command_that_runs_here() -> None:
    for lang in ("en", "ru"):
        for key in ("banner_setup", "fix_setup_upgrade", "env_sd_missing", "doctor_not_installed"):
            assert "python gradio_prepare.py" not in TABLE[lang][key]
            assert f"`{app_command()} setup" in t(key, lang)


def test_a_python_without_the_apps_requirements_gets_one_line_naming_the_run_script() -> None:
    """`python3 gradio_prepare.py setup` on a fresh machine: not a ModuleNotFoundError traceback, but how to start."""
    for args in (["setup"], ["probe"], []):
        done = subprocess.run(
            [sys.executable, "-S", str(ROOT / "gradio_prepare.py"), *args],  # -S: no site-packages, no requirements
            capture_output=True,
            text=True,
            env={**os.environ, "LANG": "en_US.UTF-8", "LC_ALL": ""},
            timeout=60,
        )
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert "lacks the app's requirements" in line and ("./run.sh" in line or "run.bat" in line)
