"""A Windows Job Object around each child: its whole process tree dies with the app.

Windows has no process groups to signal: psutil finds a child's descendants only while their parents live, and when
the app itself is ended (Task Manager, a closed console) its children keep running, a build holding the GPU. A Job
Object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE fixes both: every process the child starts joins its job, ending the
job ends them all (orphans too), and Windows closes the app's handle when the app dies, which ends the job.

Elsewhere `contain` returns None: a child's own session (start_new_session) does the same job with killpg.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import c_int64, c_size_t, c_uint32, c_uint64
from typing import Any, Protocol

JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9  # JOBOBJECTINFOCLASS
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100


class _BasicLimits(ctypes.Structure):
    _fields_ = (
        ("PerProcessUserTimeLimit", c_int64),
        ("PerJobUserTimeLimit", c_int64),
        ("LimitFlags", c_uint32),
        ("MinimumWorkingSetSize", c_size_t),
        ("MaximumWorkingSetSize", c_size_t),
        ("ActiveProcessLimit", c_uint32),
        ("Affinity", c_size_t),
        ("PriorityClass", c_uint32),
        ("SchedulingClass", c_uint32),
    )


class _IoCounters(ctypes.Structure):
    _fields_ = tuple(
        (name, c_uint64)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    )


class ExtendedLimits(ctypes.Structure):
    """JOBOBJECT_EXTENDED_LIMIT_INFORMATION."""

    _fields_ = (
        ("BasicLimitInformation", _BasicLimits),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", c_size_t),
        ("JobMemoryLimit", c_size_t),
        ("PeakProcessMemoryUsed", c_size_t),
        ("PeakJobMemoryUsed", c_size_t),
    )


class Kernel32(Protocol):
    """The Win32 calls this module makes (kernel32.dll; a fake in tests)."""

    def CreateJobObjectW(self, attributes: Any, name: Any) -> Any: ...
    def SetInformationJobObject(self, job: Any, info_class: int, info: Any, size: int) -> int: ...
    def OpenProcess(self, access: int, inherit: bool, pid: int) -> Any: ...
    def AssignProcessToJobObject(self, job: Any, process: Any) -> int: ...
    def TerminateJobObject(self, job: Any, exit_code: int) -> int: ...
    def CloseHandle(self, handle: Any) -> int: ...


def _kernel32() -> Kernel32:
    from ctypes import wintypes

    dll: Any = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    handle = wintypes.HANDLE
    dll.CreateJobObjectW.argtypes, dll.CreateJobObjectW.restype = (ctypes.c_void_p, wintypes.LPCWSTR), handle
    dll.SetInformationJobObject.argtypes = (handle, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD)
    dll.SetInformationJobObject.restype = wintypes.BOOL
    dll.OpenProcess.argtypes, dll.OpenProcess.restype = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD), handle
    dll.AssignProcessToJobObject.argtypes, dll.AssignProcessToJobObject.restype = (handle, handle), wintypes.BOOL
    dll.TerminateJobObject.argtypes, dll.TerminateJobObject.restype = (handle, wintypes.UINT), wintypes.BOOL
    dll.CloseHandle.argtypes, dll.CloseHandle.restype = (handle,), wintypes.BOOL
    return dll  # type: ignore[no-any-return]


class JobObject:
    """One child's job: `terminate()` ends every process in it; `close()` lets go of it, which ends them too."""

    def __init__(self, kernel32: Kernel32, handle: Any) -> None:
        self.kernel32 = kernel32
        self.handle: Any = handle

    def terminate(self, exit_code: int = 1) -> None:
        if self.handle:
            self.kernel32.TerminateJobObject(self.handle, exit_code)

    def close(self) -> None:
        if self.handle:
            handle, self.handle = self.handle, None
            self.kernel32.CloseHandle(handle)


def contain(pid: int, kernel32: Kernel32 | None = None) -> JobObject | None:
    """Put a just-started child in a new kill-on-close job; None off Windows, or when Windows refuses (the psutil
    path still stops the child then)."""
    if kernel32 is None:
        if os.name != "nt":
            return None
        try:
            kernel32 = _kernel32()
        except (AttributeError, OSError):
            return None
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return None
    limits = ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    contained = JobObject(kernel32, job)
    if not kernel32.SetInformationJobObject(
        job, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits), ctypes.sizeof(limits)
    ):
        contained.close()
        return None
    process = kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
    if not process:
        contained.close()
        return None
    try:
        assigned = kernel32.AssignProcessToJobObject(job, process)
    finally:
        kernel32.CloseHandle(process)
    if not assigned:
        contained.close()
        return None
    return contained
