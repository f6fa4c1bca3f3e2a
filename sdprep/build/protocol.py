"""The line protocol between the build/probe child and the parent. Standard library only: the child runs it.

A protocol line is EVENT_PREFIX followed by one JSON object with an "event" key: "stage" (a step began),
"log" (a message worth showing), "result" (what the child produced) or "error" (why it failed). Every other
line the child prints is raw log. The parent never decides success from raw log.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

EVENT_PREFIX = "@@sdprep-event "


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "time": time.time(), **fields}, default=str)
    # One write per line: the child's other threads print too, and a line must never be split.
    sys.stdout.write(f"{EVENT_PREFIX}{line}\n")
    sys.stdout.flush()
