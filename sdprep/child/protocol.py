"""The line protocol between the build/probe child and the parent. Standard library only: the child runs it.

A protocol line is EVENT_PREFIX followed by one JSON object with an "event" key: "stage" (a step began),
"log" (a message worth showing), "tensorrt" (TensorRT's open phases, trt_progress.py), "result" (what the child
produced) or "error" (why it failed); a script may add its own records (the build's "engine_written"). Every other
line the child prints is raw log. The parent never decides success from raw log.

The other way, the parent may write STOP_REQUEST as a line on the child's stdin: "stop at your next safe point"
(Cancel; a pipe works the same on Windows and POSIX, where a signal would not). A child that listens
(`stop_requests`) stops cleanly; one that does not is ended with its process tree, as every child may be.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

EVENT_PREFIX = "@@sdprep-event "
STOP_REQUEST = "stop"


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "time": time.time(), **fields}, default=str)
    # One write per line: the child's other threads print too, and a line must never be split.
    sys.stdout.write(f"{EVENT_PREFIX}{line}\n")
    sys.stdout.flush()


def end_with_parent(interval: float = 0.5) -> None:
    """End this child, and everything it started, as soon as the app that started it is gone.

    An app killed mid-build (SIGKILL, a crash, a closed console) takes the GPU lock with it; a build left running
    would share the GPU with the next one, and nobody would prove its engines. POSIX only: an orphan is re-parented,
    so its parent pid changes. The parent starts the child as the leader of its own process group (see child.py),
    so the whole group goes.
    """
    if os.name == "nt":
        return
    parent = os.getppid()
    if parent <= 1:
        return  # already orphaned, or the app is PID 1 (a container): nothing to watch

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        sys.stdout.flush()
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def stop_requests() -> threading.Event:
    """An event set when the parent asks this child to stop (a STOP_REQUEST line on stdin). The end of stdin is not a
    request: a parent that is gone is end_with_parent's business."""
    requested = threading.Event()

    def listen() -> None:
        try:
            for line in sys.stdin:
                if line.strip() == STOP_REQUEST:
                    requested.set()
        except (OSError, ValueError):  # no stdin at all (started without one)
            pass

    if sys.stdin is not None:
        threading.Thread(target=listen, name="stop-requests", daemon=True).start()
    return requested
