"""The skeleton every job shares (build, check, setup, self-test): its result type, waiting for a lock with one
message, running a child while streaming what it says, Cancel, and the result with its log and stage timings.

Outcomes mean one thing everywhere, and one exit code each (the README's table): success 0, failed 1, refused
(invalid input) 2, unavailable (this machine cannot do it) 3, busy (a lock is held and waiting was declined) 4,
cancelled 130.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from sdprep.jobs.process import ChildLine, ChildProcess, ChildSpec, exit_message
from sdprep.jobs.progress import JobEvent, Progress, raw_line
from sdprep.locks import NamedLock, environment_gate, environment_of, environment_use
from sdprep.messages import Message, Problem, msg
from sdprep.text import word

Outcome = Literal[
    "built", "up_to_date", "written", "passed", "ready", "failed", "refused", "unavailable", "busy", "cancelled"
]
SUCCESS: frozenset[str] = frozenset({"built", "up_to_date", "written", "passed", "ready"})
EXIT_CODES: dict[str, int] = {
    **dict.fromkeys(SUCCESS, 0),
    "failed": 1,
    "refused": 2,
    "unavailable": 3,
    "busy": 4,
    "cancelled": 130,
}


@dataclass
class JobResult:
    """How a job ended; jobs add their own fields in subclasses."""

    outcome: Outcome
    reason: Message
    log_path: Path | None = None
    log_tail: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


R = TypeVar("R", bound=JobResult)
# Seconds a child asked to stop (Cancel during a TensorRT phase) has to end by itself before it is ended by force.
STOP_GRACE = 10.0


@dataclass
class ChildRun:
    """What a child said before it ended."""

    code: int | None = None
    result: dict[str, Any] | None = None  # its "result" event
    error: dict[str, Any] | None = None  # its "error" event
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.result is not None


class Job(Generic[R]):
    """State shared by one job's steps; subclasses implement `run()` and name their `result_type`."""

    result_type: type[R]
    kind: ClassVar[str] = ""  # what the lock notes name it: "build", "check" (a message words it: job_<kind>)

    def __init__(self, child: ChildSpec, on_event: Callable[[JobEvent], None], cancel: threading.Event) -> None:
        self.child = child
        self.cancel = cancel
        self.progress = Progress(on_event)

    def say(self, code: str, **params: Any) -> None:
        self.progress.event("log", msg(code, **params))

    def result(self, outcome: Outcome, reason: Message, **extra: Any) -> R:
        self.progress.close_stage()
        if outcome not in SUCCESS:
            self.progress.log(f"[{outcome}] {word(reason)}")
        return self.result_type(
            outcome=outcome,
            reason=reason,
            log_path=self.progress.path,
            log_tail=self.progress.tail(),
            stages=dict(self.progress.stages),
            duration=round(self.progress.elapsed(), 3),
            **extra,
        )

    def acquire(self, lock: NamedLock, what: str, wait: bool, waiting_code: str, **params: Any) -> R | None:
        """Hold `lock`; None once held, else the result that ends the job (cancelled while waiting, or busy)."""
        if lock.acquire(
            what=what,
            wait=wait,
            job=self.kind,
            should_stop=self.cancel.is_set,
            on_wait=lambda holder: self.progress.event("waiting", self._holder_message(waiting_code, holder, params)),
        ):
            return None
        if self.cancel.is_set():
            return self.result("cancelled", msg("cancelled_waiting"))
        return self.result("busy", self._holder_message(f"{waiting_code}_busy", lock.holder(), params))

    @staticmethod
    def _holder_message(code: str, holder: dict[str, Any], params: dict[str, Any]) -> Message:
        return msg(
            code,
            what=holder.get("what") or "?",
            pid=holder.get("pid") or "?",
            since=holder.get("since") or "?",
            **params,
        )

    def run_child(
        self,
        script: str,
        args: Iterable[str],
        cwd: Path | None = None,
        on_record: Callable[[dict[str, Any]], None] = lambda event: None,
        stop_code: str = "stopping_child",
    ) -> ChildRun:
        """Run a child script in the build Python, streaming its stages and log, until it ends or Cancel. While it
        runs, setup does not replace the environment it runs from (and while setup replaces it, it does not start)."""
        use = self.enter_environment(script)
        if use is None:
            return ChildRun(cancelled=True)
        try:
            child = ChildProcess.start(self.child, script, list(args), cwd=cwd)
            return self.follow_child(child, on_record, stop_code)
        finally:
            if isinstance(use, NamedLock):
                use.release()
                with contextlib.suppress(OSError):
                    use.path.unlink()

    def enter_environment(self, script: str) -> NamedLock | bool | None:
        """Say "a child runs from this build environment" (sdprep.locks): its held lock; True for an interpreter
        outside any environment; None when cancelled while setup was replacing it."""
        environment = environment_of(self.child.interpreter())
        if environment is None:
            return True
        gate = environment_gate(environment)
        if not gate.acquire(
            what=script,
            should_stop=self.cancel.is_set,
            on_wait=lambda holder: self.progress.event(
                "waiting", self._holder_message("environment_waiting", holder, {"environment": environment})
            ),
        ):
            return None
        try:
            use = environment_use(environment)
            use.acquire(f"{script} ({type(self).__name__.lower()})", wait=False)
            return use
        finally:
            gate.release()

    def follow_child(
        self, child: ChildProcess, on_record: Callable[[dict[str, Any]], None], stop_code: str = "stopping_child"
    ) -> ChildRun:
        """Stream what the child says until it ends. Cancel while TensorRT is inside a phase first asks the child to
        stop (its progress monitor then makes TensorRT abandon the build cleanly) and ends it by force only when it is
        still there STOP_GRACE seconds later; otherwise Cancel ends it at once."""
        run = ChildRun()
        deadline: float | None = None  # set once the child was asked to stop
        try:
            for line in child.lines():
                if self.cancel.is_set() and not run.cancelled:
                    run.cancelled = True
                    if self.progress.tensorrt_open() and child.request_stop():
                        self.say("stopping_trt", seconds=round(STOP_GRACE))
                        deadline = time.monotonic() + STOP_GRACE
                if run.cancelled and (deadline is None or time.monotonic() > deadline):
                    self.say(stop_code)
                    child.stop()
                    return run
                self.progress.tensorrt_flush()  # TensorRT's newest phases, once their time has come
                if line is not None:
                    self.follow_line(line, run, on_record)
            left = 30.0 if deadline is None else max(0.5, deadline - time.monotonic())
            try:
                run.code = child.wait(timeout=left)
            except subprocess.TimeoutExpired:
                if not run.cancelled:
                    raise
                self.say(stop_code)
        finally:
            child.stop(grace=1.0)
            self.progress.tensorrt_end()
        return run

    def follow_line(self, line: ChildLine, run: ChildRun, on_record: Callable[[dict[str, Any]], None]) -> None:
        """One line of the child: raw log, or a protocol event put where it belongs."""
        event = line.event
        if event is None:
            self.progress.event("raw", raw_line(line.text))
            return
        kind = event.get("event")
        if kind == "stage":
            self.progress.stage(str(event.get("stage") or "unknown"))
        elif kind == "log":
            code = event.get("code")
            raw = event.get("params")
            params: dict[str, Any] = raw if isinstance(raw, dict) else {}
            message = msg(str(code), **params) if code else raw_line(str(event.get("message", "")))
            self.progress.event("log", message)
        elif kind == "tensorrt":
            self.progress.tensorrt(event.get("phases"))
        elif kind == "result":
            run.result = event
        elif kind == "error":
            run.error = event
        else:
            on_record(event)

    def child_failure(self, run: ChildRun, process_code: str = "child_exit") -> Message:
        """Why a child did not succeed: its own error event, else how it exited."""
        if run.error:
            detail = str(run.error.get("message") or "").strip()
            return msg("child_error", type=run.error.get("type") or "Error", detail=detail)
        return msg(process_code, how=exit_message(run.code if run.code is not None else -1))
