"""A job's clock, stage timings and log, shared by builds and checks.

Every event goes to the caller (the CLI prints it, the UI streams it) and into the log: kept in memory for the
tail a person sees, and written to the job's log file once there is one (with the lines from before it).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

EventKind = Literal["stage", "log", "raw", "waiting"]
LOG_TAIL_LINES = 20
_TRACEBACK_LINE = re.compile(r"^(Traceback \(most recent call last\):|\s+File \"|\s{4})")


@dataclass(frozen=True)
class BuildEvent:
    kind: EventKind
    elapsed: float  # seconds since the job started
    message: str
    stage: str | None = None


def without_tracebacks(lines: list[str]) -> list[str]:
    """Log lines for people: traceback frames dropped, the final exception line kept (tracebacks: --debug)."""
    return [line for line in lines if not _TRACEBACK_LINE.match(line)]


class Progress:
    def __init__(self, on_event: Callable[[BuildEvent], None]) -> None:
        self.on_event = on_event
        self.started = time.monotonic()
        self.stages: dict[str, float] = {}  # stage label -> seconds spent in it
        self.lines: list[str] = []
        self.path: Path | None = None
        self._stage: tuple[str, float] | None = None
        self._file: IO[str] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def event(self, kind: EventKind, message: str, stage: str | None = None) -> None:
        if kind == "stage":
            self.close_stage()
            self._stage = (message, time.monotonic())
        self.log(message if kind == "raw" else f"[{kind}] {message}")
        self.on_event(BuildEvent(kind, self.elapsed(), message, stage))

    def close_stage(self) -> None:
        if self._stage:
            label, since = self._stage
            self.stages[label] = round(self.stages.get(label, 0.0) + time.monotonic() - since, 3)
            self._stage = None

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self._file is None:
            return
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError:  # a full disk: the log stays in memory (the tail still reaches the person)
            self.close_file()

    def open_file(self, path: Path) -> None:
        """Log to this file from now on, starting with every line so far. Raises OSError if it cannot."""
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close_file()
        self.path = path
        for line in self.lines:
            self._file.write(line + "\n")

    def close_file(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    def tail(self) -> list[str]:
        return without_tracebacks(self.lines)[-LOG_TAIL_LINES:]
