"""Cold start and memory: the real app against the smallest useful Gradio app (bench/minimal_app.py), alternating.

Each is started as the UI tests start it (`gradio_prepare.py --host 127.0.0.1 --port <free> --engines-dir ...`),
timed from Popen to the first HTTP 200 of `/` (polled every 10 ms); the process tree's RSS is read one second later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.common import MB, MINIMAL, app_server, rss_tree


def measure(rounds: int, state: Path, say: Callable[[str], None]) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"app_s": [], "minimal_s": [], "app_rss_mb": [], "minimal_rss_mb": []}
    for index in range(rounds):
        order = (("minimal", MINIMAL), ("app", None)) if index % 2 else (("app", None), ("minimal", MINIMAL))
        for name, script in order:
            with app_server(state, name, script=script, poll=0.01) as server:
                seconds = server.ready - server.started
                time.sleep(1.0)
                rss = rss_tree(server.process.pid) / MB
            results[f"{name}_s"].append(seconds)
            results[f"{name}_rss_mb"].append(rss)
            say(f"  start-up round {index + 1}/{rounds} {name}: {seconds:.2f} s, {rss:.0f} MB")
    return results
