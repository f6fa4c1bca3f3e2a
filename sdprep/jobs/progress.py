"""A job's clock, stage timings and log, shared by every job (build, check, setup, self-test).

Every event goes to the caller (the CLI prints it, the UI streams it) worded in its reader's language, and into the
job's log in English: kept in memory for the tail a person sees, and written to the log file once there is one
(with the lines from before it). Stages are ids ("load_model", "engine:unet", ...); `stage_message` words them.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from sdprep.messages import LINE_LIMIT, Message, cut, msg
from sdprep.text import word

EventKind = Literal["stage", "log", "raw", "waiting"]
LOG_TAIL_LINES = 20
_TRACEBACK_LINE = re.compile(r"^(Traceback \(most recent call last\):|\s+File \"|\s{4})")
# Engine stages are "engine:<file kind>" or "engine:<file kind>:<ControlNet folder>".
ENGINE_STAGE = "engine"


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    elapsed: float  # seconds since the job started
    message: Message
    stage: str | None = None  # the stage id, for "stage" events


def raw_line(text: str) -> Message:
    """A line the child printed itself (StreamDiffusion's log, a traceback): shown as it is."""
    return msg("raw_line", text=text)


def engine_message(stage: str) -> Message:
    """The engine an engine stage id names: "engine:unet" -> engine_unet; "engine:cnet:controlnet_x" -> its name."""
    _, kind, *rest = stage.split(":", 2)
    return msg(f"engine_{kind}", name=rest[0].removeprefix("controlnet_") if rest else "")


def stage_message(stage: str) -> Message:
    """The words for a stage id: "load_model" -> stage_load_model; engine stages name their engine."""
    if stage.startswith(f"{ENGINE_STAGE}:"):
        return msg("stage_engine", engine=engine_message(stage))
    return msg(f"stage_{stage}")


def _cut_values(message: Message) -> Message:
    """The message with its long texts cut: an event reaches a page (and every redraw of it), a log line may be a
    megabyte long (the log file keeps it whole)."""
    if not any(isinstance(value, str) and len(value) > LINE_LIMIT for value in message.params.values()):
        return message
    return Message(
        message.code, {key: cut(value) if isinstance(value, str) else value for key, value in message.params.items()}
    )


def without_tracebacks(lines: list[str]) -> list[str]:
    """Log lines for people: traceback frames dropped, the final exception line kept (tracebacks: --debug)."""
    return [line for line in lines if not _TRACEBACK_LINE.match(line)]


class Progress:
    def __init__(self, on_event: Callable[[JobEvent], None]) -> None:
        self.on_event = on_event
        self.started = time.monotonic()
        self.stages: dict[str, float] = {}  # stage id -> seconds spent in it
        self.lines: list[str] = []
        self.path: Path | None = None
        self._stage: tuple[str, float] | None = None
        self._file: IO[str] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stage(self, stage: str) -> None:
        self.close_stage()
        self._stage = (stage, time.monotonic())
        self._emit("stage", stage_message(stage), stage)

    def event(self, kind: EventKind, message: Message) -> None:
        self._emit(kind, message, None)

    def _emit(self, kind: EventKind, message: Message, stage: str | None) -> None:
        text = word(message)
        self.log(text if kind == "raw" else f"[{kind}] {text}")
        self.on_event(JobEvent(kind, self.elapsed(), _cut_values(message), stage))

    def close_stage(self) -> None:
        if self._stage:
            stage, since = self._stage
            self.stages[stage] = round(self.stages.get(stage, 0.0) + time.monotonic() - since, 3)
            self._stage = None

    def log(self, line: str) -> None:
        """The line whole into the log file; cut (messages.cut) in memory, where the tail a person sees comes from."""
        self.lines.append(cut(line))
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
