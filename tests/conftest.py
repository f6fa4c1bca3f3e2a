"""Shared fixtures: isolated lock/cache folders per test, and the process guard of the run.

The process guard: every process started during the run carries the run's marker in its environment, and every
process started during a test the test's marker (testkit/processes.py). When a test ends (passed, failed or timed
out) its processes are killed, group first, then stragglers by parent pid; at the end of the run any process of the
run still alive is killed and fails the run.

The helpers tests import from here (ROOT, STANDIN, run_cli, runtime_defaults, said) live in the `testkit` package.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

# gradio and gradio_client report usage to their makers unless told not to; tests must not reach the network.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Nor the Hugging Face Hub: the id check answers "off" unless a test serves a fake Hub and turns it on.
os.environ["HF_HUB_OFFLINE"] = "1"
# The stand-in torch plays an NVIDIA GPU, so its driver is played too (uv's override, which setup and the probe read),
# for apps a module starts before any test's own setting as well. UV_CUDA_DRIVER_VERSION=none plays a machine without.
os.environ["UV_CUDA_DRIVER_VERSION"] = "570.86.10"
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.app import runtime_defaults
from testkit.paths import ROOT, STANDIN
from testkit.processes import RUN_ENV, TEST_ENV, describe, kill, marked, new_marker, run_cli
from testkit.timing import machine_factor, wait_until

# A suite started in the background by a shell without job control (`cmd &` in a script) inherits SIGINT ignored, and
# so would every process it starts (exec keeps an ignored signal): the Ctrl-C tests would send a signal no CLI hears.
# A handler here gives each child the default back, as a terminal's Ctrl-C finds it.
signal.signal(signal.SIGINT, signal.default_int_handler)

__all__ = ["ROOT", "STANDIN", "run_cli", "runtime_defaults", "said"]

if TYPE_CHECKING:
    from sdprep.config import RuntimeDefaults

LEFT_BEHIND = pytest.StashKey[list[str]]()

# The quick tier (`bash run_tests.sh --quick`, `pytest -m core`): the pure core, in one process, starting no app
# (no build, check, probe or server; the stand-in's config loader may run in a child Python). A module of such tests
# joins by its name here or by `pytestmark = pytest.mark.core`.
CORE_MODULES = frozenset(
    {
        "test_architecture.py",
        "test_background.py",
        "test_command_line.py",
        "test_core_config.py",
        "test_core_derive.py",
        "test_core_rules.py",
        "test_core_validate.py",
        "test_declarations.py",
        "test_text.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in CORE_MODULES:
            item.add_marker(pytest.mark.core)


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_ENV] = new_marker()
    config.stash[LEFT_BEHIND] = []


def pytest_report_header() -> str:
    return f"machine factor {machine_factor():.2f} (budgets of user-felt waits are scaled by it)"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any process it started is still alive (after a moment for those already ending)."""
    run = os.environ.get(RUN_ENV, "")
    try:
        wait_until(lambda: not marked(RUN_ENV, run), "the run's processes to end", timeout=5)
        left: list[psutil.Process] = []
    except AssertionError:
        left = marked(RUN_ENV, run)
    lines = session.config.stash.get(LEFT_BEHIND, []) + describe(left)
    kill(left)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if lines and reporter is not None:
        title = "processes left by the run (killed)" if left else "processes left by tests (killed when they ended)"
        reporter.ensure_newline()
        reporter.write_sep("=", title, red=bool(left), yellow=not left)
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(autouse=True)
def processes_end_with_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every process this test starts (and what those start) is gone when it ends, however it ends."""
    marker = new_marker()
    os.environ[TEST_ENV] = marker
    try:
        yield
    finally:
        os.environ.pop(TEST_ENV, None)
        left = marked(TEST_ENV, marker)
        if left:
            request.config.stash[LEFT_BEHIND].extend(f"{request.node.nodeid}: {line}" for line in describe(left))
            kill(left)


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own GPU lock folder and probe cache, so tests never see each other's builds."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SDPREP_LOCK_DIR", str(state / "locks"))
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(state / "cache"))
    # The estimate is for real engines (gigabytes); the stand-in's are bytes, and a test machine's free disk must not
    # decide unrelated tests. Tests of the disk refusal remove this.
    monkeypatch.setenv("SDPREP_ALLOW_LOW_DISK", "1")
    # A Build rehearses first (jobs/rehearsal.py); the tests of other things build without it, so their stand-in
    # behaviours strike in the build they test. tests/test_rehearsal.py turns it on.
    monkeypatch.setenv("SDPREP_REHEARSE", "0")
    for name in list(os.environ):
        if name.startswith("STANDIN_"):
            monkeypatch.delenv(name)
    # The stand-in torch plays an NVIDIA GPU; its driver is played too, as setup and the probe read it (uv's
    # override). UV_CUDA_DRIVER_VERSION=none plays a machine without one.
    monkeypatch.setenv("UV_CUDA_DRIVER_VERSION", "570.86.10")
    yield


def said(message: object) -> str:
    """A Message (or anything) in the English a person reads: what tests compare sentences against."""
    from sdprep.messages import Message
    from sdprep.text import word

    return word(message) if isinstance(message, Message) else str(message)


@pytest.fixture
def runtime() -> RuntimeDefaults:
    return runtime_defaults()
