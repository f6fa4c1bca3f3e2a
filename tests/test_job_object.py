"""The Windows Job Object around every child (sdprep/jobs/job_object.py), with a fake of the Win32 calls: the job is
made kill-on-close, the child joins it, stopping a child ends the whole job, and any refusal falls back cleanly."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

import pytest

from sdprep.jobs import process as process_module
from sdprep.jobs.job_object import (
    JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    PROCESS_SET_QUOTA,
    PROCESS_TERMINATE,
    ExtendedLimits,
    JobObject,
    contain,
)
from sdprep.jobs.process import ChildProcess


class FakeKernel32:
    """Records each call; `refuse` names a call that fails (returns 0) the way Win32 does."""

    def __init__(self, refuse: str = "") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = refuse
        self.flags: int | None = None

    def _answer(self, name: str, value: int, *args: Any) -> int:
        self.calls.append((name, *args))
        return 0 if name == self.refuse else value

    def CreateJobObjectW(self, attributes: Any, name: Any) -> int:
        return self._answer("CreateJobObjectW", 100, attributes, name)

    def SetInformationJobObject(self, job: Any, info_class: int, info: Any, size: int) -> int:
        limits = ctypes.cast(info, ctypes.POINTER(ExtendedLimits)).contents
        self.flags = int(limits.BasicLimitInformation.LimitFlags)
        return self._answer("SetInformationJobObject", 1, job, info_class, size)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        return self._answer("OpenProcess", 200, access, inherit, pid)

    def AssignProcessToJobObject(self, job: Any, process: Any) -> int:
        return self._answer("AssignProcessToJobObject", 1, job, process)

    def TerminateJobObject(self, job: Any, exit_code: int) -> int:
        return self._answer("TerminateJobObject", 1, job, exit_code)

    def CloseHandle(self, handle: Any) -> int:
        return self._answer("CloseHandle", 1, handle)


def names(kernel32: FakeKernel32) -> list[str]:
    return [call[0] for call in kernel32.calls]


def test_a_child_joins_a_kill_on_close_job_and_stopping_it_ends_the_job() -> None:
    kernel32 = FakeKernel32()
    job = contain(4242, kernel32)
    assert job is not None and kernel32.flags == JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    assert kernel32.calls == [
        ("CreateJobObjectW", None, None),  # no security attributes: the handle is not inherited by the child
        ("SetInformationJobObject", 100, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.sizeof(ExtendedLimits)),
        ("OpenProcess", PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, 4242),
        ("AssignProcessToJobObject", 100, 200),
        ("CloseHandle", 200),  # the process handle only; the job's stays open for the app's life
    ]
    job.terminate()
    job.close()
    job.close()  # once only
    assert kernel32.calls[-2:] == [("TerminateJobObject", 100, 1), ("CloseHandle", 100)]


@pytest.mark.parametrize(
    "refused", ["CreateJobObjectW", "SetInformationJobObject", "OpenProcess", "AssignProcessToJobObject"]
)
def test_a_refusal_leaves_no_handle_open_and_no_job(refused: str) -> None:
    kernel32 = FakeKernel32(refuse=refused)
    assert contain(4242, kernel32) is None
    handles = {"CreateJobObjectW": 100, "OpenProcess": 200}
    opened = [handles[call[0]] for call in kernel32.calls if call[0] in handles and call[0] != refused]
    closed = [call[1] for call in kernel32.calls if call[0] == "CloseHandle"]
    assert sorted(closed) == sorted(opened)


def test_no_job_off_windows() -> None:
    if sys.platform == "win32":
        pytest.skip("Windows makes a real job")
    assert contain(4242) is None


def test_stopping_a_child_also_ends_its_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel32 = FakeKernel32()
    monkeypatch.setattr(process_module, "contain", lambda pid: JobObject(kernel32, 7))
    child = ChildProcess.spawn([sys.executable, "-c", "import time; time.sleep(30)"], {}, tmp_path)
    assert child.job is not None
    child.stop(grace=0.5)
    assert child.process.poll() is not None
    assert kernel32.calls == [("TerminateJobObject", 7, 1), ("CloseHandle", 7)]
