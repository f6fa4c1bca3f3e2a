"""The real app, started as a user starts it, for the UI tests and the benchmark.

The app runs `python gradio_prepare.py --host 127.0.0.1 --port <free> --engines-dir <workdir>/engines` with the
stand-in StreamDiffusion given only to the build child (SDPREP_STREAMDIFFUSION_SRC), its own lock and probe-cache
folders, and a temporary working directory. The engines folder is the server's setting: no request can choose
another, so a test that needs its own folder starts its own app.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import psutil

from testkit.paths import APP, STANDIN
from testkit.processes import kill
from testkit.timing import SUITE_TIMEOUT

if TYPE_CHECKING:
    from sdprep.config import RuntimeDefaults

START_TIMEOUT = SUITE_TIMEOUT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runtime_defaults() -> RuntimeDefaults:
    """RUNTIME_DEFAULTS as written in gradio_prepare.py, read without importing it (that builds the whole UI)."""
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RUNTIME_DEFAULTS":
            assert node.value is not None
            return cast("RuntimeDefaults", ast.literal_eval(node.value))
    raise AssertionError("gradio_prepare.py has no RUNTIME_DEFAULTS")


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    engines: Path  # the server's engines folder
    started: float = 0.0  # time.perf_counter() at Popen
    ready: float = 0.0  # time.perf_counter() at the first HTTP 200 of `/`

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def hold(self) -> Path:
        """While this file exists, the stand-in's slow builds wait after each "[slow]" line (STANDIN_HOLD)."""
        return self.workdir / "hold"


@contextmanager
def held(app: RunningApp) -> Iterator[None]:
    """Slow builds of `app` stay running until the block ends: a test sees a build running for as long as it needs
    to, however slow the machine."""
    app.hold.touch()
    try:
        yield
    finally:
        app.hold.unlink(missing_ok=True)


def _wait_until_up(app: RunningApp, timeout: float, poll: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with {app.process.returncode}:\n{app.log_text()}")
        try:
            with urllib.request.urlopen(app.url, timeout=10) as response:
                if response.status == 200:
                    app.ready = time.perf_counter()
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(poll)
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{app.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the app politely (it ends its builds), then kill its group and everything it started (build children
    run in sessions of their own)."""
    import signal

    try:
        family = [psutil.Process(process.pid)]
    except psutil.NoSuchProcess:
        family = []
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    kill(family)
    try:
        process.wait(timeout=10)
    except (subprocess.TimeoutExpired, ChildProcessError):
        pass


@contextmanager
def running_app(
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    command: list[str] | None = None,
    engines: Path | None = None,
    poll: float = 0.25,
) -> Iterator[RunningApp]:
    """The app, started as `python gradio_prepare.py --host 127.0.0.1 --port <free> --engines-dir <engines>` in
    `workdir` (engines: `workdir/engines` unless given). With `command` (e.g. the hot-reload runner) the host and port
    follow it as flags and the engines folder is given as $SDPREP_ENGINES_DIR. `poll`: seconds between the requests
    that wait for it to answer (the benchmark times the start-up with 0.01)."""
    workdir.mkdir(parents=True, exist_ok=True)
    engines = (engines or workdir / "engines").resolve()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STANDIN_", "SDPREP_", "GRADIO_"))}
    env.update(
        {
            "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN),
            "SDPREP_LOCK_DIR": str(workdir / "locks"),
            "SDPREP_CACHE_DIR": str(workdir / "cache"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "SDPREP_ALLOW_LOW_DISK": os.environ.get("SDPREP_ALLOW_LOW_DISK", ""),
            # Builds do not rehearse unless a test asks (the page's Rehearse first box, or extra_env).
            "SDPREP_REHEARSE": "0",
            "PYTHONUNBUFFERED": "1",
            "STANDIN_HOLD": str(workdir / "hold"),  # RunningApp.hold
            **(extra_env or {}),
        }
    )
    flags = ["--host", "127.0.0.1", "--port", str(port)]
    if command is None:
        argv = [sys.executable, str(APP), *flags, "--engines-dir", str(engines)]
    else:
        env["SDPREP_ENGINES_DIR"] = str(engines)
        argv = [*command, *flags]
    log = workdir / "app.log"
    started = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its build children too
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", process, workdir, log, engines, started)
    try:
        _wait_until_up(app, START_TIMEOUT, poll)
        yield app
    finally:
        _stop(process)
