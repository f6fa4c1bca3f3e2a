"""TensorRT's own progress from inside a build, and its clean stop. Standard library only: the child runs it.

forkni's fork sets up every engine's builder configuration in `_apply_gpu_profile_to_config(config, …)` of
`streamdiffusion.acceleration.tensorrt.utilities`, which its FP16 and FP8 builds call by that module-global name just
before `build_serialized_network` (docs/streamdiffusion-facts.md §14). Replacing the name there with a wrapper lets
this child attach a TensorRT 10 `IProgressMonitor` to every configuration without changing the fork. The monitor
reports TensorRT's phases (nested, each with its steps) as "tensorrt" events, and once the parent asks this child to
stop, its `step_complete` answers False: TensorRT abandons the build, `build_serialized_network` returns None and the
fork raises before it writes an engine. Other forks (no such function) and TensorRT without IProgressMonitor (before
10) build as before; the child says once which case it is.

An event is the whole stack of open phases, outermost first: [{"name", "step" (steps done), "steps"}]; an empty list
when the last one ended. TensorRT completes steps by the thousand, from several threads: the start and the end of a
top-level phase, and its last step, are sent at once; everything else at most every EMIT_EVERY seconds (a flusher
sends the newest state when it changed).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
import time
from typing import Any

from protocol import emit  # run by path: sys.path[0] is this folder

HOOK_MODULE = "streamdiffusion.acceleration.tensorrt.utilities"
HOOK_NAME = "_apply_gpu_profile_to_config"
EMIT_EVERY = 0.1  # seconds: at most ~10 events a second besides a top-level phase's start, end and last step
MAX_DEPTH = 8  # phases kept in a stack; deeper ones are not reported
NAME_LIMIT = 200  # characters of a phase name sent


class PhaseReporter:
    """The open phases and what is sent of them; thread-safe (TensorRT calls from its own threads)."""

    def __init__(self, stop: threading.Event, interval: float = EMIT_EVERY) -> None:
        self.stop = stop
        self.interval = interval
        self._lock = threading.Lock()
        self._phases: list[dict[str, Any]] = []
        self._dirty = False
        self._sent = 0.0
        self._said_stop = False
        self._flusher: threading.Thread | None = None

    def _index(self, name: str) -> int | None:
        return next((at for at, phase in enumerate(self._phases) if phase["name"] == name), None)

    def start(self, name: str, parent: str | None, steps: int) -> None:
        with self._lock:
            at = None if parent is None else self._index(str(parent)[:NAME_LIMIT])
            if parent is None:
                self._phases = []  # an independent phase: whatever was open ended without saying so
            elif at is not None:
                del self._phases[at + 1 :]  # a sibling replaces the one before it
            if len(self._phases) < MAX_DEPTH:
                self._phases.append({"name": str(name)[:NAME_LIMIT], "step": 0, "steps": max(0, int(steps))})
            self._changed(force=len(self._phases) == 1)

    def step(self, name: str, step: int) -> bool:
        with self._lock:
            at = self._index(str(name)[:NAME_LIMIT])
            if at is not None:
                phase = self._phases[at]
                phase["step"] = max(phase["step"], min(int(step) + 1, phase["steps"]))
                self._changed(force=at == 0 and phase["step"] >= phase["steps"])
            if not self.stop.is_set():
                return True
            if not self._said_stop:
                self._said_stop = True
                emit("log", code="trt_stopping")
            return False

    def finish(self, name: str) -> None:
        with self._lock:
            at = self._index(str(name)[:NAME_LIMIT])
            if at is not None:
                del self._phases[at:]
                self._changed(force=at == 0)

    def _changed(self, force: bool) -> None:
        """Under the lock: send now (forced, or the interval has passed), or leave it to the flusher."""
        if force or time.monotonic() - self._sent >= self.interval:
            self._send()
        else:
            self._dirty = True
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush, name="trt-progress", daemon=True)
                self._flusher.start()

    def _send(self) -> None:
        emit("tensorrt", phases=[dict(phase) for phase in self._phases])
        self._sent, self._dirty = time.monotonic(), False

    def _flush(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if self._dirty and time.monotonic() - self._sent >= self.interval:
                    self._send()


def make_monitor(trt: Any, reporter: PhaseReporter) -> Any:
    """An instance of TensorRT's IProgressMonitor (a pybind11 class: subclassed, its __init__ called) that reports.
    A method never raises into TensorRT (its C++ side is noexcept): a fault of the reporter is ignored."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc]  # trt is untyped: its IProgressMonitor is Any
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with contextlib.suppress(Exception):
                reporter.start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return reporter.step(phase_name, step)
            except Exception:
                return not reporter.stop.is_set()

        def phase_finish(self, phase_name: str) -> None:
            with contextlib.suppress(Exception):
                reporter.finish(phase_name)

    return Monitor()


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _no_hook(error: ImportError) -> bool:
    """Whether the import failed because the hook's module (or a package above it) does not exist in this fork."""
    missing = getattr(error, "name", None)
    return isinstance(error, ModuleNotFoundError) and bool(missing) and HOOK_MODULE.startswith(str(missing))


# The monitor lives as long as the process: TensorRT requires it to outlive every configuration that uses it.
_MONITOR: list[Any] = []


def attach_progress(stop: threading.Event) -> bool:
    """Wrap the fork's builder-configuration hook so every configuration gets the monitor; says which case this is.
    True when the monitor is on."""
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as error:
        emit("log", code="trt_progress_unavailable", params={"reason": _reason(error)})
        return False
    if not hasattr(trt, "IProgressMonitor"):
        emit("log", code="trt_progress_no_monitor", params={"version": str(getattr(trt, "__version__", "?"))[:40]})
        return False
    try:
        module = importlib.import_module(HOOK_MODULE)
    except ImportError as error:
        if _no_hook(error):
            emit("log", code="trt_progress_no_hook")
        else:
            emit("log", code="trt_progress_unavailable", params={"reason": _reason(error)})
        return False
    hook = getattr(module, HOOK_NAME, None)
    if not callable(hook):
        emit("log", code="trt_progress_no_hook")
        return False
    reporter = PhaseReporter(stop)
    _MONITOR.append(make_monitor(trt, reporter))
    failed: list[str] = []

    @functools.wraps(hook)
    def with_monitor(config: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            config.progress_monitor = _MONITOR[0]
        except Exception as error:  # say it once; the build goes on without the monitor
            if not failed:
                failed.append(type(error).__name__)
                emit("log", code="trt_progress_not_attached", params={"reason": _reason(error)})
        return hook(config, *args, **kwargs)

    setattr(module, HOOK_NAME, with_monitor)
    emit("log", code="trt_progress_on")
    return True
