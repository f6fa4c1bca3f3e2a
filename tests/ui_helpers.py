"""Helpers for the UI tests: start the real app as a subprocess, and call its endpoints by field name.

The app runs `python gradio_prepare.py --host 127.0.0.1 --port <free>` with the stand-in StreamDiffusion given
only to the build child (SDPREP_STREAMDIFFUSION_SRC), its own lock and probe-cache folders, and a temporary
working directory, exactly as a user would start it.
"""

from __future__ import annotations

import os
import signal
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "standin"
ARTIFACTS = ROOT / "tests" / "artifacts"
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _wait_until_up(app: RunningApp, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with {app.process.returncode}:\n{app.log_text()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{app.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the app, then every process it started (build children run in sessions of their own)."""
    import psutil

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for child in descendants:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def running_app(
    workdir: Path, extra_env: dict[str, str] | None = None, command: list[str] | None = None
) -> Iterator[RunningApp]:
    """The app, started as `python gradio_prepare.py --host 127.0.0.1 --port <free>` in `workdir` (or as
    `command` followed by those flags, e.g. the hot-reload runner)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STANDIN_", "SDPREP_", "GRADIO_"))}
    env.update(
        {
            "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN),
            "SDPREP_LOCK_DIR": str(workdir / "locks"),
            "SDPREP_CACHE_DIR": str(workdir / "cache"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    log = workdir / "app.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [
                *(command or [sys.executable, str(ROOT / "gradio_prepare.py")]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its build children too
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", process, workdir, log)
    try:
        _wait_until_up(app, START_TIMEOUT)
        yield app
    finally:
        _stop(process)


# --- calling endpoints by name ----------------------------------------------------------------------------------
def component_name(label: Any) -> str:
    """The name tests use for a parameter or output: the text key of an I18n label without its `f_` prefix
    (model, denoise_steps, cn0_model_id, o_summary, ...), or a plain label as it is ("lora problems")."""
    if isinstance(label, dict) and "key" in label:
        key = str(label["key"]).removeprefix("sdprep_")
        return key.removeprefix("f_")
    return str(label)


class Api:
    """A gradio_client session with calls by name: `api.call("/preview", model="x")["o_summary"]`."""

    def __init__(self, url: str) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False)
        self.endpoints: dict[str, Any] = self.client.view_api(return_format="dict", print_info=False)["named_endpoints"]

    def parameter_names(self, api_name: str) -> list[str]:
        return [component_name(p["label"]) for p in self.endpoints[api_name]["parameters"]]

    def output_names(self, api_name: str) -> list[str]:
        return [component_name(r["label"]) for r in self.endpoints[api_name]["returns"]]

    def arguments(self, api_name: str, values: dict[str, Any]) -> list[Any]:
        unknown = set(values) - set(self.parameter_names(api_name))
        assert not unknown, f"{api_name} has no parameters {sorted(unknown)}"
        return [
            values[component_name(p["label"])] if component_name(p["label"]) in values else p.get("parameter_default")
            for p in self.endpoints[api_name]["parameters"]
        ]

    def named(self, api_name: str, result: Any) -> dict[str, Any]:
        names = self.output_names(api_name)
        values = list(result) if isinstance(result, (list, tuple)) and len(names) != 1 else [result]
        return dict(zip(names, values, strict=True))

    def call(self, api_name: str, **values: Any) -> dict[str, Any]:
        return self.named(api_name, self.client.predict(*self.arguments(api_name, values), api_name=api_name))

    def submit(self, api_name: str, **values: Any) -> Any:
        return self.client.submit(*self.arguments(api_name, values), api_name=api_name)

    def wait_for(self, job: Any, api_name: str, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Poll a streaming job's outputs until one satisfies `predicate(named_outputs)`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for output in reversed(job.outputs()):
                named = self.named(api_name, output)
                if predicate(named):
                    return named
            if job.done():
                break
            time.sleep(0.1)
        outputs = [self.named(api_name, output) for output in job.outputs()[-3:]]
        raise AssertionError(f"no output of {api_name} matched within {timeout} s; last: {outputs}")
