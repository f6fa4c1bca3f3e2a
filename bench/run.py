"""Measure the app on this machine in one run and write docs/performance.md.

    python bench/run.py            5 start-ups of each app, 200 form changes, ... (about 3 minutes on 2 cores)
    python bench/run.py --quick    2 start-ups of each, 60 form changes (about 1.5 minutes)
    python bench/run.py --first-start   also a fresh clone's first start with uv and with pip (downloads from PyPI)
    python bench/run.py --from-json bench/results/<run>.json    only render docs/performance.md again
    python bench/run.py --soak MINUTES [--pages 4]    only the soak (soak.py): one server driven from several
                                        pages for MINUTES; its section of docs/reliability.md and bench/results/
    python bench/run.py --packs [--pack-mb 2048]     only packs (packs.py): pack/unpack against a plain copy, and
                                        their memory; its section of docs/performance.md (also part of a full run)

In order (each in its own module of bench/, every number from this run): start-up and memory against a minimal
Gradio app (startup.py); the real app driven as a browser drives it: zero-work builds and the memory over them
(builds.py), "up to date" answers (up_to_date.py), form changes (form_change.py), a slow build's log lines on
arrival (streaming.py); the minimal app's round trip; in this process, the preview's server time and handler, a
child's start, line latency, the up-to-date answer of `run_build` and of the CLI, the rehearsal (rehearsal.py); and
form changes and Cancel with 80 builds waiting (waiting_builds.py); a library of 306 builds: a local model's form
changes, the library's list and load (records.py); a new page's environment panel with 20 re-probes queued
(reprobes.py); without --quick, pack and unpack of a 2 GB build against a plain copy (packs.py); on a GPU with
TensorRT only, a real build cold and warm from the shared timing cache (timing_cache.py). Results go to
docs/performance.md and bench/results/<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ itself is first on the path: the project root instead, so `bench` and `tests` import as
# packages and no module here can shadow one of the standard library's.
sys.path[:] = [str(ROOT), *(entry for entry in sys.path if Path(entry or ".").resolve() != ROOT / "bench")]

from bench import (  # noqa: E402
    builds,
    first_start,
    form_change,
    packs,
    records,
    rehearsal,
    report,
    reprobes,
    soak,
    startup,
    streaming,
    timing_cache,
    up_to_date,
    waiting_builds,
)
from bench.common import app_server, fmt, median  # noqa: E402
from testkit.page_client import PageClient  # noqa: E402


def measure_app(args: argparse.Namespace, state: Path, say: Any) -> dict[str, Any]:
    """One app session, as a browser drives it: builds, up-to-date answers, form changes, a slow build's lines."""
    with app_server(state, "session", env=streaming.SLOW_ENV) as server:
        page = PageClient(server.url)
        try:
            out = builds.measure(page, server.process.pid, say)
            out.update(up_to_date.measure_ui(page, out.pop("last_model"), args.uptodate_rounds))
            say(f"  UI up-to-date: median {median(out['ui_up_to_date_s']) * 1000:.0f} ms")
            out.update(form_change.measure_app(server.url, args.previews, args.client_calls))
            out.update(streaming.measure_ui(page))
            say(f"  UI line delay: {len(out['ui_line_delay_ms'])} stamped lines")
        finally:
            page.close()
    return out


def run_soak(minutes: float, pages: int, trace: int = 0, grace: float = soak.SESSION_GRACE) -> int:
    if not 0 < minutes <= 24 * 60 or not 1 <= pages <= 32:
        print("--soak: 0 < MINUTES <= 1440 and 1 <= --pages <= 32", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    state = Path(tempfile.mkdtemp(prefix="sdprep-soak-"))
    out = ROOT / "bench" / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        print(f"soak: {pages} pages, {minutes:g} min{f', tracemalloc {trace} frames' if trace else ''}", flush=True)
        say = lambda text: print(text, flush=True)  # noqa: E731
        data = soak.measure(state, minutes, pages, say, out=out, trace=trace, grace=grace)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    data["when"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    machine = report.machine()
    data["machine"] = ", ".join(machine[key] for key in ("cpu", "cores", "os") if key in machine)
    raw = out / "soak.json"
    raw.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    if trace:  # a traced server is slower and larger: its figures are for finding growth, not for the page
        print(soak.render(data), flush=True)
        print(f"traced run: docs/reliability.md left as it is; the growth tables and {raw.name} are in {out}")
        return 0
    page = ROOT / "docs" / "reliability.md"
    soak.write_section(page, soak.render(data))
    print(soak.render(data), flush=True)
    print(f"wrote the soak section of {page} and {raw}")
    return 0


def run_packs(size_mb: int, page: Path, say: Any) -> dict[str, Any]:
    """Only the packs' figures, into their own section of `page` (the rest of it is not touched)."""
    if not 16 <= size_mb <= 64 * 1024:
        raise SystemExit("--pack-mb: 16 to 65536")
    state = Path(tempfile.mkdtemp(prefix="sdprep-packs-"))
    os.environ["SDPREP_CACHE_DIR"] = str(state / "cache")
    os.environ["SDPREP_LOCK_DIR"] = str(state / "locks")
    try:
        say(f"packs: a build of {size_mb} MB")
        data = packs.measure(state, size_mb, say)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    machine = report.machine()
    described = ", ".join(machine[key] for key in ("cpu", "cores", "os") if key in machine)
    text = packs.render(data, time.strftime("%Y-%m-%d"), described)
    soak.write_section(page, text, name="packs")
    say(text)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the app and write docs/performance.md.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 1.5 minutes)")
    parser.add_argument(
        "--first-start", action="store_true", help="also a fresh clone's first start, uv against pip (needs PyPI)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--note", action="append", default=[], help="a line for the Notes section (repeatable)")
    parser.add_argument("--from-json", metavar="PATH", help="only render the page from a run's raw results")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="only the soak: one server for MINUTES")
    parser.add_argument("--pages", type=int, default=soak.PAGES, help="the soak's simulated pages (default 4)")
    parser.add_argument("--packs", action="store_true", help="only packs: pack/unpack against a copy, and memory")
    parser.add_argument("--pack-mb", type=int, default=packs.DEFAULT_MB, help="the large build's size (default 2048)")
    parser.add_argument(
        "--trace", type=int, default=0, metavar="FRAMES", help="the soak's server under tracemalloc (FRAMES deep)"
    )
    parser.add_argument(
        "--session-grace",
        type=float,
        default=soak.SESSION_GRACE,
        metavar="SECONDS",
        help=f"seconds the soak's server keeps a closed page's session (default {soak.SESSION_GRACE:g}; the app: 3600)",
    )
    args = parser.parse_args(argv)
    if args.packs:
        run_packs(args.pack_mb, Path(args.out), lambda text: print(text, flush=True))
        return 0
    if args.soak is not None:
        return run_soak(args.soak, args.pages, args.trace, args.session_grace)
    if args.from_json:
        raw = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        raw["notes"] = raw.get("notes", []) + args.note
        Path(args.out).write_text(report.render(raw, report.metrics(raw)), encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    args.rounds = 2 if args.quick else 5
    args.previews = 60 if args.quick else 200
    args.client_calls = 10 if args.quick else 30
    args.uptodate_rounds = 3 if args.quick else 5
    args.cancels = 5 if args.quick else 10
    args.listings = 20 if args.quick else 60
    # No telemetry from gradio_client or an in-process server (only loopback traffic here).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    def say(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    state = Path(tempfile.mkdtemp(prefix="sdprep-bench-"))
    try:
        data: dict[str, Any] = {"quick": args.quick, "rounds": args.rounds, "machine": report.machine()}
        data["notes"] = args.note
        data["load"] = {"before": f"{os.getloadavg()[0]:.2f}"}
        say(f"start-up: {args.rounds} rounds of each app")
        data["startup"] = startup.measure(args.rounds, state, say)
        say("the app, as a browser drives it")
        data["app"] = measure_app(args, state, say)
        say("the minimal app's round trip")
        data["minimal"] = form_change.minimal_round_trips(args.previews, state)
        say("in-process: the preview event's server time and handler")
        data["server"] = form_change.server_time(args.previews, state)
        say("in-process: child start, line latency, up to date")
        data["child_start"] = builds.child_start(args.rounds * 2, state)
        data["line_latency"] = streaming.measure_in_process(state)
        data["up_to_date"] = up_to_date.measure(args.uptodate_rounds, state)
        say("the rehearsal on the stand-ins")
        data["rehearsal"] = rehearsal.measure(args.rounds, state)
        say("a real build cold, then warm from the shared timing cache (a GPU with TensorRT only)")
        data["timing_cache"] = timing_cache.measure(state, say)
        say("80 builds waiting: form changes and Cancel")
        data["waiting_builds"] = waiting_builds.measure(state, args.previews, args.cancels, say)
        say(f"a library of {records.MODELS} models: a local model's form changes, the library's list and load")
        data["records"] = records.measure(state, args.previews, args.listings)
        say("20 re-probes queued: a new page's environment panel")
        data["reprobes"] = reprobes.measure(state, say)
        if args.first_start:
            say("a fresh clone's first start: run.sh (uv) and pip, empty caches")
            data["first_start"] = first_start.measure(say)
        data["load"]["after"] = f"{os.getloadavg()[0]:.2f}"
        data["seconds"] = time.perf_counter() - started
        rows = report.metrics(data)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.render(data, rows), encoding="utf-8")
        if not args.quick:  # gigabytes of disk traffic: the full run only
            data["packs"] = run_packs(args.pack_mb, out, say)
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        raw = results / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
        raw.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        say("")
        for metric in rows:
            verdict = "-" if metric.passed is None else ("met" if metric.passed else "MISSED")
            say(f"{verdict:7} {metric.name}: median {fmt(metric.median(), metric.unit)} ({metric.goal}) {metric.note}")
        say(f"\nwrote {out} and {raw} in {data['seconds']:.0f} s")
        return 0
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
