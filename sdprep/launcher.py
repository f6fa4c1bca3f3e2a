"""How a person starts this app's commands on this machine, written so that it runs as typed.

The app started from its own `.venv` (what run.bat and run.sh make) is started the same way again: `run.bat setup` on
Windows, `./run.sh setup` elsewhere (by full path when the working folder is another one). Any other Python is named
by its full path, with the app's script: `python gradio_prepare.py setup` would run whatever `python` is on PATH,
which on a fresh machine lacks the app's requirements.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1]
SCRIPT = APP_DIR / "gradio_prepare.py"


def _quote(text: str, windows: bool) -> str:
    return subprocess.list2cmdline([text]) if windows else shlex.quote(text)


def run_script(windows: bool = os.name == "nt") -> str:
    """The script that makes the app's .venv and starts the app, as typed in the app's folder."""
    return "run.bat" if windows else "./run.sh"


def app_command(
    windows: bool = os.name == "nt",
    prefix: str = sys.prefix,
    python: str = sys.executable,
    cwd: str | None = None,
) -> str:
    """The start of a command line that runs this app: append `setup`, `doctor`, ... to it."""
    here = Path(cwd if cwd is not None else os.getcwd())
    if Path(prefix) == APP_DIR / ".venv":
        script = run_script(windows)
        return script if here == APP_DIR else _quote(str(APP_DIR / script.removeprefix("./")), windows)
    return f"{_quote(python, windows)} {_quote(str(SCRIPT), windows)}"
