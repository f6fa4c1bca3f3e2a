"""How long a line the build child prints takes to reach the page, and, in this process, `run_build`'s on_event
and a JobBoard follower.

A `standin/slow-*` build prints progress for a few seconds. The log lines the child writes through Python's logging
carry its own clock (ms); on the page, the delay is their arrival minus that stamp, and lines without a stamp are
bounded from above by the request's send time plus the elapsed time the page shows. In this process, protocol lines
carry the child's time.time(); they are matched to the events they become (a stage by its id, an engine written by
its file).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from bench.builds import BuildRun, ui_build
from bench.common import STANDIN, runtime_defaults, use_state_here
from testkit.page_client import PageClient

SLOW_ENV = {"STANDIN_SLOW_SECONDS": "1.0", "STANDIN_SLOW_STEPS": "6"}  # read by `standin/slow-*` models only
_LOG_ELAPSED = re.compile(r"^\[\s*([0-9.]+)s\]")
_CHILD_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) [A-Z]+ ")


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


def measure_ui(page: PageClient) -> dict[str, Any]:
    """A slow build through the page (its server started with SLOW_ENV), each log line timed on arrival."""
    run = ui_build(page, model="standin/slow-model", check=False)
    exact, bound = line_delays(run)
    return {
        "slow_build": {"outcome": run.outcome, "seconds": run.seconds, "lines": len(run.lines)},
        "ui_line_delay_ms": exact,
        "ui_line_delay_upper_bound_ms": bound,
    }


def _key_of_line(event: dict[str, Any]) -> tuple[str, str] | None:
    if event.get("event") == "stage":
        return ("stage", str(event.get("stage")))
    if event.get("event") == "engine_written":
        return ("engine_written", str(event.get("file")))
    return None


def _key_of_event(event: Any) -> tuple[str, str] | None:
    if event.kind == "stage" and event.stage:
        return ("stage", event.stage)
    if event.message.code == "engine_written":
        return ("engine_written", str(event.message.params.get("file")))
    return None


def measure_in_process(state: Path) -> dict[str, list[float]]:
    """Child line -> runner event (on_event) and -> a JobBoard follower, with the stand-in's slow mode."""
    from sdprep.jobs import process as child_module
    from sdprep.jobs.board import JobBoard
    from sdprep.jobs.build import BuildOptions, run_build
    from sdprep.jobs.process import ChildSpec
    from sdprep.jobs.progress import JobEvent
    from sdprep.params import params_from_values

    runtime = runtime_defaults()
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
    printed: dict[tuple[str, str], float] = {}  # what the child said -> its time field
    real_parse = child_module._parse

    def parse(raw: bytes) -> Any:
        line = real_parse(raw)
        event = line.event
        key = _key_of_line(event) if event else None
        if key and event and "time" in event:
            printed[key] = float(event["time"])
        return line

    use_state_here(state)
    os.environ.update(SLOW_ENV)
    child_module._parse = parse  # a timer on the parent's reading of each line
    try:
        on_event: list[float] = []

        def record(event: JobEvent) -> None:
            key = _key_of_event(event)
            if key in printed:
                on_event.append((time.time() - printed[key]) * 1000)

        params = params_from_values({"model": "standin/slow-a", "engines_dir": str(state / "lat-a")})
        result = run_build(params, runtime, options, record)
        if not result.ok:
            raise RuntimeError(f"in-process slow build: {result.outcome}")
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
                key = _key_of_event(event)
                if key in printed:
                    follower.append((now - printed[key]) * 1000)
            seen = len(events)
        return {"on_event_ms": on_event, "follow_ms": follower}
    finally:
        child_module._parse = real_parse
        for name in SLOW_ENV:
            os.environ.pop(name, None)
