"""Zero-work builds with the stand-in StreamDiffusion through the page: Build → the streamed update that shows the
result (check off), and → the update that shows the check's result (the page's default), the server's memory over
them, and what a build child costs to start (a fresh Python importing the stand-in)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from bench.common import MB, STANDIN, child_env, rss_tree
from testkit.page_client import PageClient

_OUTCOMES = {"✔ Built": "built", "✔ Up to date": "up_to_date", "✘ Build failed": "failed", "■ Cancelled": "cancelled"}
_models = count()


def fresh_model() -> str:
    """A model id no build of this server has seen: its build is a real (zero-work) build, not "up to date"."""
    return f"bench/sd-turbo-{next(_models)}"


@dataclass
class BuildRun:
    seconds: float  # request sent -> the update that carries the build's result
    outcome: str
    check_seconds: float | None = None  # request sent -> the update that carries the check's result
    lines: list[tuple[float, str]] = field(default_factory=list)  # (arrival wall time, log line), first arrival
    sent_wall: float = 0.0


def ui_build(page: PageClient, **values: Any) -> BuildRun:
    seen: set[str] = set()
    lines: list[tuple[float, str]] = []
    sent_wall = time.time()
    started = time.perf_counter()
    outcome, finished, checked = "unknown", 0.0, None
    for arrival, outputs, _ in page.stream("build", **values):
        if outputs.get("check-result") and checked is None:
            checked = time.perf_counter() - started
        for line in str(outputs.get("build-log") or "").splitlines():
            if line not in seen:
                seen.add(line)
                lines.append((arrival, line))
        result = str(outputs.get("build-result") or "")
        for label, name in _OUTCOMES.items():
            if label in result and not finished:
                outcome, finished = name, time.perf_counter()
    return BuildRun((finished or time.perf_counter()) - started, outcome, checked, lines, sent_wall)


def measure(page: PageClient, pid: int, say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    page.call("preview_after_page_load")  # what opening the page does
    time.sleep(1.0)
    rss_before = rss_tree(pid) / MB
    warm = ui_build(page, model=fresh_model())  # the first probe of this server (cached after)
    say(f"  warm-up build + check: {warm.outcome} in {warm.seconds:.2f} s (not counted)")
    with_check, rss_after_each = [], []
    for index in range(5):
        run = ui_build(page, model=fresh_model())
        if run.outcome != "built" or run.check_seconds is None:
            raise RuntimeError(f"zero-work build {index} ended {run.outcome}, check after {run.check_seconds}")
        with_check.append(run.check_seconds)
        rss_after_each.append(rss_tree(pid) / MB)
        say(f"  zero-work build + check {index + 1}/5: {run.check_seconds:.2f} s")
    time.sleep(1.0)
    out["build_and_check_s"] = with_check
    out["rss_before_builds_mb"] = rss_before
    out["rss_after_builds_mb"] = rss_tree(pid) / MB
    out["rss_after_each_build_mb"] = rss_after_each
    builds, last = [], ""
    for index in range(5):
        last = fresh_model()
        run = ui_build(page, model=last, check=False)
        if run.outcome != "built":
            raise RuntimeError(f"zero-work build {index} ended {run.outcome}")
        builds.append(run.seconds)
    out["build_s"] = builds
    out["last_model"] = last
    say(f"  zero-work build alone: median {statistics.median(builds):.2f} s")
    return out


def child_start(rounds: int, state: Path) -> dict[str, list[float]]:
    """A bare child Python (`python -c pass`) and one that imports the stand-in StreamDiffusion, as the build
    child does before any work."""
    env = child_env(state)
    env["PYTHONPATH"] = str(STANDIN)
    out: dict[str, list[float]] = {"bare_s": [], "import_s": []}
    for _ in range(rounds):
        for key, code in (("bare_s", "pass"), ("import_s", "import streamdiffusion, streamdiffusion.config")):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-u", "-c", code], env=env, check=True)
            out[key].append(time.perf_counter() - started)
    return out
