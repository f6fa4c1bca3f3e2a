"""Start a child Python that may import StreamDiffusion, read what it says line by line, and end it for sure.

The one module of the app that starts processes (tests/test_architecture.py holds it to that): the build Python's
scripts, setup's steps, and short commands whose answer is read whole (`run_command`).
The UI process never imports torch, TensorRT or StreamDiffusion; the probe and the build run here instead.
The child writes protocol events as lines starting with EVENT_PREFIX followed by one JSON object; every
other line is raw log. Its stdout and stderr are merged so the log keeps their order. A script of sdprep/child gets
a pipe as its stdin: `request_stop` writes the protocol's stop request there (a script that listens stops cleanly;
`stop` ends any child by force).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdprep.child.protocol import EVENT_PREFIX, STOP_REQUEST
from sdprep.jobs.job_object import JobObject, contain
from sdprep.messages import Message, msg
from sdprep.paths import user_path

CHILD_DIR = Path(__file__).resolve().parents[1] / "child"  # the scripts run by path in the build Python
PYTHON_ENV = "SDPREP_PYTHON"
STREAMDIFFUSION_SRC_ENV = "SDPREP_STREAMDIFFUSION_SRC"
GPU_ENV = "SDPREP_GPU"  # the GPU to build on, where --gpu is not given


# The build environment `setup` makes beside the app (or where --target / $SDPREP_BUILD_VENV says); used when no
# other build Python is chosen.
APP_ROOT = Path(__file__).resolve().parents[2]
BUILD_VENV_ENV = "SDPREP_BUILD_VENV"


def build_venv() -> Path:
    configured = os.environ.get(BUILD_VENV_ENV)
    return user_path(configured).resolve() if configured else APP_ROOT / ".venv-build"


InterpreterSource = Literal["flag", "environment", "build_venv", "app"]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@dataclass(frozen=True)
class ChildSpec:
    """Which interpreter runs the child and what it can import."""

    python: str | None = None  # --python; else $SDPREP_PYTHON, else .venv-build, else this interpreter
    streamdiffusion_src: str | None = None  # a folder put first on the child's path, e.g. StreamDiffusion/src
    gpu: int = 0
    build_venv: Path = field(default_factory=build_venv)

    def choice(self) -> tuple[str, InterpreterSource]:
        """The build Python and why it was chosen: --python > SDPREP_PYTHON > .venv-build if present > the app's."""
        if self.python:
            return self.python, "flag"
        configured = os.environ.get(PYTHON_ENV)
        if configured:
            return configured, "environment"
        built = venv_python(self.build_venv)
        if built.is_file():
            return str(built), "build_venv"
        return sys.executable, "app"

    def interpreter(self) -> str:
        return self.choice()[0]

    def source_dir(self) -> str | None:
        return self.streamdiffusion_src or os.environ.get(STREAMDIFFUSION_SRC_ENV) or None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        src = self.source_dir()
        if src:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.abspath(src), env.get("PYTHONPATH")) if p)
        # The child sees only the chosen GPU, as device 0: StreamDiffusion always uses cuda:0.
        env["CUDA_VISIBLE_DEVICES"] = str(self.gpu)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        return env


@dataclass
class ChildLine:
    time: float  # monotonic time the line arrived
    text: str
    event: dict[str, Any] | None = None


@dataclass
class ChildProcess:
    """A running child; iterate `lines()` until it ends, `stop()` to end it and everything it started."""

    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    _queue: queue.Queue[ChildLine | None] = field(default_factory=queue.Queue)
    job: JobObject | None = None  # Windows: the child's process tree, ended with it or with the app

    @classmethod
    def start(cls, spec: ChildSpec, script: str, args: list[str], cwd: Path | None = None) -> ChildProcess:
        """A script of sdprep/child run by path in the build Python."""
        command = [spec.interpreter(), "-u", str(CHILD_DIR / script), *args]
        return cls.spawn(command, spec.environment(), cwd, stdin_pipe=True)

    @classmethod
    def spawn(
        cls, command: list[str], env: dict[str, str], cwd: Path | None = None, stdin_pipe: bool = False
    ) -> ChildProcess:
        """Any command, as the leader of its own process group, its stdout and stderr merged into lines. Its stdin is
        empty, or with `stdin_pipe` a pipe only `request_stop` writes to (other programs, such as setup's installers,
        might wait on a pipe for input that never comes)."""
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows only
        else:
            # Its own session: a terminal's Ctrl-C reaches only us, and killpg reaches all it started.
            kwargs["start_new_session"] = True
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            **kwargs,
        )
        child = cls(process, job=contain(process.pid))
        threading.Thread(target=child._read, name="sdprep-child-reader", daemon=True).start()
        return child

    def _read(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        while True:
            chunk = self.process.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            pending += chunk
            # Progress bars redraw with \r; treat it as a line end so they show up live.
            *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            for raw in complete:
                self._queue.put(_parse(raw))
        if pending:
            self._queue.put(_parse(pending))
        self._queue.put(None)

    def lines(self, poll: float = 0.2) -> Iterator[ChildLine | None]:
        """Lines as they arrive; yields None every `poll` seconds of silence so callers can check cancel."""
        while True:
            try:
                line = self._queue.get(timeout=poll)
            except queue.Empty:
                yield None
                continue
            if line is None:
                return
            yield line

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def request_stop(self) -> bool:
        """Ask the child to stop at its next safe point (the protocol's STOP_REQUEST line on its stdin); False when it
        cannot be asked (no pipe, or the child has gone)."""
        pipe = self.process.stdin
        if pipe is None or self.process.poll() is not None:
            return False
        try:
            pipe.write(f"{STOP_REQUEST}\n".encode())
            pipe.flush()
        except (OSError, ValueError):  # a broken pipe: it is ending anyway
            return False
        return True

    def stop(self, grace: float = 2.0) -> None:
        """End the child and all its descendants: polite first, then by force. Returns within ~grace+1 s."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.close()
        stop_tree(self.process.pid, grace)
        if self.job is not None:
            self.job.terminate()  # also the descendants psutil cannot see: those whose parent already exited
            self.job.close()
        try:
            self.process.wait(timeout=grace + 1)
        except subprocess.TimeoutExpired:
            pass


def _parse(raw: bytes) -> ChildLine:
    text = raw.decode("utf-8", errors="replace").rstrip()
    now = time.monotonic()
    if text.startswith(EVENT_PREFIX):
        try:
            return ChildLine(now, text, json.loads(text[len(EVENT_PREFIX) :]))
        except json.JSONDecodeError:
            pass
    return ChildLine(now, text)


def stop_tree(pid: int, grace: float = 2.0) -> None:
    import psutil  # here: a command that starts no child (an up-to-date answer) skips its import

    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    if os.name != "nt":
        # The process group also holds descendants whose parent already died (re-parented to init).
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for process in family:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    if os.name != "nt":
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=1.0)


def run_command(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A short command whose whole answer is read when it ends (a version, a package list), as text. Raises OSError
    when it cannot start and subprocess.TimeoutExpired (it is killed) when it runs past `timeout` seconds."""
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


# Signals by name: Windows has no SIGKILL, SIGBUS, ... (getattr keeps this importable there).
_SIGNAL_CODES = {
    getattr(signal, name): code
    for name, code in (
        ("SIGSEGV", "exit_segfault"),
        ("SIGABRT", "exit_abort"),
        ("SIGKILL", "exit_killed"),
        ("SIGTERM", "exit_terminated"),
        ("SIGBUS", "exit_bus_error"),
        ("SIGILL", "exit_illegal_instruction"),
        ("SIGFPE", "exit_arithmetic"),
    )
    if hasattr(signal, name)
}


def exit_message(code: int) -> Message:
    """What an exit code means, for people (negative codes are POSIX signals)."""
    if code == 0:
        return msg("exit_normal")
    if code < 0:
        number = -code
        if number in _SIGNAL_CODES:
            return msg(_SIGNAL_CODES[number])
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
        return msg("exit_signal", name=name)
    if os.name == "nt" and code in (0xC0000005, -1073741819):
        return msg("exit_access_violation")
    if os.name == "nt" and code in (0xC0000409, -1073740791):
        return msg("exit_stack_overrun")
    return msg("exit_code", code=code)
