"""Helpers for the UI tests: start the real app as a subprocess, and call its endpoints by component name.

The app runs `python gradio_prepare.py --host 127.0.0.1 --port <free> --engines-dir <workdir>/engines` with the
stand-in StreamDiffusion given only to the build child (SDPREP_STREAMDIFFUSION_SRC), its own lock and probe-cache
folders, and a temporary working directory, exactly as a user would start it. The engines folder is the server's
setting: no request can choose another, so a test that needs its own folder starts its own app.

Endpoints are called by the names of their components, read from the app's /config: each component's elem_id,
with `field-` dropped from form fields ("field-model" -> "model"), ControlNet slot fields as "cn0_model_id", and the
hidden page-language field as "lang". gr.State inputs and outputs (and buttons) are not part of the API: gradio_client
neither sends nor returns them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
    engines: Path  # the server's engines folder
    started: float = 0.0  # time.perf_counter() at Popen
    ready: float = 0.0  # time.perf_counter() at the first HTTP 200 of `/`

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _wait_until_up(app: RunningApp, timeout: float, poll: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with {app.process.returncode}:\n{app.log_text()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    app.ready = time.perf_counter()
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(poll)
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
            **(extra_env or {}),
        }
    )
    flags = ["--host", "127.0.0.1", "--port", str(port)]
    if command is None:
        argv = [sys.executable, str(ROOT / "gradio_prepare.py"), *flags, "--engines-dir", str(engines)]
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


# --- calling endpoints by name ----------------------------------------------------------------------------------
ALIASES = {"page-lang": "lang"}


def component_name(elem_id: str | None) -> str | None:
    """The name tests use for a component: its elem_id, "field-model" -> "model", "cn0-model_id" ->
    "cn0_model_id", "page-lang" -> "lang" (None without an elem_id)."""
    if not elem_id:
        return None
    if elem_id in ALIASES:
        return ALIASES[elem_id]
    slot = re.fullmatch(r"cn(\d+)-(\w+)", elem_id)
    if slot:
        return f"cn{slot[1]}_{slot[2]}"
    return elem_id.removeprefix("field-")


@dataclass
class Endpoint:
    """One named dependency of the page, as gradio_client calls it: the components it sends and gets back."""

    api_name: str
    visibility: str
    parameters: list[str]  # names of the inputs the client sends (no State)
    defaults: list[Any]  # each parameter's value when the page is opened
    outputs: list[str]  # names of the outputs the client returns (no State, no buttons)
    unnamed: list[str]  # components of this endpoint without an elem_id


class Api:
    """A gradio_client session with calls by name: `api.call("/preview", model="x")["summary"]`.

    `lang` is the page's language (the hidden #page-lang field), sent with every call that reads it.
    """

    def __init__(self, url: str, lang: str = "en", auth: tuple[str, str] | None = None) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False, auth=auth)
        self.lang = lang
        self.endpoints = self._endpoints()

    def _endpoints(self) -> dict[str, Endpoint]:
        components = {component["id"]: component for component in self.client.config["components"]}
        endpoints: dict[str, Endpoint] = {}
        for fn_id, endpoint in self.client.endpoints.items():
            if not endpoint.api_name:
                continue
            dependency = endpoint.dependency
            unnamed: list[str] = []

            def names(ids: list[int], kinds: list[Any], unnamed: list[str] = unnamed) -> list[tuple[str, int]]:
                named = []
                for cid, kind in zip(ids, kinds, strict=True):
                    if kind.skip:
                        continue
                    props = components[cid].get("props", {})
                    name = component_name(props.get("elem_id"))
                    if name is None:
                        name = f"<{components[cid]['type']} {cid}>"
                        unnamed.append(name)
                    named.append((name, cid))
                return named

            inputs = names(dependency["inputs"], endpoint.input_component_types)
            outputs = names(dependency["outputs"], endpoint.output_component_types)
            endpoints[str(endpoint.api_name)] = Endpoint(
                api_name=endpoint.api_name,
                visibility=endpoint.api_visibility,
                parameters=[name for name, _ in inputs],
                defaults=[components[cid].get("props", {}).get("value") for _, cid in inputs],
                outputs=[name for name, _ in outputs],
                unnamed=unnamed,
            )
            assert fn_id is not None
        return endpoints

    def parameter_names(self, api_name: str) -> list[str]:
        return self.endpoints[api_name].parameters

    def output_names(self, api_name: str) -> list[str]:
        return self.endpoints[api_name].outputs

    def arguments(self, api_name: str, values: dict[str, Any]) -> list[Any]:
        endpoint = self.endpoints[api_name]
        values = {"lang": self.lang, **values} if "lang" in endpoint.parameters else values
        unknown = set(values) - set(endpoint.parameters)
        assert not unknown, f"{api_name} has no parameters {sorted(unknown)}; it has {endpoint.parameters}"
        return [values.get(name, default) for name, default in zip(endpoint.parameters, endpoint.defaults, strict=True)]

    def named(self, api_name: str, result: Any) -> dict[str, Any]:
        names = self.output_names(api_name)
        values = list(result) if isinstance(result, (list, tuple)) and len(names) != 1 else [result]
        return dict(zip(names, values, strict=True))

    def call(self, api_name: str, **values: Any) -> dict[str, Any]:
        return self.named(api_name, self.client.predict(*self.arguments(api_name, values), api_name=api_name))

    def submit(self, api_name: str, **values: Any) -> Any:
        return self.client.submit(*self.arguments(api_name, values), api_name=api_name)

    def wait_for(
        self, job: Any, api_name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
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

    def settled(self, api_name: str, job: Any, timeout: float = 60.0) -> dict[str, Any]:
        """What the page shows once a streaming job has ended: every output folded in order, an update without a
        value leaving the one before it (as the browser does)."""
        job.result(timeout=timeout)
        shown: dict[str, Any] = {}
        for output in job.outputs():
            for name, value in self.named(api_name, output).items():
                if isinstance(value, dict) and value.get("__type__") == "update":
                    before = shown.get(name)
                    merged = {**before, **value} if isinstance(before, dict) else dict(value)
                    if "value" not in value and name in shown and not isinstance(before, dict):
                        merged["value"] = before
                    shown[name] = merged if set(value) - {"__type__"} else before
                else:
                    shown[name] = value
        return shown

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def value_of(output: Any) -> Any:
    """An output's value: updates (dicts with __type__ "update") carry it under "value"."""
    if isinstance(output, dict) and output.get("__type__") == "update":
        return output.get("value")
    return output
