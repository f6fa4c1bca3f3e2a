"""A new page's environment panel while 20 "probe again" clicks wait (issue 16): page loads answer from the cache.

One page probes once (the cache is then warm), 20 pages each click "Probe again" (queued, not followed), and new
pages open one after another: each one's environment panel (the page load's `cached_environment` event) is timed
from request to answer. Once every click has its answer, the time they took together says how many probes ran:
the server's probe lane runs one at a time and merges the clicks that wait, so two probes answer all 20 (once, 20
probes ran one after another and every page load waited behind them, 22 s here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import app_server
from testkit.page_client import PageClient

CLICKS = 20
NEW_PAGES = 5


def measure(state: Path, say: Callable[[str], None]) -> dict[str, Any]:
    with app_server(state, "reprobes") as server:
        first = PageClient(server.url, deadline=120)
        started = time.perf_counter()
        first.call("probe_environment")
        probe_s = time.perf_counter() - started
        clickers = [PageClient(server.url, deadline=300) for _ in range(CLICKS)]
        clicked = time.perf_counter()
        events = [(page, page.join("probe_environment")) for page in clickers]
        time.sleep(0.3)  # every click queued, the first probe running
        panel_s = []
        for _ in range(NEW_PAGES):
            page = PageClient(server.url, deadline=120)
            started = time.perf_counter()
            out, _ = page.call("cached_environment")
            panel_s.append(time.perf_counter() - started)
            if "GPU" not in str(out):
                raise RuntimeError(f"the environment panel of a new page: {str(out)[:300]}")
            page.close()
        for page, event in events:
            for _ in page.follow("probe_environment", event):
                pass
        all_clicks_s = time.perf_counter() - clicked
        say(
            f"  environment panel of a new page with {CLICKS} re-probes queued: max {max(panel_s) * 1000:.0f} ms; "
            f"all {CLICKS} re-probes answered in {all_clicks_s:.1f} s (one probe {probe_s:.1f} s)"
        )
        for page in [first, *clickers]:
            page.close()
    return {"clicks": CLICKS, "panel_s": panel_s, "all_clicks_s": all_clicks_s, "probe_s": probe_s}
