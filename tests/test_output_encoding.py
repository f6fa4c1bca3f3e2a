"""Every CLI command with its output in a code page that lacks the app's marks (✔ ✘ ⚠ ⊘ →), written to a file: as
`run.bat doctor > log.txt` on a Windows in cp1251 or cp1252. The command must finish as it would on a UTF-8 terminal,
with ASCII stand-ins for what the code page lacks. (`setup` itself: tests/test_setup.py sets up its environment so.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdprep.cli.output import ASCII, never_fail
from tests.conftest import ROOT, STANDIN


def run_to_file(tmp_path: Path, encoding: str, *args: str) -> tuple[int, str]:
    """`gradio_prepare.py ARGS > out.txt 2>&1` with Python's output encoded in `encoding`; (exit code, the file)."""
    env = {**os.environ, "PYTHONIOENCODING": encoding, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    env.pop("PYTHONUTF8", None)
    out = tmp_path / f"out-{encoding}.txt"
    with open(out, "wb") as handle:
        code = subprocess.run(
            [sys.executable, str(ROOT / "gradio_prepare.py"), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            timeout=120,
        ).returncode
    return code, out.read_bytes().decode(encoding)


def assert_finished(code: int, text: str, expected: int = 0) -> None:
    assert "UnicodeEncodeError" not in text and "Traceback" not in text, text
    assert code == expected, text


@pytest.mark.parametrize("encoding", ["cp1251", "cp1252"])
def test_build_check_list_probe_and_doctor_finish_in_a_code_page(tmp_path: Path, encoding: str) -> None:
    engines = tmp_path / "engines"
    code, built = run_to_file(tmp_path, encoding, "build", "--engines-dir", str(engines), "--check")
    assert_finished(code, built)
    config = built.strip().splitlines()[-1]
    assert config.endswith(".png") or config.endswith("config.yaml"), built
    configs = list(engines.glob("*/config.yaml"))
    assert configs, built
    (configs[0].parent / "old--trt9.0--cc75" / "unet.engine").parent.mkdir()
    (configs[0].parent / "old--trt9.0--cc75" / "unet.engine").write_bytes(b"e")  # for clean to list and remove
    for args in (
        ("check", str(configs[0])),
        ("list", "--engines-dir", str(engines)),
        ("--lang", "ru", "clean", "--engines-dir", str(engines), "--yes"),
        ("probe",),
        ("doctor",),
        ("--lang", "ru", "doctor"),  # Cyrillic in cp1252: "?" where the code page has no letter, and it finishes
        ("--help",),
        ("build", "--help"),
        ("setup", "--help"),
    ):
        code, text = run_to_file(tmp_path, encoding, *args)
        assert_finished(code, text)
    code, text = run_to_file(tmp_path, encoding, "doctor")
    assert "+ TensorRT build" in text, "✔ written as +"


@pytest.mark.parametrize("encoding", ["cp1251", "cp1252"])
def test_refusals_and_failures_finish_in_a_code_page(tmp_path: Path, encoding: str) -> None:
    code, text = run_to_file(tmp_path, encoding, "build", "--width", "100", "--config-only")
    assert_finished(code, text, expected=2)
    code, text = run_to_file(tmp_path, encoding, "setup", "--target", str(tmp_path / "v"), "--fork", "not-a-fork")
    assert_finished(code, text, expected=2)
    code, text = run_to_file(tmp_path, encoding, "check", str(tmp_path / "missing" / "config.yaml"))
    assert code != 0 and "Traceback" not in text and "UnicodeEncodeError" not in text


def test_what_a_code_page_lacks_is_written_as_ascii(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "w", encoding="cp1252") as handle:
        never_fail(handle)
        handle.write("✔ ok → next ⊘ Привет \udcff")
    assert path.read_text(encoding="cp1252") == "+ ok -> next - ?????? ?"
    assert all(ord(stand_in) < 128 for text in ASCII.values() for stand_in in text)
