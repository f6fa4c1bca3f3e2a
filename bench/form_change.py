"""A form change: the page's `preview` event (derived values, validation, YAML preview), sent as the browser sends it.

- round trip and Gradio's own duration against a separate server process (tests/page_client.py, one session);
- the same call through gradio_client, for Python API users;
- the minimal app's one-textbox event, Gradio's floor;
- server time measured inside a server: the page served from this process with timers around Gradio's queue push
  and `process_api`, then the handler alone on the same form states.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench.common import MINIMAL, app_server, form_changes, preview_server_times, use_state_here
from testkit.api import Api
from testkit.app import free_port
from testkit.page_client import PageClient


def round_trips(page: PageClient, count: int, warmup: int = 5) -> tuple[list[float], list[float]]:
    """(round trip ms, Gradio's duration ms) of `count` preview calls after `warmup` unmeasured ones."""
    for values in form_changes(warmup):
        page.call("preview", **values)
    round_trip, server_ms = [], []
    for values in form_changes(count):
        started = time.perf_counter()
        _, duration = page.call("preview", **values)
        round_trip.append((time.perf_counter() - started) * 1000)
        server_ms.append(duration * 1000)
    return round_trip, server_ms


def gradio_client_round_trips(url: str, count: int) -> list[float]:
    """The same preview call through gradio_client (what a Python API user sees), for comparison."""
    api = Api(url)
    try:
        samples = []
        for values in form_changes(count + 3):
            started = time.perf_counter()
            api.call("/preview", **values)
            samples.append((time.perf_counter() - started) * 1000)
        return samples[3:]
    finally:
        api.close()


def minimal_round_trips(count: int, state: Path) -> dict[str, list[float]]:
    """The floor: the minimal app's one-textbox endpoint, same protocol."""
    with app_server(state, "minimal-rt", script=MINIMAL) as server:
        page = PageClient(server.url)
        try:
            for index in range(5):
                page.call("greet", name=f"warm {index}")
            round_trip, server_ms = [], []
            for index in range(count):
                started = time.perf_counter()
                _, duration = page.call("greet", name=f"name {index}")
                round_trip.append((time.perf_counter() - started) * 1000)
                server_ms.append(duration * 1000)
            return {"round_trip_ms": round_trip, "gradio_duration_ms": server_ms}
        finally:
            page.close()


def server_time(count: int, state: Path) -> dict[str, Any]:
    """Server time of the preview event, measured inside a real server: the app's page served from this process
    and driven over HTTP like the separate one, with timers around Gradio's queue push and `process_api`
    (pre-processing of the inputs, the handler, post-processing of the outputs). Then the handler alone."""
    use_state_here(state)
    import gradio_prepare  # builds the page, as the server does at start

    demo = gradio_prepare.demo
    function = next(fn for fn in demo.fns.values() if fn.api_name == "preview")
    port = free_port()
    with preview_server_times(demo) as timings:
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
            from sdprep.ui.app import freeze_startup_heap

            freeze_startup_heap()  # as the app does once it serves: a fresh server's heap, not this process's
            page = PageClient(f"http://127.0.0.1:{port}/")
            for values in form_changes(5):
                page.call("preview", **values)
            timings["push"].clear()
            timings["process_api"].clear()
            for values in form_changes(count):
                page.call("preview", **values)
            page.close()
            inputs, outputs = len(function.inputs), len(function.outputs)
        finally:
            with contextlib.suppress(Exception):
                demo.close()
    server = [a + b for a, b in zip(timings["push"], timings["process_api"], strict=True)]

    from testkit.api import component_name

    assert function.fn is not None
    components = list(function.inputs)
    by_name = {component_name(getattr(c, "elem_id", None)): c for c in components}
    handler = []
    for values in form_changes(count + 5):
        form = {component: getattr(component, "value", None) for component in components}
        for name, value in values.items():
            form[by_name[name]] = value
        started = time.perf_counter()
        function.fn(form)
        handler.append((time.perf_counter() - started) * 1000)
    return {
        "server_ms": server,
        "process_api_ms": timings["process_api"],
        "handler_ms": handler[5:],
        "inputs": inputs,
        "outputs": outputs,
    }


def measure_app(url: str, previews: int, client_calls: int) -> dict[str, list[float]]:
    """Round trips against a started app (the one builds.py and the others measure too)."""
    page = PageClient(url)
    try:
        round_trip, server_ms = round_trips(page, previews)
    finally:
        page.close()
    return {
        "preview_round_trip_ms": round_trip,
        "preview_gradio_duration_ms": server_ms,  # Gradio's `duration`: the handler call only
        "preview_gradio_client_ms": gradio_client_round_trips(url, client_calls),
    }
