"""The raw figures of one run -> metrics with goals and verdicts -> docs/performance.md."""

from __future__ import annotations

import contextlib
import platform
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import Metric, fmt, median, percentile


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


def p(samples: list[float], q: int) -> str:
    return f"{percentile(samples, q):.1f}"


def metrics(data: dict[str, Any]) -> list[Metric]:
    return [
        *_startup(data),
        *_form_change(data),
        *_builds(data),
        *_streaming(data),
        *_up_to_date(data),
        *_rehearsal(data),
        *_timing_cache(data),
        *_waiting(data),
        *_records(data),
        *_reprobes(data),
        *_first_start(data),
    ]


def _rehearsal(data: dict[str, Any]) -> list[Metric]:
    found = data.get("rehearsal")
    if not found:
        return []
    return [
        Metric(
            "Rehearsal on the stand-ins, anew: tiny model, export, builder, load, one frame",
            "seconds, not minutes (≤ 5 s here)",
            "s",
            found["anew_s"],
            median(found["anew_s"]) <= 5.0,
            f"the child itself: median {median(found['child_s']):.2f} s; the rest is its Python's start. A real GPU "
            "adds TensorRT's builder for each tiny engine, which no machine here can run",
        ),
        Metric(
            "… a remembered pass (the same parameters in the same build environment)",
            "< 0.1 s",
            "s",
            found["remembered_s"],
            median(found["remembered_s"]) < 0.1,
            "a second Build does not rehearse again",
        ),
        Metric(
            "… `doctor --rehearse` as a whole process (self-test included)",
            "(comparison)",
            "s",
            found["doctor_cli_s"],
            None,
        ),
    ]


def _timing_cache(data: dict[str, Any]) -> list[Metric]:
    found = data.get("timing_cache")
    if not found:
        return []
    if "skipped" in found:
        name = "A real build cold, then warm from the shared timing cache"
        return [Metric(name, "(measured on a GPU with TensorRT)", "s", [], None, f"skipped: {found['skipped']}")]
    cold, warm = median(found["cold_s"]), median(found["warm_s"])
    where = f"{found['gpu']}, TensorRT {found['tensorrt']}"
    return [
        Metric(
            "A real build (sd-turbo, the defaults) warm from the shared timing cache",
            "faster than cold",
            "s",
            found["warm_s"],
            warm < cold,
            f"{where}: {cold / warm:.2f}× faster than cold; the cache: {found['cache_bytes'] / 1024**2:.1f} MiB",
        ),
        Metric("… the same build cold (no timing cache)", "(baseline)", "s", found["cold_s"], None, where),
    ]


def _first_start(data: dict[str, Any]) -> list[Metric]:
    first = data.get("first_start")
    if not first:
        return []
    ratio = first["pip_s"] / first["uv_s"]
    # Carried from an earlier run (this one had no PyPI to download from): said where the figures come from.
    earlier = f"; from the run of {first['from_run']}, not measured again" if first.get("from_run") else ""
    return [
        Metric(
            "Fresh clone → first HTTP 200 with `run.sh` (uv), empty caches",
            "faster than pip",
            "s",
            [first["uv_s"]],
            first["uv_s"] < first["pip_s"],
            f"pip takes **{ratio:.1f}×** as long{earlier}",
        ),
        Metric("… the same with pip (what run.sh did before uv)", "(baseline)", "s", [first["pip_s"]], None),
    ]


def _startup(data: dict[str, Any]) -> list[Metric]:
    start = data["startup"]
    app_s, minimal_s = start["app_s"], start["minimal_s"]
    start_ratio = median(app_s) / median(minimal_s)
    rss_ratio = median(start["app_rss_mb"]) / median(start["minimal_rss_mb"])
    app = data["app"]
    growth = app["rss_after_builds_mb"] - app["rss_before_builds_mb"]
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
    ]


def _form_change(data: dict[str, Any]) -> list[Metric]:
    app, server = data["app"], data["server"]
    handler, server_ms = server["handler_ms"], server["server_ms"]
    round_trip, minimal, via_client = app["preview_round_trip_ms"], data["minimal"], app["preview_gradio_client_ms"]
    return [
        Metric(
            "Form change → derived values + validation + YAML preview: server time (`preview` event)",
            "p95 < 30 ms",
            "ms",
            server_ms,
            percentile(server_ms, 95) < 30,
            f"p50 {p(server_ms, 50)} ms, **p95 {p(server_ms, 95)} ms**: queue push + pre-processing of "
            f"{server['inputs']} inputs + handler + post-processing of {server['outputs']} outputs, timed inside a "
            "server in the bench process",
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
    ]


def _builds(data: dict[str, Any]) -> list[Metric]:
    app, child = data["app"], data["child_start"]
    child_start = median(child["import_s"])
    goal = child_start + 1.0
    return [
        Metric(
            "Zero-work stand-in build through the UI: Build → done (check off)",
            f"≤ child start + 1 s = {goal:.2f} s",
            "s",
            app["build_s"],
            median(app["build_s"]) <= goal,
            f"child start = a fresh `python -u -c 'import streamdiffusion'` with the stand-in: median "
            f"{child_start:.2f} s (bare `python -c pass`: {median(child['bare_s']):.2f} s)",
        ),
        Metric(
            "… the same build followed by its load-and-run check (the page's default)",
            f"≤ {goal:.2f} s",
            "s",
            app["build_and_check_s"],
            median(app["build_and_check_s"]) <= goal,
            "until the check's result: two child processes, the build, then the check that loads the engines and "
            "times frames (the build's own result shows as soon as it is proven, before the check ends)",
        ),
    ]


def _streaming(data: dict[str, Any]) -> list[Metric]:
    app, latency = data["app"], data["line_latency"]
    exact, bound = app["ui_line_delay_ms"], app["ui_line_delay_upper_bound_ms"]
    return [
        Metric(
            "Line printed by the child → received by the page (`build` stream)",
            "p95 < 500 ms",
            "ms",
            exact,
            percentile(exact, 95) < 500 if exact else None,
            f"**p95 {p(exact, 95)} ms** over {len(exact)} lines that carry the child's own log time stamp (ms); "
            f"upper bound over all {len(bound)} lines: p95 {p(bound, 95)} ms",
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
    ]


UP_TO_DATE_GOAL_S = 0.2


def _answer(name: str, seconds: list[float], note: str = "") -> Metric:
    """An "up to date" answer: its samples in ms, met when the median is under the goal."""
    goal = f"< {UP_TO_DATE_GOAL_S * 1000:.0f} ms"
    return Metric(name, goal, "ms", [value * 1000 for value in seconds], median(seconds) < UP_TO_DATE_GOAL_S, note)


def _up_to_date(data: dict[str, Any]) -> list[Metric]:
    app, uptodate = data["app"], data["up_to_date"]
    python_start_ms = median(uptodate["python_start_s"]) * 1000
    return [
        _answer('"Up to date" answer through the UI (`build` round trip, check off)', app["ui_up_to_date_s"]),
        _answer(
            "… the same with the check on (the page's default)",
            app["ui_up_to_date_and_check_s"],
            "an up-to-date build reuses the check that passed on these unchanged engines instead of loading them again",
        ),
        _answer('"Up to date" answer in-process (`run_build`)', uptodate["in_process_s"]),
        _answer(
            '"Up to date" answer of the CLI (`build` again, whole process)',
            uptodate["cli_s"],
            f"includes Python's own start (`python -c pass`): {python_start_ms:.0f} ms",
        ),
    ]


def _waiting(data: dict[str, Any]) -> list[Metric]:
    waiting = data.get("waiting_builds")
    if not waiting:
        return []
    count, round_trip = waiting["waiting"], waiting["preview_round_trip_ms"]
    cancels = waiting["cancel_waiting_ms"]
    idle = data["app"]["preview_round_trip_ms"]
    return [
        Metric(
            f"Form change with {count} builds waiting: round trip (`preview`)",
            "p95 < 100 ms",
            "ms",
            round_trip,
            percentile(round_trip, 95) < 100,
            f"p50 {p(round_trip, 50)} ms, **p95 {p(round_trip, 95)} ms** (no build waiting: p95 {p(idle, 95)} ms); "
            f"{count} builds from {waiting['pages']} pages behind a hung one, every page following its build; "
            f"a page's third build refused in {waiting['surplus_refused_ms']:.0f} ms: "
            f"“{waiting['surplus_message']}”",
        ),
        Metric(
            f"Cancel of a waiting build with {count} builds waiting: Cancel → the answer that shows it cancelled",
            "< 1 s",
            "ms",
            cancels,
            max(cancels) < 1000,
            f"{len(cancels)} pages one after another, max {fmt(max(cancels), 'ms')}",
        ),
        Metric(
            "… Cancel of the running (hung) build, then",
            "< 5 s",
            "ms",
            [waiting["cancel_running_ms"]],
            waiting["cancel_running_ms"] < 5000,
            "the child and everything it started are stopped before the answer",
        ),
    ]


def _records(data: dict[str, Any]) -> list[Metric]:
    records = data.get("records")
    if not records:
        return []
    local, hub = records["local_form_change_server_ms"], records["hub_form_change_server_ms"]
    listed, loaded = records["list_ms"], records["load_ms"]
    where = f"{records['builds']} builds in {records['models']} models"
    return [
        Metric(
            f"Form change of a local model with {records['local_builds']} recorded builds: server time (`preview`)",
            "p95 < 30 ms",
            "ms",
            local,
            percentile(local, 95) < 30,
            f"p50 {p(local, 50)} ms, **p95 {p(local, 95)} ms**; its build.json {records['local_manifest_kb']:.0f} KB, "
            f"the engines folder {where}; a hub model alternating with it: p95 {p(hub, 95)} ms"
            + (
                f"; load average (1 min) {records['load_1min'][0]:.2f} → {records['load_1min'][1]:.2f}"
                if "load_1min" in records
                else ""
            ),
        ),
        Metric(
            f"Engines library list with {where}: round trip (`library_list`)",
            "p95 < 200 ms",
            "ms",
            listed,
            percentile(listed, 95) < 200,
            f"p50 {p(listed, 50)} ms, **p95 {p(listed, 95)} ms** (Gradio's duration of the handler: p95 "
            f"{p(records['list_handler_ms'], 95)} ms); every recorded engine checked, the HTML of all builds",
        ),
        Metric(
            f"Engines library load of a build into the form with {where}: round trip (`library_load`)",
            "p95 < 200 ms",
            "ms",
            loaded,
            percentile(loaded, 95) < 200,
            f"p50 {p(loaded, 50)} ms, **p95 {p(loaded, 95)} ms** (handler p95 {p(records['load_handler_ms'], 95)} ms)",
        ),
    ]


def _reprobes(data: dict[str, Any]) -> list[Metric]:
    reprobes = data.get("reprobes")
    if not reprobes:
        return []
    panel = reprobes["panel_s"]
    return [
        Metric(
            f"A new page's environment panel with {reprobes['clicks']} “Probe again” clicks queued",
            "< 1 s",
            "s",
            panel,
            max(panel) < 1.0,
            f"{len(panel)} new pages, max {fmt(max(panel), 's')}; all {reprobes['clicks']} clicks answered in "
            f"{fmt(reprobes['all_clicks_s'], 's')} (one probe: {fmt(reprobes['probe_s'], 's')})",
        )
    ]


def render(data: dict[str, Any], rows: list[Metric]) -> str:
    info = data["machine"]
    load = data.get("load", {})
    lines = [
        "# Performance",
        "",
        f"Measured by `python bench/run.py{' --quick' if data['quick'] else ''}` on {info['date']} "
        f"in {data['seconds']:.0f} s. Every figure below comes from that one run"
        + (
            f" except the first start's (the run of {data['first_start']['from_run']}: it downloads from PyPI)"
            if (data.get("first_start") or {}).get("from_run")
            else ""
        )
        + "; run the same command to measure your machine (it rewrites this file and keeps the raw samples in "
        "`bench/results/`).",
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
    for metric in rows:
        verdict = "–" if metric.passed is None else ("met" if metric.passed else "**missed**")
        lines.append(
            f"| {metric.name} | {metric.goal} | {fmt(metric.median(), metric.unit)} | {metric.spread()} | {verdict} "
            f"| {metric.note} |"
        )
    app, server = data["app"], data["server"]
    waiting = data.get("waiting_builds") or {}
    lines += [
        "",
        f"Samples: {data['rounds']} start-ups of each app (alternating), {len(app['preview_round_trip_ms'])} form "
        f"changes, 5 zero-work builds with the check and 5 without (after 1 warm-up build, not counted), "
        f"{len(app['ui_up_to_date_s'])} + {len(app['ui_up_to_date_and_check_s'])} UI and "
        f"{len(data['up_to_date']['cli_s'])} CLI up-to-date answers"
        + (
            f", {len(waiting['preview_round_trip_ms'])} form changes and {len(waiting['cancel_waiting_ms'])} "
            f"Cancels with {waiting['waiting']} builds waiting"
            if waiting
            else ""
        )
        + ". Spread is min–max for fewer than 20 samples, p5–p95 otherwise (statistics.quantiles, inclusive).",
        "",
        "## How each figure is measured",
        "",
        "Each module of `bench/` measures one thing; apps are started and endpoints named as the UI tests do "
        "(`tests/ui_helpers.py`), and the page's own protocol is spoken by `tests/page_client.py`.",
        "",
        "- **Cold start** (`bench/startup.py`): `Popen` of `python gradio_prepare.py --host 127.0.0.1 --port <free> "
        "--engines-dir …` (or `bench/minimal_app.py`, one textbox, one button, one Markdown) until `GET /` first "
        "answers 200, polled every 10 ms. The file cache is warm (the same machine, right after), so this is a fresh "
        "process, not a fresh boot. The two apps alternate so drift affects both. Both get "
        "`GRADIO_ANALYTICS_ENABLED=False`.",
        "- **RSS**: the resident set of the server process and its children (psutil), one second after the first 200.",
        "- **RSS growth** (`bench/builds.py`): one app session: after the page-load preview call, and again after 5 "
        "zero-work builds, each followed by its load-and-run check as the page does by default (a warm-up build, "
        "which runs the session's one environment probe, comes before the first reading).",
        "- **Form change** (`bench/form_change.py`): the page's `preview` event (fired by every form change) with a "
        "different form state each call, sent the way the browser's client sends it (one session; `POST "
        "/gradio_api/queue/join`, then the session's server-sent events). *Server time* is measured inside a "
        "server: the same page served from the bench process (its heap then kept out of the collector's full "
        "passes, as the app does once it serves), driven the same way over HTTP, with timers around "
        f"Gradio's queue push and `process_api` (Gradio hands each of the {server['inputs']} inputs and "
        f"{server['outputs']} outputs to a worker thread, which is most of it). The round trip is what the page "
        "waits, against the separate server process. The handler alone is timed on the same form states; the "
        "minimal app's trivial event shows Gradio's own floor; gradio_client adds its own client-side overhead "
        "(threads, polling), shown for Python API users.",
        "- **Zero-work build** (`bench/builds.py`): the `build` event with the default parameters and the check off, "
        "for a model the server has not built yet (`bench/sd-turbo-<n>`: the engines folder is the server's, so each "
        "build gets a new model folder instead of a new engines folder; the stand-in writes three tiny engine "
        "files), from sending the request to the streamed update that shows the result; the next row is the same "
        "with the page's default check after it, until the update that shows the check's result. *Child start* is "
        "a fresh Python importing the stand-in `streamdiffusion`, which is what the build child does before any work.",
        "- **Line latency** (`bench/streaming.py`): a `standin/slow-*` build prints progress for ~3 s. The log lines "
        "the child writes through Python's logging carry its own clock (`2026-… 14:08:54,953 INFO …`, ms); the "
        "delay is their arrival at the page minus that stamp. Lines without a stamp are bounded from above by the "
        "request's send time plus the elapsed time the UI shows (0.1 s resolution, so +0.05 s). In-process, "
        "protocol lines carry the child's `time.time()`; each is matched to the event it becomes (a stage by its "
        "id, an engine written by its file), at `run_build`'s `on_event` and at a consumer of `JobBoard` "
        "`follow()` (what the UI's stream iterates).",
        '- **"Up to date"** (`bench/up_to_date.py`): the same parameters built again: through the UI (`build` '
        "event round trip; check off, then on), `run_build` in-process (the probe answered from its cache, "
        "manifest and engine files verified, configs rewritten), and the CLI `gradio_prepare.py build` as a whole "
        "process (interpreter start and imports included).",
        "- **Builds waiting** (`bench/waiting_builds.py`): one page's build hangs (the stand-in's `hang` mode); "
        "40 more pages submit 2 builds each (the most a page may have unfinished; a third is refused with its "
        "reason), so 80 wait, each page following its own as a page does. A fresh page then times form changes as "
        "above; then pages press Cancel on their waiting build one after another (request → the answer that "
        "shows it cancelled), and last the hung build is cancelled.",
        "- **Library at scale** (`bench/records.py`): one stand-in build's build.json record copied into 20 model "
        "folders (19 of 14 builds, one local model of 40), each build with its own three engine files, all ready. "
        "The page is served from the bench process on that folder: form changes alternate between the local model "
        "and a hub id (server time as above); then the library's list and a load of one build, round trips over "
        "HTTP, each model in turn, after one warm-up listing.",
        "- **Re-probes queued** (`bench/reprobes.py`): one page probes (the cache is then warm), 20 pages click "
        "“Probe again” (queued, not followed), and new pages open one after another: each one's environment panel "
        "(the page load's `cached_environment` event) is timed from request to answer; then every click is followed "
        "to its answer (the server's probe lane runs one probe at a time and merges the clicks that wait).",
        "- **Timing cache** (`bench/timing_cache.py`, only where the build Python has a GPU, TensorRT and "
        "StreamDiffusion): the default parameters built in a fresh engines folder (cold: no timing cache), then "
        "built again after their model folder is removed, so the build starts from the shared timing cache the "
        "first one left (warm); each figure is the build's own seconds in build.json. Elsewhere the row says why "
        "it was skipped.",
        "- **First start** (`bench/first_start.py`, only with `--first-start`: it downloads from PyPI): a `git "
        "clone` of HEAD, then `bash run.sh` (a venv, uv into it, the requirements with uv) until `GET /` first "
        "answers 200; and the same clone with pip (`python -m venv`, `pip install -r requirements.txt`, start), "
        "each with its own empty package cache, one after the other.",
        "",
    ]
    notes = data.get("notes") or []
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)
