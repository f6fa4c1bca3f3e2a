"""The test support's promises: a wait past its timeout ends the whole process group, and no process a test or the run
started outlives it (once, a timed-out CLI test left its build child and a `sleep 3600` grandchild running)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from testkit.paths import ROOT
from testkit.processes import TEST_ENV, kill, marked, run, spawn
from testkit.timing import budget, wait_until

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def grandchild_of(pidfile: Path) -> int:
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the grandchild's pid")
    return int(pidfile.read_text())


def test_a_run_past_its_timeout_ends_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run(["sh", "-c", f"sleep 3600 & echo $! > '{pidfile}'; wait"], timeout=budget(2))
    wait_until(lambda: gone(grandchild_of(pidfile)), "the grandchild to end")


def test_kill_ends_the_group_and_a_descendant_in_a_session_of_its_own(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    parent = spawn(["sh", "-c", f"setsid sleep 3600 & echo $! > '{pidfile}'; wait"], capture=False)
    grandchild = grandchild_of(pidfile)
    assert psutil.Process(grandchild).ppid() == parent.pid
    kill([psutil.Process(parent.pid)])
    assert gone(parent.pid) and gone(grandchild)


def test_a_process_of_a_test_carries_its_marker() -> None:
    child = spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(3600)"])
    try:
        assert child.stdout is not None
        child.stdout.wait_for("up")
        assert child.pid in {process.pid for process in marked(TEST_ENV, os.environ[TEST_ENV])}
    finally:
        child.stop()


LEAKY_TESTS = """
import subprocess

import pytest


@pytest.fixture(scope="module")
def server():
    yield subprocess.Popen(["sleep", "3600"])  # never stopped: left to the run's end


def test_leaves_a_grandchild():
    subprocess.Popen(["sh", "-c", "sleep 3600 & echo $! > {pidfile}"]).wait()


def test_uses_the_server(server):
    open({serverfile!r}, "w").write(str(server.pid))
"""


def test_the_run_ends_a_tests_leftovers_and_fails_on_the_runs(tmp_path: Path) -> None:
    """A process a test leaves is killed when the test ends; one left at the end of the run fails the run."""
    pidfile, serverfile = tmp_path / "grandchild.pid", tmp_path / "server.pid"
    tests = tmp_path / "test_leaky.py"
    tests.write_text(textwrap.dedent(LEAKY_TESTS).format(pidfile=pidfile, serverfile=str(serverfile)))
    env = {key: value for key, value in os.environ.items() if key not in ("TESTKIT_RUN", TEST_ENV)}
    try:
        done = run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", str(tests)], cwd=ROOT, env=env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "2 passed" in done.stdout and "processes left by the run (killed)" in done.stdout, done.stdout
        assert "test_leaky.py::test_leaves_a_grandchild: pid" in done.stdout, done.stdout
        assert gone(int(pidfile.read_text())) and gone(int(serverfile.read_text()))
    finally:  # the inner run's processes carry its markers, not this test's: end them here should it have failed
        for left in (pidfile, serverfile):
            if left.exists() and not gone(int(left.read_text())):
                kill([psutil.Process(int(left.read_text()))])
