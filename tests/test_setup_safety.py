"""Setup on a machine where other programs hold files and other processes use the environment (Windows above all).

Failures are injected where setup meets the OS (os.replace and shutil.rmtree raising as Windows does when a virus
scanner holds a file), and the locks are exercised across processes; nothing here installs anything (tests/
test_setup.py does, for real and offline).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sdprep.jobs.process import ChildSpec, venv_python
from sdprep.jobs.progress import JobEvent
from sdprep.locks import environment_gate, environment_of, environment_use, environment_users, setup_lock
from sdprep.messages import Message
from sdprep.setup import folders
from sdprep.setup import job as setup_job
from sdprep.setup.doctor import Doctor, DoctorResult
from sdprep.setup.failures import explain
from sdprep.setup.pins import CUDA_VARIANTS, FORKS
from sdprep.setup.plan import SetupRequest, steps
from sdprep.text import word
from tests.conftest import ROOT, STANDIN, run_cli


def held(path: str = "x") -> PermissionError:
    """What Windows raises for a file a virus scanner holds: WinError 32 (here with the errno Linux would give)."""
    problem = PermissionError(errno.EACCES, "The process cannot access the file because it is being used", path)
    problem.winerror = 32  # type: ignore[attr-defined]
    return problem


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folders, "PAUSE", 0.0)


def fake_venv(folder: Path) -> Path:
    """A folder that looks like a virtual environment (pyvenv.cfg, its python) to the locks."""
    python = venv_python(folder)
    python.parent.mkdir(parents=True)
    python.write_text("")
    (folder / "pyvenv.cfg").write_text("home = /usr\n")
    (folder / "sdprep-setup.json").write_text("{}")
    return folder


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[setup_job.Setup]:
    """A Setup of tmp/.venv-build with an earlier environment there and a proven new one in .partial."""
    target = fake_venv(tmp_path / ".venv-build")
    (target / "old.txt").write_text("the earlier one")
    partial = fake_venv(tmp_path / ".venv-build.partial")
    (partial / "new.txt").write_text("the new one")
    yield setup_job.Setup(SetupRequest(str(target)), lambda event: None, threading.Event())


def failing_replace(monkeypatch: pytest.MonkeyPatch, fails: Callable[[Path, Path], bool]) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real = os.replace

    def replace(source: Any, destination: Any) -> None:
        calls.append((Path(source).name, Path(destination).name))
        if fails(Path(source), Path(destination)):
            raise held(str(source))
        real(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    return calls


# --- the swap -----------------------------------------------------------------------------------------------------
def test_a_rename_held_for_a_moment_is_tried_again(setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    tries = {"partial": 0}

    def fails(source: Path, destination: Path) -> bool:
        if source.name.endswith(".partial"):
            tries["partial"] += 1
            return tries["partial"] <= 2  # a scanner lets go on the third try
        return False

    failing_replace(monkeypatch, fails)
    assert setup.put_in_place() is None
    assert (setup.target / "new.txt").is_file() and not setup.partial.exists()
    assert not list(setup.target.parent.glob(".venv-build.old-*")), "the earlier one is removed after"


def test_the_earlier_environment_comes_back_when_the_new_one_cannot_take_its_place(
    setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = failing_replace(monkeypatch, lambda source, destination: source.name.endswith(".partial"))
    ended = setup.put_in_place()
    assert ended is not None and ended.outcome == "failed" and ended.reason.code == "setup_swap_restored"
    assert (setup.target / "old.txt").read_text() == "the earlier one", "the earlier one is back, unchanged"
    assert "is in place, unchanged" in word(ended.reason)
    assert calls.count((".venv-build.partial", ".venv-build")) == folders.TRIES, "retried before giving up"
    assert not list(setup.target.parent.glob(".venv-build.old-*"))


def test_when_the_earlier_one_cannot_come_back_the_message_says_where_it_is(
    setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_replace(monkeypatch, lambda source, destination: destination.name == ".venv-build")
    ended = setup.put_in_place()
    assert ended is not None and ended.reason.code == "setup_swap_stuck"
    aside = ended.reason.params["aside"]
    assert (Path(aside) / "old.txt").read_text() == "the earlier one" and str(aside) in word(ended.reason)
    assert "unchanged" not in word(ended.reason)


def test_a_failed_first_rename_changes_nothing(setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows: a program outside the app runs from the environment (or holds a file in it) for longer than the retries.
    failing_replace(monkeypatch, lambda source, destination: source.name == ".venv-build")
    ended = setup.put_in_place()
    assert ended is not None and ended.reason.code == "setup_swap_restored" and "virus scanner" in word(ended.reason)
    assert (setup.target / "old.txt").is_file() and setup.partial.is_dir()


# --- removal ----------------------------------------------------------------------------------------------------
def test_removal_retries_a_held_file_and_says_whether_it_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "leftover"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_text("x")
    real = shutil.rmtree
    tries = {"n": 0}

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        tries["n"] += 1
        if tries["n"] <= 2:
            raise held(str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    assert folders.remove_tree(folder) and not folder.exists() and tries["n"] == 3

    (folder / "sub").mkdir(parents=True)
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: (_ for _ in ()).throw(held(str(path))))
    assert folders.remove_tree(folder) is False and folder.exists()


def test_a_partial_environment_that_cannot_be_removed_stops_setup_with_what_to_do(
    setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: (_ for _ in ()).throw(held(str(path))))
    ran: list[str] = []
    monkeypatch.setattr(setup, "run_step", lambda step, again=False: ran.append(step.id))
    result = setup.install(CUDA_VARIANTS[0], FORKS["forkni"], None)
    assert result.outcome == "failed" and result.reason.code == "setup_partial_held" and not ran
    assert str(setup.partial) in word(result.reason) and "virus scanner" in word(result.reason)


def test_the_venv_step_clears_a_leftover_folder(tmp_path: Path) -> None:
    planned = steps(
        SetupRequest(str(tmp_path / "v")), CUDA_VARIANTS[0], FORKS["forkni"], tmp_path / "p", tmp_path / "c"
    )
    assert "--clear" in planned[0].command and planned[0].id == "venv"


def test_earlier_environments_left_by_a_held_file_go_with_the_next_setup(setup: setup_job.Setup) -> None:
    leftover = setup.target.with_name(".venv-build.old-20260101-000000")
    (leftover / "Lib").mkdir(parents=True)
    setup.remove_leftovers()
    assert not leftover.exists() and setup.target.is_dir()


# --- the first self-test ------------------------------------------------------------------------------------------
def test_a_first_self_test_gets_a_longer_limit_and_a_timeout_keeps_the_environment(
    setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits: list[float] = []

    class SlowDoctor(Doctor):
        def run(self) -> DoctorResult:
            limits.append(self.timeout)
            return self.result("failed", Message("doctor_timeout", {"seconds": int(self.timeout)}))

    def install_step(step: Any, again: bool = False) -> None:
        if step.id == "venv":
            fake_venv(setup.partial)

    monkeypatch.setattr(setup_job, "Doctor", SlowDoctor)
    monkeypatch.setattr(setup, "run_step", install_step)
    result = setup.install(CUDA_VARIANTS[0], FORKS["forkni"], None)
    assert limits == [setup_job.FIRST_SELF_TEST_TIMEOUT] and setup_job.FIRST_SELF_TEST_TIMEOUT >= 600
    assert result.outcome == "failed" and result.reason.code == "setup_self_test_timeout"
    assert setup.partial.is_dir(), "kept, so doctor can be run on it again"
    assert f"doctor --python {venv_python(setup.partial)}" in word(result.reason)
    assert (setup.target / "old.txt").is_file(), "the earlier one still works"


# --- disk ---------------------------------------------------------------------------------------------------------
def test_free_space_is_checked_on_the_drive_of_uvs_cache_too(
    setup: setup_job.Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to reach the disk check")
    cache = tmp_path / "C-drive" / "uv" / "cache"
    monkeypatch.setattr(setup_job, "uv_cache_dir", lambda: cache)
    monkeypatch.setattr(setup_job, "same_drive", lambda first, second: False)
    monkeypatch.setattr(setup_job, "disk_free", lambda path: 3 * 1024**3 if "C-drive" in str(path) else 500 * 1024**3)
    refused = setup.prerequisites(FORKS["forkni"])
    assert refused is not None and refused.outcome == "refused" and refused.reason.code == "setup_cache_disk"
    assert str(cache) in word(refused.reason) and "UV_CACHE_DIR" in word(refused.reason)
    monkeypatch.setattr(setup_job, "same_drive", lambda first, second: True)
    assert setup.prerequisites(FORKS["forkni"]) is None, "on the target's drive, the target's check covers it"


def test_uvs_cache_folder_is_asked_of_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "my-cache"))
    assert setup_job.uv_cache_dir() == tmp_path / "my-cache"


# --- the failure table ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "reason", "fix"),
    [
        (
            "error: Failed to install: torch-2.8.0\n  Caused by: There is not enough space on the disk. (os error 112)",
            "disk is full",
            "Free some space",
        ),
        (
            "error: failed to create file `C:\\Users\\x\\sd\\.venv-build.partial\\Lib\\site-packages\\nvidia\\...`: "
            "The filename or extension is too long. (os error 206)",
            "longer than Windows allows",
            "LongPathsEnabled",
        ),
        ("error: failed to remove file: Access is denied. (os error 5)", "refused access", "Program Files"),
        (
            "PermissionError: [WinError 32] The process cannot access the file because it is being used by another "
            "process",
            "Another program holds",
            "Close programs",
        ),
        (
            "error: Failed to create virtual environment\n  Caused by: A directory already exists at: .venv-build.partial"
            "\nhint: Use the `--clear` flag",
            "left by an earlier try",
            ".venv-build.partial",
        ),
        (
            "error: Request failed after 3 retries\n  Caused by: Failed to fetch: `https://pypi.org/simple/torch/`\n"
            "  Caused by: error sending request for url (https://pypi.org/simple/torch/)\n"
            "  Caused by: invalid peer certificate: UnknownIssuer",
            "company proxy",
            "UV_NATIVE_TLS=1",
        ),
    ],
)
def test_windows_failures_are_named_with_their_fix(text: str, reason: str, fix: str) -> None:
    explained = explain(text)
    assert explained is not None, text
    said = word(explained)
    assert reason in said and fix in said
    assert word(explained, "ru") != said


def test_an_error_number_is_not_read_inside_a_longer_one() -> None:
    assert explain("failed (os error 52)") is None


# --- the locks ------------------------------------------------------------------------------------------------------
def test_an_environment_is_known_by_its_python_and_a_system_python_by_none(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "env")
    assert environment_of(str(venv_python(venv))) == venv
    assert environment_of(str(tmp_path / "python")) is None


def test_who_runs_from_an_environment_is_known_and_leftovers_are_cleared(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "env")
    use = environment_use(venv)
    assert use.acquire("build of m (fast)", wait=False)
    assert [user["what"] for user in environment_users(venv)] == ["build of m (fast)"]
    use.release()
    assert environment_users(venv) == [] and not use.path.exists(), "an ended use leaves nothing behind"


def test_setup_waits_for_a_build_running_from_the_target_or_is_busy(setup: setup_job.Setup) -> None:
    use = environment_use(setup.target)
    assert use.acquire("build of m (fast)", wait=False)
    try:
        setup.wait = False
        busy = setup.put_in_place()
        assert busy is not None and busy.outcome == "busy" and busy.exit_code == 4
        assert "build of m (fast)" in word(busy.reason) and str(os.getpid()) in word(busy.reason)
        assert (setup.target / "old.txt").is_file(), "nothing replaced while it runs"

        setup.wait = True
        events: list[JobEvent] = []
        setup.progress.on_event = events.append
        done: list[Any] = []
        swapping = threading.Thread(target=lambda: done.append(setup.put_in_place()))
        swapping.start()
        while not any(event.message.code == "setup_users_waiting" for event in events):
            swapping.join(0.05)
        assert (setup.target / "old.txt").is_file() and not done
    finally:
        use.release()
    swapping.join(30)
    assert done == [None] and (setup.target / "new.txt").is_file()


def test_a_child_does_not_start_from_an_environment_setup_is_replacing(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "env")
    gate = environment_gate(venv)
    assert gate.acquire("setup of env", wait=False)
    events: list[JobEvent] = []
    doctor = Doctor(ChildSpec(python=str(venv_python(venv))), events.append, threading.Event())
    entered: list[Any] = []
    starting = threading.Thread(target=lambda: entered.append(doctor.enter_environment("self_test.py")))
    starting.start()
    try:
        while not any(event.message.code == "environment_waiting" for event in events):
            starting.join(0.05)
        assert not entered and environment_users(venv) == []
    finally:
        gate.release()
    starting.join(30)
    use = entered[0]
    assert use is not None and not isinstance(use, bool)
    assert [user["pid"] for user in environment_users(venv)] == [os.getpid()]
    use.release()


def test_a_second_setup_of_a_target_is_busy_with_who_holds_it(tmp_path: Path) -> None:
    target = tmp_path / ".venv-build"
    lock = setup_lock(target.resolve())
    assert lock.acquire("setup of the page", wait=False)
    try:
        busy = run_cli("setup", "--target", str(target), "--no-wait", "--fork", "forkni")
    finally:
        lock.release()
    assert busy.returncode == 4, busy.stdout + busy.stderr
    assert "Another setup of" in busy.stderr and "setup of the page" in busy.stderr
    assert f"process {os.getpid()}" in busy.stderr and not target.exists()


def test_a_cli_build_waits_while_setup_replaces_its_environment(tmp_path: Path) -> None:
    """Across processes: the gate held (as setup holds it while swapping) keeps a build from starting its child."""
    environment = environment_of(sys.executable)
    if environment is None:
        pytest.skip("the tests' Python is not in a virtual environment")
    gate = environment_gate(environment)
    assert gate.acquire("setup of the test", wait=False)
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN), "PYTHONUNBUFFERED": "1"}
    build = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "gradio_prepare.py"),
            "build",
            "--engines-dir",
            str(tmp_path / "engines"),
            "--python",
            sys.executable,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert build.stdout is not None
        said = []
        for line in build.stdout:
            said.append(line)
            if "setup is replacing the build environment" in line:
                break
        assert build.poll() is None and not list((tmp_path / "engines").glob("*/config.yaml"))
        gate.release()
        rest, _ = build.communicate(timeout=120)
    finally:
        gate.release()
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 0, "".join(said) + rest
    assert list((tmp_path / "engines").glob("*/config.yaml"))


def test_with_no_wait_a_build_running_from_the_target_refuses_setup_before_any_install(
    setup: setup_job.Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to reach the check")
    monkeypatch.setattr(setup_job, "disk_free", lambda path: 500 * 1024**3)
    use = environment_use(setup.target)
    assert use.acquire("check of m/config.yaml", wait=False)
    try:
        setup.wait = False
        busy = setup.prerequisites(FORKS["forkni"])
    finally:
        use.release()
    assert busy is not None and busy.outcome == "busy" and "check of m/config.yaml" in word(busy.reason)
    assert setup.prerequisites(FORKS["forkni"]) is None
