"""A new user's first start: a fresh clone to the first HTTP 200, with run.sh (uv) and with plain pip.

Both start from a clone of HEAD with empty package caches, so every wheel is downloaded from PyPI: that is what a
user meets once, and what choosing uv for run.sh/run.bat is about. The pip route is what run.sh did before it used
uv (python -m venv, pip install -r requirements.txt, start). Needs PyPI, so `bench/run.py` runs it only when asked
(--first-start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import ROOT
from testkit.app import free_port

FIRST_START_LIMIT_S = 600.0

PIP_ROUTE = (
    '"$PYTHON" -m venv .venv && .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt '
    '&& exec .venv/bin/python gradio_prepare.py "$@"'
)


def _first_200(command: list[str], clone: Path, env: dict[str, str], port: int) -> float:
    """Seconds from starting `command` in `clone` to the first HTTP 200 of the app it starts."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=clone, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while time.perf_counter() - started < FIRST_START_LIMIT_S:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} ended with {process.returncode} before the app answered")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"no answer within {FIRST_START_LIMIT_S:.0f} s")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def measure(say: Callable[[str], None]) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sdprep-first-start-") as scratch:
        for route in ("uv", "pip"):
            clone = Path(scratch) / route
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            env = {
                **os.environ,
                "PIP_CACHE_DIR": str(Path(scratch) / f"{route}-pip-cache"),
                "UV_CACHE_DIR": str(Path(scratch) / f"{route}-uv-cache"),
                "SDPREP_OPEN_BROWSER": "0",
                "PYTHON": sys.executable,
            }
            port = free_port()
            app_args = ["--host", "127.0.0.1", "--port", str(port), "--engines-dir", str(clone / "engines")]
            if route == "uv":
                command = ["bash", "run.sh", *app_args]
            else:
                command = ["bash", "-c", PIP_ROUTE, "pip-route", *app_args]
            results[f"{route}_s"] = _first_200(command, clone, env, port)
            say(f"  first start ({route}): {results[f'{route}_s']:.1f} s")
    return results
