"""Form changes and Cancel while 80 builds wait (issue 10): the page must stay answered however many builds queue.

One page starts a build that hangs (the stand-in's `hang` mode), so every later build waits; 40 more pages submit
2 builds each (the board's limit per page), 80 waiting in all, and each of those pages follows its build as a page
does. Then, from a fresh page, form changes (the `preview` event) are timed as in form_change.py, a third build of
one page is refused with its reason, pages Cancel their waiting build one after another (request -> the answer that
shows it cancelled), and last the hung build is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import app_server, median, percentile
from bench.form_change import round_trips
from testkit.page_client import PageClient

PAGES = 40
PER_PAGE = 2  # JobBoard.MAX_WAITING_PER_OWNER


def _text(outputs: dict[str, Any]) -> str:
    return "\n".join(str(value.get("value") if isinstance(value, dict) else value) for value in outputs.values())


def measure(state: Path, previews: int, cancels: int, say: Callable[[str], None]) -> dict[str, Any]:
    with app_server(state, "waiting") as server:
        holder = PageClient(server.url, deadline=60)
        holder.join("build", model="standin/hang-model")
        pages = [PageClient(server.url, deadline=60) for _ in range(PAGES)]
        started = time.perf_counter()
        for index, page in enumerate(pages):
            for steps in range(1, PER_PAGE + 1):
                page.join("build", model=f"standin/slow-{index}", denoise_steps=steps)
        joined = time.perf_counter() - started
        time.sleep(3.0)  # every build submitted to the board, every page following its build
        say(f"  {PAGES * PER_PAGE} builds submitted from {PAGES} pages in {joined:.2f} s, behind a hung one")
        started = time.perf_counter()
        surplus = _text(pages[-1].call("build", model="standin/slow-extra")[0])
        surplus_ms = (time.perf_counter() - started) * 1000
        if "already has" not in surplus:
            raise RuntimeError(f"a page's third build was not refused: {surplus[:300]}")
        form = PageClient(server.url, deadline=60)
        round_trip, server_ms = round_trips(form, previews)
        say(f"  form change with {PAGES * PER_PAGE} builds waiting: p95 {percentile(round_trip, 95):.0f} ms")
        cancel_ms = []
        for page in pages[:cancels]:
            started = time.perf_counter()
            answer = _text(page.call("cancel")[0])
            cancel_ms.append((time.perf_counter() - started) * 1000)
            if "Cancelled" not in answer:
                raise RuntimeError(f"cancel of a waiting build: {answer[:300]}")
        started = time.perf_counter()
        answer = _text(holder.call("cancel")[0])
        running_ms = (time.perf_counter() - started) * 1000
        if "Cancelled" not in answer:
            raise RuntimeError(f"cancel of the running build: {answer[:300]}")
        say(f"  Cancel of a waiting build: median {median(cancel_ms):.0f} ms; of the hung one {running_ms:.0f} ms")
        for page in [holder, form, *pages]:
            page.close()
    return {
        "waiting": PAGES * PER_PAGE,
        "pages": PAGES,
        "join_s": joined,
        "surplus_refused_ms": surplus_ms,
        "surplus_message": next(line.strip() for line in surplus.splitlines() if "already has" in line),
        "preview_round_trip_ms": round_trip,
        "preview_gradio_duration_ms": server_ms,
        "cancel_waiting_ms": cancel_ms,
        "cancel_running_ms": running_ms,
    }
