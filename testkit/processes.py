"""Starting processes from tests, and making sure none outlives its test or the run.

Every process a test starts goes through `run` or `spawn`: it leads a process group of its own (so a Ctrl-C sent to
it, or a kill of its group, reaches what it started), and an expired wait ends the whole group, not only the
direct child. Processes are also found without help: the run and each test put a marker into the environment
(RUN_ENV, TEST_ENV), which every process they start inherits (the app's build children included), and `marked()`
finds them by it. conftest ends each test's marked processes when the test ends, passed, failed or timed out, and
fails the run if any process of the run is still there at its end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from testkit.paths import APP, STANDIN
from testkit.timing import SUITE_TIMEOUT, wait_until

RUN_ENV = "TESTKIT_RUN"  # every process started during the test run
TEST_ENV = "TESTKIT_TEST"  # every process started during one test (its setup, call and teardown)


def new_marker() -> str:
    return uuid.uuid4().hex


def marked(name: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment (as they were started with) holds name=value; never this process."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(name) == value:
                found.append(process)
        except psutil.Error:
            continue  # gone, or another user's
    return found


def describe(processes: Iterable[psutil.Process]) -> list[str]:
    lines = []
    for process in processes:
        try:
            lines.append(f"pid {process.pid} (parent {process.ppid()}): {' '.join(process.cmdline())[:200]}")
        except psutil.Error:
            lines.append(f"pid {process.pid} (gone)")
    return lines


def kill(processes: Iterable[psutil.Process]) -> None:
    """Kill each process's group (never this process's own), then every straggler by parent pid, and wait."""
    roots = list(processes)
    family: dict[int, psutil.Process] = {}
    for process in roots:
        try:
            family.update({p.pid: p for p in [process, *process.children(recursive=True)]})
        except psutil.Error:
            continue
    own_group = os.getpgrp()
    for pid in list(family):
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in family.values():
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(family.values()), timeout=10)


def _kill_tree(process: subprocess.Popen[Any]) -> None:
    try:
        kill([psutil.Process(process.pid)])
    except psutil.NoSuchProcess:
        pass
    try:
        process.wait(timeout=10)
    except (subprocess.TimeoutExpired, ChildProcessError):
        pass


def run(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = SUITE_TIMEOUT,
    preexec_fn: Callable[[], None] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with text output captured, in a process group of its own; a wait past `timeout` ends the group
    and everything it started, then raises subprocess.TimeoutExpired."""
    with subprocess.Popen(
        list(args),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        preexec_fn=preexec_fn,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:  # the timeout, or the test itself stopped (pytest-timeout, Ctrl-C)
            _kill_tree(process)
            raise
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = SUITE_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`python gradio_prepare.py ARGS` as a user runs it, its build child finding the stand-in StreamDiffusion."""
    full_env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN), **(env or {})}
    return run([sys.executable, str(APP), *args], cwd=cwd, env=full_env, timeout=timeout)


class Lines:
    """A text stream read line by line on a thread, so a test can wait for a line without blocking forever."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)
        self.closed = True

    def wait_for(self, text: str, timeout: float = SUITE_TIMEOUT) -> str:
        """The first line that contains `text`, once it has arrived."""
        found: list[str] = []

        def arrived() -> bool:
            found[:] = [line for line in list(self.lines) if text in line][:1]
            return bool(found) or self.closed

        wait_until(arrived, f"a line with {text!r}", timeout)
        if not found:
            raise AssertionError(f"the stream ended without a line with {text!r}:\n{self.text()}")
        return found[0]

    def text(self) -> str:
        """Everything read so far (all of it, once the process has ended and `join` returned)."""
        return "".join(self.lines)

    def join(self, timeout: float = SUITE_TIMEOUT) -> None:
        self._thread.join(timeout)


class Spawned:
    """A running process of a test: its output followed line by line (stdout, stderr), its end awaited."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout = Lines(process.stdout) if process.stdout else None
        self.stderr = Lines(process.stderr) if process.stderr else None

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = SUITE_TIMEOUT) -> int:
        """Its exit code, once it and its output have ended; on timeout the group is killed and TimeoutExpired
        raised."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        for lines in (self.stdout, self.stderr):
            if lines:
                lines.join()
        return code

    def out(self) -> str:
        return self.stdout.text() if self.stdout else ""

    def err(self) -> str:
        return self.stderr.text() if self.stderr else ""

    def stop(self) -> None:
        _kill_tree(self.process)


def spawn(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
) -> Spawned:
    """A process in a group of its own, its stdout and stderr followed as text lines (or dropped: capture=False)."""
    where = subprocess.PIPE if capture else subprocess.DEVNULL
    process = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=where,
        stderr=where,
        text=True,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    return Spawned(process)
