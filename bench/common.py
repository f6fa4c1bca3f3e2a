"""What every measurement shares: statistics, the environment a measured process gets, memory of a process tree,
the app started for a measurement, and the form states a person clicks through."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from testkit.app import RunningApp, running_app, runtime_defaults
from testkit.paths import ROOT, STANDIN

APP = ROOT / "gradio_prepare.py"
MINIMAL = ROOT / "bench" / "minimal_app.py"
MB = 1024 * 1024
STANDIN_DRIVER = "570.86.10"  # the driver version the tests' stand-in machine reports (tests/conftest.py)

__all__ = ["APP", "MB", "MINIMAL", "ROOT", "STANDIN", "runtime_defaults"]


# --- statistics ------------------------------------------------------------------------------------------------
def percentile(samples: list[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between closest ranks (statistics.quantiles, inclusive)."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return float(samples[0])
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "–"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.3g} {unit}"


@dataclass
class Metric:
    name: str
    goal: str
    unit: str
    samples: list[float]
    passed: bool | None  # None: no goal (for comparison only)
    note: str = ""

    def median(self) -> float:
        return median(self.samples)

    def spread(self) -> str:
        if not self.samples:
            return "–"
        if len(self.samples) >= 20:
            low, high = percentile(self.samples, 5), percentile(self.samples, 95)
            return f"p5–p95 {fmt(low, self.unit)} – {fmt(high, self.unit)}"
        return f"min–max {fmt(min(self.samples), self.unit)} – {fmt(max(self.samples), self.unit)}"


# --- processes -------------------------------------------------------------------------------------------------
def child_env(state: Path) -> dict[str, str]:
    """The environment of a CLI or child Python the bench starts: the stand-in, this run's locks and cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STANDIN_")}
    env.update(
        {
            "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN),
            "SDPREP_CACHE_DIR": str(state / "cache"),
            "SDPREP_LOCK_DIR": str(state / "locks"),
            "SDPREP_ALLOW_LOW_DISK": "1",
            # The builds measured are builds alone; the rehearsal is measured by itself (rehearsal.py).
            "SDPREP_REHEARSE": "0",
            "GRADIO_ANALYTICS_ENABLED": "False",  # no telemetry requests from any app
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # The stand-ins play a machine with an NVIDIA driver, as in the tests (without one, `doctor` stops first).
            "UV_CUDA_DRIVER_VERSION": STANDIN_DRIVER,
        }
    )
    return env


def use_state_here(state: Path) -> None:
    """This process's own builds and servers use this run's locks and cache, like the processes it starts."""
    os.environ.update(
        {
            "SDPREP_CACHE_DIR": str(state / "cache"),
            "SDPREP_LOCK_DIR": str(state / "locks"),
            "SDPREP_ALLOW_LOW_DISK": "1",
            "SDPREP_REHEARSE": "0",
        }
    )


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


@contextlib.contextmanager
def app_server(
    state: Path, name: str, env: dict[str, str] | None = None, script: Path | None = None, poll: float = 0.25
) -> Iterator[RunningApp]:
    """The app (or `script`, e.g. the minimal app) started as the UI tests start it, in a fresh folder of `state`."""
    workdir = Path(tempfile.mkdtemp(prefix=f"sdprep-bench-{name}-", dir=state))
    command = [sys.executable, str(script)] if script else None
    extra = {"SDPREP_ALLOW_LOW_DISK": "1", "HF_HUB_DISABLE_TELEMETRY": "1", **(env or {})}
    with running_app(workdir, extra, command=command, poll=poll) as app:
        yield app


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


@contextlib.contextmanager
def preview_server_times(demo: Any) -> Iterator[dict[str, list[float]]]:
    """Timers around Gradio's own steps for the page's `preview` event, in this process: the queue's `push` (its
    arrival) and `process_api` (the handler with Gradio's pre- and post-processing), in ms each; restored after."""
    from gradio import queueing
    from gradio.blocks import Blocks

    preview = next(fn for fn in demo.fns.values() if fn.api_name == "preview")
    timings: dict[str, list[float]] = {"push": [], "process_api": []}
    real_push, real_process_api = queueing.Queue.push, Blocks.process_api

    async def push(self: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await real_push(self, body, *args, **kwargs)
        finally:
            if body.fn_index == preview._id:
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
    try:
        yield timings
    finally:
        queueing.Queue.push = real_push  # type: ignore[method-assign]
        Blocks.process_api = real_process_api  # type: ignore[method-assign]
