"""Measure the app on this machine in one run and write docs/performance.md.

    python bench/run.py            5 start-ups of each app, 200 form changes, ... (about 2 minutes on 2 cores)
    python bench/run.py --quick    2 start-ups of each, 60 form changes (about 1 minute)
    python bench/run.py --from-json bench/results/<run>.json    only render docs/performance.md again

What it does, in order (every number comes from this run):
1. starts the real app (`gradio_prepare.py --host 127.0.0.1 --port <free>`) and bench/minimal_app.py alternately,
   timing Popen -> the first HTTP 200 of `/`, and reading the process tree's RSS one second later;
2. starts the real app once more and drives it the way the page's JavaScript client does (queue/join + server-sent
   events, one session): a warm-up build, five zero-work builds with the stand-in StreamDiffusion (each into a fresh
   engines folder; RSS before and after), "up to date" answers, form changes (the `preview` event: derived values
   + validation + YAML preview), the same through gradio_client, and a slow build whose log lines are timed on
   arrival against the child's own log time stamps;
3. the minimal app's trivial event (Gradio's round-trip floor);
4. in this process: the page served from here with timers inside Gradio (server time of `preview`), the handler
   alone, the start of a bare child Python, child line -> runner event and -> JobBoard follower latency, and the
   "up to date" answer of `run_build` and of the CLI as a whole process.
Results go to docs/performance.md (table, machine, method) and bench/results/<date>.json (raw samples).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "standin"
APP = ROOT / "gradio_prepare.py"
MINIMAL = ROOT / "bench" / "minimal_app.py"
MB = 1024 * 1024
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- statistics ------------------------------------------------------------------------------------------------
def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Metric:
    name: str
    goal: str
    unit: str
    samples: list[float]
    passed: bool | None  # None: no goal (for comparison only)
    note: str = ""

    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def spread(self) -> str:
        if not self.samples:
            return "–"
        if len(self.samples) >= 20:
            low, high = percentile(self.samples, 5), percentile(self.samples, 95)
            return f"p5–p95 {fmt(low, self.unit)} – {fmt(high, self.unit)}"
        return f"min–max {fmt(min(self.samples), self.unit)} – {fmt(max(self.samples), self.unit)}"


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "–"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.2f}×"
    return f"{value:.3g} {unit}"


# --- processes -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN),
            "SDPREP_CACHE_DIR": str(state / "cache"),
            "SDPREP_LOCK_DIR": str(state / "locks"),
            "GRADIO_ANALYTICS_ENABLED": "False",  # no telemetry requests from either app
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
    )
    for name in list(env):
        if name.startswith("STANDIN_"):
            del env[name]
    return env


def rss_tree(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    started: float  # perf_counter at Popen
    ready: float = 0.0  # perf_counter at the first HTTP 200
    log: Any = None  # the open file its output goes to

    @property
    def start_seconds(self) -> float:
        return self.ready - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.log is not None:
            self.log.close()


def start_server(script: Path, workdir: Path, env: dict[str, str], timeout: float = 90) -> Server:
    port = free_port()
    log = workdir / f"{script.stem}-{port}.log"
    handle = open(log, "wb")  # noqa: SIM115 - the server writes to it until it is stopped
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, f"http://127.0.0.1:{port}/", started, log=handle)
    deadline = started + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{script.name} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if client.get(server.url).status_code == 200:
                    server.ready = time.perf_counter()
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"{script.name} did not answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


# --- 1. start-up -----------------------------------------------------------------------------------------------
def measure_startup(rounds: int, state: Path, say: Callable[[str], None]) -> dict[str, list[float]]:
    env = base_env(state)
    results: dict[str, list[float]] = {"app_s": [], "minimal_s": [], "app_rss_mb": [], "minimal_rss_mb": []}
    for index in range(rounds):
        for name, script in (("minimal", MINIMAL), ("app", APP)) if index % 2 else (("app", APP), ("minimal", MINIMAL)):
            workdir = Path(tempfile.mkdtemp(prefix=f"sdprep-bench-{name}-", dir=state))
            server = start_server(script, workdir, env)
            try:
                time.sleep(1.0)
                rss = rss_tree(server.process.pid) / MB
            finally:
                server.stop()
            results[f"{name}_s"].append(server.start_seconds)
            results[f"{name}_rss_mb"].append(rss)
            say(f"  start-up round {index + 1}/{rounds} {name}: {server.start_seconds:.2f} s, {rss:.0f} MB")
    return results


# --- 2. the real app, driven as a browser drives it ------------------------------------------------------------
def label_key(label: Any) -> str:
    """A component's label as the API shows it: "__i18n__{...key...}" or {"key": ...} -> the key; else the text."""
    if isinstance(label, dict):
        return str(label.get("key", ""))
    if getattr(label, "key", None):
        return str(label.key)
    text = str(label or "")
    if text.startswith("__i18n__"):
        with contextlib.suppress(ValueError):
            return str(json.loads(text[len("__i18n__") :]).get("key", ""))
    return text


def field_name(key: str) -> str:
    """sdprep_f_width -> width, sdprep_cn0_model_id -> cn0_model_id, sdprep_language -> language."""
    return key.removeprefix("sdprep_f_").removeprefix("sdprep_")


@dataclass
class Endpoint:
    fn_index: int
    inputs: list[tuple[str, str, Any]]  # (field name, component type, default value)
    outputs: list[str]  # field names of the outputs


class BrowserClient:
    """Gradio's browser protocol, as the page's JavaScript client speaks it: POST /gradio_api/queue/join, then
    read the session's server-sent events. Each message carries the outputs (streamed ones as diffs, applied
    here) and the server's own `duration` of that step. Values are given by form field name."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex[:12]  # one page: one session for all its events, as the browser does
        config = self.http.get(f"{self.url}/config").json()
        components = {component["id"]: component for component in config["components"]}

        def name_of(component_id: int) -> str:
            return field_name(label_key(components[component_id].get("props", {}).get("label")))

        self.endpoints: dict[str, Endpoint] = {}
        for dependency in config["dependencies"]:
            if not dependency.get("api_name"):
                continue
            inputs = [
                (name_of(i), components[i]["type"], components[i].get("props", {}).get("value"))
                for i in dependency["inputs"]
            ]
            outputs = [name_of(i) for i in dependency["outputs"]]
            self.endpoints[dependency["api_name"]] = Endpoint(dependency["id"], inputs, outputs)

    def stream(self, api_name: str, **values: Any) -> Iterator[tuple[float, dict[str, Any], dict[str, Any]]]:
        """(arrival wall time, outputs by name, the raw `output` message) for every update until the result."""
        from gradio_client.utils import apply_diff

        endpoint = self.endpoints[api_name]
        unknown = set(values) - {name for name, _, _ in endpoint.inputs}
        if unknown:
            raise KeyError(f"/{api_name} has no inputs {sorted(unknown)}")
        data = [None if kind == "state" else values.get(name, default) for name, kind, default in endpoint.inputs]
        joined = self.http.post(
            f"{self.url}/gradio_api/queue/join",
            json={"data": data, "fn_index": endpoint.fn_index, "session_hash": self.session, "event_data": None},
        )
        joined.raise_for_status()
        event_id = joined.json().get("event_id")
        current: list[Any] | None = None
        with self.http.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session}) as sse:
            for line in sse.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "close_stream":
                    return
                if kind not in ("process_generating", "process_completed") or message.get("event_id") != event_id:
                    continue
                output = message.get("output") or {}
                if not message.get("success", True) or "error" in output:
                    raise RuntimeError(f"/{api_name} failed: {output.get('error')}")
                if kind == "process_generating" and current is not None:
                    current = [apply_diff(old, diff) for old, diff in zip(current, output["data"], strict=True)]
                else:
                    current = list(output["data"])
                yield time.time(), dict(zip(endpoint.outputs, current, strict=True)), output
                if kind == "process_completed":
                    return

    def call(self, api_name: str, **values: Any) -> tuple[dict[str, Any], float]:
        """The final outputs and the server's duration of the call (seconds, Gradio's own figure)."""
        last: tuple[dict[str, Any], float] = ({}, float("nan"))
        for _, outputs, output in self.stream(api_name, **values):
            last = (outputs, float(output.get("duration") or 0.0))
        return last

    def close(self) -> None:
        self.http.close()


def form_changes(count: int) -> Iterator[dict[str, Any]]:
    """Distinct form states, one field changed at a time, as a person would click through the form."""
    steps, widths, cfgs = (1, 2, 3, 4), (512, 576, 640, 704, 768), ("self", "none", "initialize")
    for index in range(count):
        yield {
            "denoise_steps": steps[index % len(steps)],
            "width": widths[(index // 2) % len(widths)],
            "cfg_type": cfgs[(index // 3) % len(cfgs)],
            "lora_json": "{}" if index % 5 else '{"owner/style-lora": 0.8}',
        }


@dataclass
class BuildRun:
    seconds: float  # request sent -> the update that carries the build's result
    outcome: str
    check_seconds: float | None = None  # request sent -> the update that carries the check's result
    lines: list[tuple[float, str]] = field(default_factory=list)  # (arrival wall time, log line), first arrival
    sent_wall: float = 0.0


_OUTCOMES = {"✔ Built": "built", "✔ Up to date": "up_to_date", "✘ Build failed": "failed", "■ Cancelled": "cancelled"}
_LOG_ELAPSED = re.compile(r"^\[\s*([0-9.]+)s\]")
_CHILD_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) [A-Z]+ ")


def ui_build(app: BrowserClient, engines: Path, **values: Any) -> BuildRun:
    seen: set[str] = set()
    lines: list[tuple[float, str]] = []
    sent_wall = time.time()
    started = time.perf_counter()
    outcome, finished, checked = "unknown", 0.0, None
    for arrival, outputs, _ in app.stream("build", engines_dir=str(engines), **values):
        if outputs.get("chk_heading") and checked is None:
            checked = time.perf_counter() - started
        for line in str(outputs.get("o_log") or "").splitlines():
            if line not in seen:
                seen.add(line)
                lines.append((arrival, line))
        result = str(outputs.get("o_result") or "")
        for label, name in _OUTCOMES.items():
            if label in result and not finished:
                outcome, finished = name, time.perf_counter()
    return BuildRun((finished or time.perf_counter()) - started, outcome, checked, lines, sent_wall)


def line_delays(run: BuildRun) -> tuple[list[float], list[float]]:
    """(exact, upper bound) in ms. Exact: log lines the child's logging stamped with its own clock (ms); upper
    bound: every line, from its elapsed time since the build started (0.1 s) and when the request was sent."""
    exact, bound = [], []
    for arrival, line in run.lines:
        stamp = _CHILD_STAMP.search(line)
        if stamp:
            printed = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + int(stamp.group(2)) / 1000
            exact.append((arrival - printed) * 1000)
        elapsed = _LOG_ELAPSED.match(line)
        if elapsed:
            bound.append((arrival - (run.sent_wall + float(elapsed.group(1))) + 0.05) * 1000)
    return exact, bound


def measure_app(args: argparse.Namespace, state: Path, say: Callable[[str], None]) -> dict[str, Any]:
    env = base_env(state)
    env.update({"STANDIN_SLOW_SECONDS": "1.0", "STANDIN_SLOW_STEPS": "6"})  # only `standin/slow-*` models read them
    workdir = Path(tempfile.mkdtemp(prefix="sdprep-bench-session-", dir=state))
    server = start_server(APP, workdir, env)
    out: dict[str, Any] = {}
    app = BrowserClient(server.url)
    try:
        app.call("preview_on_load")  # what opening the page does
        time.sleep(1.0)
        rss_before = rss_tree(server.process.pid) / MB

        # Zero-work builds: default stand-in (success), a fresh engines folder each time. First as the page does by
        # default (the build, then its load-and-run check), measuring the memory; then the build alone.
        warm = ui_build(app, workdir / "engines-warmup")  # the first probe of this server (cached after)
        say(f"  warm-up build + check: {warm.outcome} in {warm.seconds:.2f} s (not counted)")
        with_check, rss_after_each = [], []
        for index in range(5):
            run = ui_build(app, workdir / f"engines-checked-{index}")
            if run.outcome != "built" or run.check_seconds is None:
                raise RuntimeError(f"zero-work build {index} ended {run.outcome}, check after {run.check_seconds}")
            with_check.append(run.check_seconds)
            rss_after_each.append(rss_tree(server.process.pid) / MB)
            say(f"  zero-work build + check {index + 1}/5: {run.seconds:.2f} s")
        time.sleep(1.0)
        out["build_and_check_s"] = with_check
        out["rss_before_builds_mb"] = rss_before
        out["rss_after_builds_mb"] = rss_tree(server.process.pid) / MB
        out["rss_after_each_build_mb"] = rss_after_each
        builds = []
        for index in range(5):
            run = ui_build(app, workdir / f"engines-{index}", check=False)
            if run.outcome != "built":
                raise RuntimeError(f"zero-work build {index} ended {run.outcome}")
            builds.append(run.seconds)
        out["build_s"] = builds
        say(f"  zero-work build alone: median {statistics.median(builds):.2f} s")

        # "Up to date": the same parameters again into the last engines folder (alone, then with the check).
        up, up_checked = [], []
        for _ in range(args.uptodate_rounds):
            run = ui_build(app, workdir / "engines-4", check=False)
            if run.outcome != "up_to_date":
                raise RuntimeError(f"expected up to date, got {run.outcome}")
            up.append(run.seconds)
            run = ui_build(app, workdir / "engines-4")
            if run.outcome != "up_to_date":
                raise RuntimeError(f"expected up to date, got {run.outcome}")
            up_checked.append(run.seconds)
        out["ui_up_to_date_s"] = up
        out["ui_up_to_date_and_check_s"] = up_checked
        say(
            f"  UI up-to-date: median {statistics.median(up) * 1000:.0f} ms "
            f"(with the check {statistics.median(up_checked) * 1000:.0f} ms)"
        )

        # Form changes: the preview event, round trip and the server's own duration.
        for values in form_changes(5):
            app.call("preview", **values)
        round_trip, server_ms = [], []
        for values in form_changes(args.previews):
            started = time.perf_counter()
            _, duration = app.call("preview", **values)
            round_trip.append((time.perf_counter() - started) * 1000)
            server_ms.append(duration * 1000)
        out["preview_round_trip_ms"] = round_trip
        out["preview_gradio_duration_ms"] = server_ms  # Gradio's `duration`: the handler call only
        say(f"  preview round trip: p50 {percentile(round_trip, 50):.1f} / p95 {percentile(round_trip, 95):.1f} ms")
        out["preview_gradio_client_ms"] = gradio_client_round_trips(server.url, args.client_calls)

        # Log lines of a slow build, timed on arrival.
        run = ui_build(app, workdir / "engines-slow", model="standin/slow-model", check=False)
        exact, bound = line_delays(run)
        out["slow_build"] = {"outcome": run.outcome, "seconds": run.seconds, "lines": len(run.lines)}
        out["ui_line_delay_ms"] = exact
        out["ui_line_delay_upper_bound_ms"] = bound
        say(f"  UI line delay: p95 {percentile(exact, 95):.0f} ms over {len(exact)} stamped lines")
    finally:
        app.close()
        server.stop()
    return out


def gradio_client_round_trips(url: str, count: int) -> list[float]:
    """The same preview call through gradio_client (what a Python API user sees), for comparison."""
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        info = client.view_api(return_format="dict", print_info=False)
        parameters = info["named_endpoints"]["/preview"]["parameters"]
        samples = []
        for values in form_changes(count + 3):
            arguments = [
                values.get(field_name(label_key(p.get("label"))), p.get("parameter_default")) for p in parameters
            ]
            started = time.perf_counter()
            client.predict(*arguments, api_name="/preview")
            samples.append((time.perf_counter() - started) * 1000)
        return samples[3:]
    finally:
        with contextlib.suppress(Exception):
            client.close()


def measure_minimal_round_trip(count: int, state: Path) -> dict[str, list[float]]:
    """The floor: the minimal app's one-textbox endpoint, same protocol."""
    workdir = Path(tempfile.mkdtemp(prefix="sdprep-bench-minimal-rt-", dir=state))
    server = start_server(MINIMAL, workdir, base_env(state))
    client = BrowserClient(server.url)
    try:
        for index in range(5):
            client.call("greet", Name=f"warm {index}")
        round_trip, server_ms = [], []
        for index in range(count):
            started = time.perf_counter()
            _, duration = client.call("greet", Name=f"name {index}")
            round_trip.append((time.perf_counter() - started) * 1000)
            server_ms.append(duration * 1000)
        return {"round_trip_ms": round_trip, "gradio_duration_ms": server_ms}
    finally:
        client.close()
        server.stop()


# --- 3. in this process ----------------------------------------------------------------------------------------
def measure_server(count: int, state: Path) -> dict[str, list[float]]:
    """Server time of the preview event, measured inside a real server: the app's page served from this process
    and driven over HTTP like the separate one, with timers around Gradio's queue push and `process_api`
    (pre-processing of the inputs, the handler, post-processing of the outputs). Then the handler alone."""
    from gradio import queueing
    from gradio.blocks import Blocks

    os.environ["SDPREP_CACHE_DIR"] = str(state / "cache")
    os.environ["SDPREP_LOCK_DIR"] = str(state / "locks")
    import gradio_prepare  # builds the page, as the server does at start

    demo = gradio_prepare.demo
    function = next(fn for fn in demo.fns.values() if fn.api_name == "preview")
    timings: dict[str, list[float]] = {"push": [], "process_api": []}
    real_push, real_process_api = queueing.Queue.push, Blocks.process_api

    async def push(self: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await real_push(self, body, *args, **kwargs)
        finally:
            if body.fn_index == function._id:
                timings["push"].append((time.perf_counter() - started) * 1000)

    async def process_api(self: Any, block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await real_process_api(self, block_fn, *args, **kwargs)
        finally:
            if getattr(block_fn, "api_name", None) == "preview":
                timings["process_api"].append((time.perf_counter() - started) * 1000)

    queueing.Queue.push = push  # type: ignore[method-assign]
    Blocks.process_api = process_api  # type: ignore[method-assign]
    port = free_port()
    try:
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        client = BrowserClient(f"http://127.0.0.1:{port}/")
        for values in form_changes(5):
            client.call("preview", **values)
        timings = {"push": [], "process_api": []}
        for values in form_changes(count):
            client.call("preview", **values)
        client.close()
    finally:
        demo.close()
        queueing.Queue.push = real_push  # type: ignore[method-assign]
        Blocks.process_api = real_process_api  # type: ignore[method-assign]
    server = [a + b for a, b in zip(timings["push"], timings["process_api"], strict=True)]

    components = list(function.inputs)
    by_name = {field_name(label_key(getattr(c, "label", None))): c for c in components}
    handler = []
    for values in form_changes(count + 5):
        form = {component: component.value for component in components}
        for name, value in values.items():
            form[by_name[name]] = value
        started = time.perf_counter()
        function.fn(form)
        handler.append((time.perf_counter() - started) * 1000)
    return {"server_ms": server, "process_api_ms": timings["process_api"], "handler_ms": handler[5:]}


def measure_child_start(rounds: int, state: Path) -> dict[str, list[float]]:
    """A bare child Python (`python -c pass`) and one that imports the stand-in StreamDiffusion, as the worker does."""
    env = base_env(state)
    env["PYTHONPATH"] = str(STANDIN)
    out: dict[str, list[float]] = {"bare_s": [], "import_s": []}
    for _ in range(rounds):
        for key, code in (("bare_s", "pass"), ("import_s", "import streamdiffusion, streamdiffusion.config")):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-u", "-c", code], env=env, check=True)
            out[key].append(time.perf_counter() - started)
    return out


def measure_line_latency(state: Path) -> dict[str, list[float]]:
    """Child print -> runner event (on_event) and -> a JobBoard follower, for protocol lines that carry the
    child's own time.time() ("time" field), in this process with the stand-in's slow mode."""
    from sdprep.jobs import process as child_module
    from sdprep.jobs.board import JobBoard
    from sdprep.jobs.build import BuildEvent, BuildOptions, run_build
    from sdprep.jobs.process import ChildSpec
    from sdprep.params import params_from_values

    runtime = runtime_defaults()
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
    printed: dict[str, float] = {}  # message -> the child's time field
    real_parse = child_module._parse

    def parse(raw: bytes) -> Any:
        line = real_parse(raw)
        if line.event and "time" in line.event and line.event.get("message"):
            printed[str(line.event["message"])] = float(line.event["time"])
        return line

    os.environ.update({"STANDIN_SLOW_SECONDS": "1.0", "STANDIN_SLOW_STEPS": "6"})
    os.environ["SDPREP_CACHE_DIR"] = str(state / "cache")
    os.environ["SDPREP_LOCK_DIR"] = str(state / "locks")
    child_module._parse = parse  # type: ignore[assignment]
    try:
        # (a) run_build's on_event
        on_event: list[float] = []

        def record(event: BuildEvent) -> None:
            if event.message in printed:
                on_event.append((time.time() - printed[event.message]) * 1000)

        params = params_from_values({"model": "standin/slow-a", "engines_dir": str(state / "lat-a")})
        result = run_build(params, runtime, options, record)
        if not result.ok:
            raise RuntimeError(result.reason)
        # (b) a JobBoard follower (the UI's path: job.add -> condition -> follow())
        printed.clear()
        board = JobBoard()
        job = board.submit(
            params_from_values({"model": "standin/slow-b", "engines_dir": str(state / "lat-b")}), runtime, options
        )
        follower: list[float] = []
        seen = 0
        for events, _result in job.follow():
            now = time.time()
            for event in events[seen:]:
                if event.message in printed:
                    follower.append((now - printed[event.message]) * 1000)
            seen = len(events)
        return {"on_event_ms": on_event, "follow_ms": follower}
    finally:
        child_module._parse = real_parse  # type: ignore[assignment]
        for name in ("STANDIN_SLOW_SECONDS", "STANDIN_SLOW_STEPS"):
            os.environ.pop(name, None)


def measure_up_to_date(rounds: int, state: Path) -> dict[str, list[float]]:
    """`build` twice into a fresh engines folder; the second answer, as a process and in-process."""
    from sdprep.jobs.build import BuildOptions, run_build
    from sdprep.jobs.process import ChildSpec
    from sdprep.params import params_from_values

    env = base_env(state)
    engines = state / "cli-engines"
    command = [sys.executable, str(APP), "build", "--engines-dir", str(engines)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if first.returncode != 0:
        raise RuntimeError(first.stderr)
    cli_times = []
    for _ in range(rounds):
        started = time.perf_counter()
        again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        cli_times.append(time.perf_counter() - started)
        if "Already built" not in again.stdout:
            raise RuntimeError(f"expected up to date:\n{again.stdout}\n{again.stderr}")
    os.environ["SDPREP_CACHE_DIR"] = str(state / "cache")
    os.environ["SDPREP_LOCK_DIR"] = str(state / "locks")
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
    params = params_from_values({"engines_dir": str(engines)})
    runtime = runtime_defaults()
    inproc = []
    for _ in range(rounds * 4):
        started = time.perf_counter()
        result = run_build(params, runtime, options)
        inproc.append(time.perf_counter() - started)
        if result.outcome != "up_to_date":
            raise RuntimeError(result.reason)
    bare = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    return {"cli_s": cli_times, "in_process_s": inproc, "python_start_s": bare}


def runtime_defaults() -> Any:
    import ast

    tree = ast.parse(APP.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RUNTIME_DEFAULTS":
            return ast.literal_eval(node.value)  # type: ignore[arg-type]
    raise RuntimeError("no RUNTIME_DEFAULTS in gradio_prepare.py")


# --- the report ------------------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import gradio
    import gradio_client

    return {
        "cpu": cpu,
        "cores": f"{psutil.cpu_count(logical=True)} logical ({psutil.cpu_count(logical=False) or '?'} physical)",
        "ram": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "gradio": gradio.__version__,
        "gradio_client": gradio_client.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def build_metrics(data: dict[str, Any]) -> list[Metric]:
    start, app, child = data["startup"], data["app"], data["child_start"]
    app_s, minimal_s = start["app_s"], start["minimal_s"]
    start_ratio = statistics.median(app_s) / statistics.median(minimal_s)
    rss_ratio = statistics.median(start["app_rss_mb"]) / statistics.median(start["minimal_rss_mb"])
    growth = app["rss_after_builds_mb"] - app["rss_before_builds_mb"]
    child_start = statistics.median(child["import_s"])
    build_goal = child_start + 1.0
    server, handler = data["server"]["server_ms"], data["server"]["handler_ms"]
    round_trip, minimal, via_client = app["preview_round_trip_ms"], data["minimal"], app["preview_gradio_client_ms"]
    latency, ui_exact, ui_bound = data["line_latency"], app["ui_line_delay_ms"], app["ui_line_delay_upper_bound_ms"]
    uptodate = data["up_to_date"]

    def p(samples: list[float], q: float) -> str:
        return f"{percentile(samples, q):.1f}"

    return [
        Metric(
            "Cold start to first HTTP 200: app",
            "≤ 1.15 × minimal",
            "s",
            app_s,
            start_ratio <= 1.15,
            f"ratio of medians **{start_ratio:.2f}×**",
        ),
        Metric("Cold start to first HTTP 200: minimal Gradio Blocks app", "(baseline)", "s", minimal_s, None),
        Metric(
            "RSS after start (process tree): app",
            "≤ 1.15 × minimal",
            "MB",
            start["app_rss_mb"],
            rss_ratio <= 1.15,
            f"ratio of medians **{rss_ratio:.2f}×**",
        ),
        Metric("RSS after start (process tree): minimal app", "(baseline)", "MB", start["minimal_rss_mb"], None),
        Metric(
            "RSS growth of the app over 5 stand-in builds",
            "< 20 MB",
            "MB",
            [growth],
            growth < 20,
            f"{app['rss_before_builds_mb']:.1f} → {app['rss_after_builds_mb']:.1f} MB; after each build: "
            + ", ".join(f"{value:.1f}" for value in app["rss_after_each_build_mb"]),
        ),
        Metric(
            "Form change → derived values + validation + YAML preview: server time (`preview` event)",
            "p95 < 30 ms",
            "ms",
            server,
            percentile(server, 95) < 30,
            f"p50 {p(server, 50)} ms, **p95 {p(server, 95)} ms**: queue push + pre-processing of 35 inputs + "
            "handler + post-processing of 19 outputs, timed inside a server in the bench process",
        ),
        Metric(
            "… round trip the page waits (separate server process, HTTP + server-sent events)",
            "(comparison)",
            "ms",
            round_trip,
            None,
            f"p50 {p(round_trip, 50)} ms, p95 {p(round_trip, 95)} ms",
        ),
        Metric(
            "… the handler alone, in-process (no HTTP, no queue)",
            "(comparison)",
            "ms",
            handler,
            None,
            f"p50 {percentile(handler, 50):.2f} ms, p95 {percentile(handler, 95):.2f} ms",
        ),
        Metric(
            "… the minimal app's one-textbox event, round trip",
            "(Gradio's floor)",
            "ms",
            minimal["round_trip_ms"],
            None,
            f"p50 {p(minimal['round_trip_ms'], 50)} ms, p95 {p(minimal['round_trip_ms'], 95)} ms",
        ),
        Metric(
            "… the `preview` call through gradio_client (Python API users)",
            "(comparison)",
            "ms",
            via_client,
            None,
            f"p50 {p(via_client, 50)} ms, p95 {p(via_client, 95)} ms: gradio_client's own overhead, not the server's",
        ),
        Metric(
            "Zero-work stand-in build through the UI: Build → done (check off)",
            f"≤ child start + 1 s = {build_goal:.2f} s",
            "s",
            app["build_s"],
            statistics.median(app["build_s"]) <= build_goal,
            f"child start = a fresh `python -u -c 'import streamdiffusion'` with the stand-in: median "
            f"{child_start:.2f} s (bare `python -c pass`: {statistics.median(child['bare_s']):.2f} s)",
        ),
        Metric(
            "… the same build followed by its load-and-run check (the page's default)",
            f"≤ {build_goal:.2f} s",
            "s",
            app["build_and_check_s"],
            statistics.median(app["build_and_check_s"]) <= build_goal,
            "until the check's result: two child processes, the build, then the check that loads the engines and "
            "times frames (the build's own result shows as soon as it is proven, before the check ends)",
        ),
        Metric(
            "Line printed by the child → received by the page (`build` stream)",
            "p95 < 500 ms",
            "ms",
            ui_exact,
            percentile(ui_exact, 95) < 500 if ui_exact else None,
            f"**p95 {p(ui_exact, 95)} ms** over {len(ui_exact)} lines that carry the child's own log time stamp "
            f"(ms); upper bound over all {len(ui_bound)} lines: p95 {p(ui_bound, 95)} ms",
        ),
        Metric(
            "… child line → runner event (`run_build` on_event), in-process",
            "p95 < 500 ms",
            "ms",
            latency["on_event_ms"],
            percentile(latency["on_event_ms"], 95) < 500,
            f"p95 {p(latency['on_event_ms'], 95)} ms over {len(latency['on_event_ms'])} protocol lines "
            "(the child's time.time() in the line → arrival)",
        ),
        Metric(
            "… child line → JobBoard `follow()` consumer, in-process",
            "p95 < 500 ms",
            "ms",
            latency["follow_ms"],
            percentile(latency["follow_ms"], 95) < 500,
            f"p95 {p(latency['follow_ms'], 95)} ms over {len(latency['follow_ms'])} lines",
        ),
        Metric(
            '"Up to date" answer through the UI (`build` round trip, check off)',
            "< 200 ms",
            "ms",
            [value * 1000 for value in app["ui_up_to_date_s"]],
            statistics.median(app["ui_up_to_date_s"]) < 0.2,
        ),
        Metric(
            "… the same with the check on (the page's default)",
            "< 200 ms",
            "ms",
            [value * 1000 for value in app["ui_up_to_date_and_check_s"]],
            statistics.median(app["ui_up_to_date_and_check_s"]) < 0.2,
            "an up-to-date build reuses the check that passed on these unchanged engines instead of loading them again",
        ),
        Metric(
            '"Up to date" answer in-process (`run_build`)',
            "< 200 ms",
            "ms",
            [value * 1000 for value in uptodate["in_process_s"]],
            statistics.median(uptodate["in_process_s"]) < 0.2,
        ),
        Metric(
            '"Up to date" answer of the CLI (`build` again, whole process)',
            "< 200 ms",
            "ms",
            [value * 1000 for value in uptodate["cli_s"]],
            statistics.median(uptodate["cli_s"]) < 0.2,
            "includes Python's own start (`python -c pass`): "
            f"{statistics.median(uptodate['python_start_s']) * 1000:.0f} ms",
        ),
    ]


def render(data: dict[str, Any], metrics: list[Metric]) -> str:
    info = data["machine"]
    load = data.get("load", {})
    lines = [
        "# Performance",
        "",
        f"Measured by `python bench/run.py{' --quick' if data['quick'] else ''}` on {info['date']} "
        f"in {data['seconds']:.0f} s. Every figure below comes from that one run; run the same command to "
        "measure your machine (it rewrites this file and keeps the raw samples in `bench/results/`).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']} |",
        f"| RAM | {info['ram']} |",
        f"| OS | {info['os']} |",
        f"| Python | {info['python']} |",
        f"| Gradio | {info['gradio']} (gradio_client {info['gradio_client']}) |",
        f"| load average (1 min) before / after | {load.get('before', '?')} / {load.get('after', '?')} |",
        "| builds | the stand-in StreamDiffusion of `tests/standin` (no GPU here) |",
        "",
        "| metric | goal | median | spread | verdict | notes |",
        "|---|---|---:|---|---|---|",
    ]
    for metric in metrics:
        verdict = "–" if metric.passed is None else ("met" if metric.passed else "**missed**")
        lines.append(
            f"| {metric.name} | {metric.goal} | {fmt(metric.median(), metric.unit)} | {metric.spread()} | {verdict} "
            f"| {metric.note} |"
        )
    app = data["app"]
    lines += [
        "",
        f"Samples: {data['rounds']} start-ups of each app (alternating), {len(app['preview_round_trip_ms'])} form "
        f"changes, 5 zero-work builds with the check and 5 without (after 1 warm-up build, not counted), "
        f"{len(app['ui_up_to_date_s'])} + {len(app['ui_up_to_date_and_check_s'])} UI and "
        f"{len(data['up_to_date']['cli_s'])} CLI up-to-date answers. Spread is min–max for fewer than 20 samples, "
        "p5–p95 otherwise.",
        "",
        "## How each figure is measured",
        "",
        "- **Cold start**: `Popen` of `python gradio_prepare.py --host 127.0.0.1 --port <free>` (or "
        "`bench/minimal_app.py`, one textbox, one button, one Markdown) until `GET /` first answers 200, polled "
        "every 10 ms. The file cache is warm (the same machine, right after), so this is a fresh process, not a "
        "fresh boot. The two apps alternate so drift affects both. Both get `GRADIO_ANALYTICS_ENABLED=False`.",
        "- **RSS**: the resident set of the server process and its children (psutil), one second after the first 200.",
        "- **RSS growth**: one app session: after the page-load preview call, and again after 5 zero-work builds, "
        "each followed by its load-and-run check as the page does by default (a warm-up build, which runs the "
        "session's one environment probe, comes before the first reading).",
        "- **Form change**: the page's `preview` event (fired by every form change) with a different form state "
        "each call, sent the way the browser's client sends it (one session; `POST /gradio_api/queue/join`, then "
        "the session's server-sent events). *Server time* is measured inside a server: the same page served from "
        "the bench process, driven the same way over HTTP, with timers around Gradio's queue push and "
        "`process_api` (Gradio hands each of the 35 inputs and 19 outputs to a worker thread, which is most of "
        "it). The round trip is what the page waits, against the separate server process. The handler alone is "
        "timed on the same form states; the minimal app's trivial event shows Gradio's own floor; gradio_client "
        "adds its own client-side overhead (threads, polling), shown for Python API users.",
        "- **Zero-work build**: the `build` event with the default parameters and the check off, into a fresh "
        "engines folder (the stand-in writes three tiny engine files), from sending the request to the streamed "
        "update that shows the result; the next row is the same with the page's default check after it, until the "
        "update that shows the check's result. "
        "*Child start* is a fresh Python importing the stand-in `streamdiffusion`, which is what the build child "
        "does before any work.",
        "- **Line latency**: a `standin/slow-*` build prints progress for ~3 s. The log lines the child writes "
        "through Python's logging carry its own clock (`2026-… 14:08:54,953 INFO …`, ms); the delay is their "
        "arrival at the page minus that stamp. Lines without a stamp are bounded from above by the request's "
        "send time plus the elapsed time the UI shows (0.1 s resolution, so +0.05 s). In-process, protocol lines "
        "carry the child's `time.time()`; the delay is measured to `run_build`'s `on_event` and to a consumer "
        "of `JobBoard` `follow()` (what the UI's stream iterates).",
        '- **"Up to date"**: the same parameters built again into the same folder: through the UI (`build` '
        "event round trip; check off, then on), `run_build` in-process (the probe answered from its cache, "
        "manifest and engine files verified, configs rewritten), and the CLI `gradio_prepare.py build` as a whole "
        "process (interpreter start and imports included).",
        "",
    ]
    notes = data.get("notes") or []
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the app and write docs/performance.md.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under ~3 minutes)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--note", action="append", default=[], help="a line for the Notes section (repeatable)")
    parser.add_argument("--from-json", metavar="PATH", help="only render the page from a run's raw results")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        data["notes"] = data.get("notes", []) + args.note
        Path(args.out).write_text(render(data, build_metrics(data)), encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    args.rounds = 2 if args.quick else 5
    args.previews = 60 if args.quick else 200
    args.client_calls = 10 if args.quick else 30
    args.uptodate_rounds = 3 if args.quick else 5
    # No telemetry from gradio_client or an in-process server (only loopback traffic here).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    def say(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    state = Path(tempfile.mkdtemp(prefix="sdprep-bench-"))
    try:
        data: dict[str, Any] = {"quick": args.quick, "rounds": args.rounds, "machine": machine(), "notes": args.note}
        data["load"] = {"before": f"{os.getloadavg()[0]:.2f}"}
        say(f"start-up: {args.rounds} rounds of each app")
        data["startup"] = measure_startup(args.rounds, state, say)
        say("the app, as a browser drives it")
        data["app"] = measure_app(args, state, say)
        say("the minimal app's round trip")
        data["minimal"] = measure_minimal_round_trip(args.previews, state)
        say("in-process: the preview event's server time and handler")
        data["server"] = measure_server(args.previews, state)
        say("in-process: child start, line latency, up to date")
        data["child_start"] = measure_child_start(args.rounds * 2, state)
        data["line_latency"] = measure_line_latency(state)
        data["up_to_date"] = measure_up_to_date(args.uptodate_rounds, state)
        data["load"]["after"] = f"{os.getloadavg()[0]:.2f}"
        data["seconds"] = time.perf_counter() - started
        metrics = build_metrics(data)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(data, metrics), encoding="utf-8")
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        raw = results / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
        raw.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        say("")
        for metric in metrics:
            verdict = "-" if metric.passed is None else ("met" if metric.passed else "MISSED")
            say(f"{verdict:7} {metric.name}: median {fmt(metric.median(), metric.unit)} ({metric.goal}) {metric.note}")
        say(f"\nwrote {out} and {raw} in {data['seconds']:.0f} s")
        return 0
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
