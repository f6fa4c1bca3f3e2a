"""A job's clock, stage timings and log, shared by every job (build, check, setup, self-test).

Every event goes to the caller (the CLI prints it, the UI streams it) worded in its reader's language, and into the
job's log in English: kept in memory for the tail a person sees, and written to the log file once there is one
(with the lines from before it). Stages are ids ("load_model", "engine:unet", ...); `stage_message` words them.

A build child may also report TensorRT's own phases (sdprep/child/trt_progress.py): the stack of open phases, each
with its steps done and its number of steps. That is a "tensorrt" event: validated and bounded here (the child is
another program), sent on at most every TENSORRT_EVERY seconds, and written to the log file only when the top-level
phase changes.
"""

from __future__ import annotations

import contextlib
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from sdprep.messages import LINE_LIMIT, Message, cut, msg
from sdprep.text import word

EventKind = Literal["stage", "log", "raw", "waiting", "tensorrt"]
LOG_TAIL_LINES = 20
_TRACEBACK_LINE = re.compile(r"^(Traceback \(most recent call last\):|\s+File \"|\s{4})")
# Engine stages are "engine:<file kind>" or "engine:<file kind>:<ControlNet folder>".
ENGINE_STAGE = "engine"


# What is taken of a child's TensorRT phases: its numbers are another program's, so they are bounded before use.
TENSORRT_EVERY = 0.1  # seconds between two "tensorrt" events passed on (a top-level change: TENSORRT_FIRST_EVERY)
TENSORRT_FIRST_EVERY = 0.02
MAX_PHASES = 8
MAX_STEPS = 1_000_000
PHASE_NAME_LIMIT = 80


@dataclass(frozen=True)
class TensorrtPhase:
    """One open phase of TensorRT's builder: its name (TensorRT's English words), steps done of `steps`."""

    name: str
    step: int
    steps: int

    @property
    def percent(self) -> int:
        return 100 * self.step // self.steps if self.steps else 0


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    elapsed: float  # seconds since the job started
    message: Message
    stage: str | None = None  # the stage id, for "stage" events
    phases: tuple[TensorrtPhase, ...] = ()  # for "tensorrt" events: the open phases, outermost first; () when none


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _phase_name(value: str) -> str:
    """A phase name as one line of text: control characters (line breaks, escapes) become spaces, cut to the limit."""
    shown = " ".join("".join(" " if unicodedata.category(c).startswith("C") else c for c in value[:1000]).split())
    return (shown[: PHASE_NAME_LIMIT - 1] + "…" if len(shown) > PHASE_NAME_LIMIT else shown) or "?"


def tensorrt_phases(raw: object) -> tuple[TensorrtPhase, ...] | None:
    """The phases a child reported, validated: None for anything malformed; at most MAX_PHASES, numbers bounded
    (0 <= step <= steps <= MAX_STEPS), names cut and on one line."""
    if not isinstance(raw, list):
        return None
    phases = []
    for item in raw[:MAX_PHASES]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        step, steps = _whole(item.get("step")), _whole(item.get("steps"))
        if step is None or steps is None:
            return None
        steps = min(max(steps, 0), MAX_STEPS)
        phases.append(TensorrtPhase(_phase_name(item["name"]), min(max(step, 0), steps), steps))
    return tuple(phases)


def tensorrt_message(phases: tuple[TensorrtPhase, ...]) -> Message:
    """ "TensorRT: Building engine 1/2 (50%) · Tactic selection 3/6" (TensorRT's phase names as it wrote them)."""
    if not phases:
        return msg("trt_progress_idle")
    top, inner = phases[0], phases[1:]
    nested = "".join(f" · {phase.name} {phase.step}/{phase.steps}" for phase in inner)
    return msg("trt_progress", phase=top.name, step=top.step, steps=top.steps, percent=top.percent, inner=nested)


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
        self._phases: tuple[TensorrtPhase, ...] = ()  # TensorRT's open phases, as the child last said
        self._phases_sent: tuple[tuple[TensorrtPhase, ...], float] | None = None  # the last passed on, and when

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stage(self, stage: str) -> None:
        self.close_stage()
        self._stage = (stage, time.monotonic())
        self._emit("stage", stage_message(stage), stage)

    def event(self, kind: EventKind, message: Message) -> None:
        self._emit(kind, message, None)

    def tensorrt(self, raw: object) -> None:
        """The TensorRT phases a child reported (bounded; malformed ones are dropped): passed on now when the top-level
        phase changed or finished (at most every TENSORRT_FIRST_EVERY), else at most every TENSORRT_EVERY seconds;
        what waits goes with the next report or `tensorrt_flush`."""
        phases = tensorrt_phases(raw)
        if phases is not None:
            self._phases = phases
            self.tensorrt_flush()

    def tensorrt_open(self) -> bool:
        """Whether TensorRT is inside a phase now (so its progress monitor can still stop it)."""
        return bool(self._phases)

    def tensorrt_end(self) -> None:
        """The child has ended: no phase of its TensorRT is open any more (said at once, whatever it said last)."""
        self._phases = ()
        if self._phases_sent is not None and self._phases_sent[0]:
            self._phases_sent = ((), time.monotonic())
            self.on_event(JobEvent("tensorrt", self.elapsed(), tensorrt_message(()), None, ()))

    def tensorrt_flush(self) -> None:
        phases = self._phases
        sent, at = self._phases_sent or ((), -1.0)
        if phases == sent:
            return
        top, before = phases[:1], sent[:1]
        turning = [phase.name for phase in top] != [phase.name for phase in before] or bool(
            top and top[0].step >= top[0].steps
        )
        if time.monotonic() - at < (TENSORRT_FIRST_EVERY if turning else TENSORRT_EVERY):
            return
        self._phases_sent = (phases, time.monotonic())
        message = tensorrt_message(phases)
        if [phase.name for phase in top] != [phase.name for phase in before]:
            self.log(f"[tensorrt] {word(message)}")
        self.on_event(JobEvent("tensorrt", self.elapsed(), _cut_values(message), None, phases))

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
