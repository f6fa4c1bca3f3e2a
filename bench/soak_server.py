"""The soak's server: the app as `python gradio_prepare.py ...` starts it, with a watcher thread that writes what the
server holds, so that the soak can tell a leak from data and Python's objects from the allocator's pages.

    python bench/soak_server.py --host 127.0.0.1 --port N      (the engines folder in $SDPREP_ENGINES_DIR)

Only the benchmark starts the app this way; the app itself has no hook and pays nothing for this. Set by the soak:
- SOAK_STATS: a file that gets one JSON line every SOAK_STATS_EVERY seconds: the page sessions Gradio holds and the
  components in them, glibc's heap (bytes in use and free in malloc's arenas, where glibc tells), and with tracing
  the bytes Python's allocations hold.
- SOAK_TRACEMALLOC=N: trace allocations with N frames from SOAK_TRACE_FROM seconds on (start-up is not traced); every
  SOAK_SNAPSHOT_EVERY seconds the largest growths since the first snapshot go to SOAK_STATS's folder as
  growth-<seconds>.txt. Tracing slows the server; its RSS is then not the figure to report.
- SOAK_SESSION_GRACE: seconds a closed page's session is kept (the app keeps it an hour).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "gradio_prepare.py"
HOLDERS: list[Any] = []  # Gradio's StateHolder of the app (the sessions), recorded as it is made


def record_state_holders() -> None:
    from gradio import state_holder

    made = state_holder.StateHolder.__init__

    def init(self: Any) -> None:
        made(self)  # type: ignore[no-untyped-call]
        HOLDERS.append(self)

    state_holder.StateHolder.__init__ = init  # type: ignore[method-assign]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _glibc_heap() -> Any:
    """glibc's mallinfo2 (glibc 2.33 and later), or None on another C library or system."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        call = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _MallInfo2
    return call


def sessions() -> dict[str, int]:
    count = components = configs = 0
    for holder in HOLDERS:
        with holder.lock:
            held = list(holder.session_data.values())
        count += len(held)
        for session in held:
            components += len(session.blocks_config.blocks)
            configs += len(session.config_values)
    return {"sessions": count, "session_components": components, "session_configs": configs}


def watch(stats: Path, every: float, frames: int, snapshot_every: float, trace_from: float) -> None:
    """Every `every` seconds a line of what the server holds; with `frames`, tracing starts after `trace_from`
    seconds (start-up is not traced: it would take minutes) and its growth is written every `snapshot_every`."""
    mallinfo = _glibc_heap()
    started = time.monotonic()
    first: tracemalloc.Snapshot | None = None
    next_snapshot = trace_from + snapshot_every
    with open(stats, "a", encoding="utf-8") as out:
        while True:
            time.sleep(every)
            now = time.monotonic() - started
            if frames and now >= trace_from and not tracemalloc.is_tracing():
                tracemalloc.start(frames)
            line: dict[str, Any] = {"t": round(now, 1), **sessions()}
            if mallinfo is not None:
                info = mallinfo()
                line.update(malloc_in_use=info.uordblks + info.hblkhd, malloc_free=info.fordblks, mmapped=info.hblkhd)
            if tracemalloc.is_tracing():
                line["traced"] = tracemalloc.get_traced_memory()[0]
                if now >= next_snapshot:
                    next_snapshot = now + snapshot_every
                    snapshot = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(False, tracemalloc.__file__)]
                    )
                    if first is None:
                        first = snapshot
                    else:
                        write_growth(stats.parent / f"growth-{now:05.0f}.txt", snapshot, first)
            out.write(json.dumps(line) + "\n")
            out.flush()


def write_growth(path: Path, snapshot: tracemalloc.Snapshot, first: tracemalloc.Snapshot) -> None:
    lines = [f"total traced growth: {sum(d.size_diff for d in snapshot.compare_to(first, 'filename')) / 1e6:.2f} MB"]
    lines.append("\n== by line ==")
    lines += [str(stat) for stat in snapshot.compare_to(first, "lineno")[:40]]
    lines.append("\n== by traceback ==")
    for stat in snapshot.compare_to(first, "traceback")[:15]:
        lines.append(f"\n{stat.size_diff / 1e3:+.0f} kB, {stat.count_diff:+d} blocks")
        lines += ["    " + frame for frame in stat.traceback.format()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    record_state_holders()
    grace = os.environ.get("SOAK_SESSION_GRACE")
    if grace:
        from sdprep.ui import sessions as app_sessions

        app_sessions.CLOSED_SESSION_GRACE = float(grace)
    stats = os.environ.get("SOAK_STATS")
    if stats:
        args = (
            Path(stats),
            float(os.environ.get("SOAK_STATS_EVERY") or 5),
            int(os.environ.get("SOAK_TRACEMALLOC") or 0),
            float(os.environ.get("SOAK_SNAPSHOT_EVERY") or 60),
            float(os.environ.get("SOAK_TRACE_FROM") or 30),
        )
        threading.Thread(target=watch, args=args, name="soak-watch", daemon=True).start()
    sys.argv = [str(APP), *sys.argv[1:]]
    runpy.run_path(str(APP), run_name="__main__")


if __name__ == "__main__":
    main()
