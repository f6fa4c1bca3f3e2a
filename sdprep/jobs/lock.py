"""One build per GPU at a time, across processes: the UI and a CLI build cannot share a GPU.

An OS file lock (released by the OS when its holder dies, so a crash never leaves it stuck) on a file per GPU
in a folder every process of this user agrees on. Beside it, a note says who holds it, for the message the
waiting build shows.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

LOCK_DIR_ENV = "SDPREP_LOCK_DIR"


def lock_dir() -> Path:
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "sdprep-locks"


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        pass


class GpuLock:
    def __init__(self, gpu: int) -> None:
        self.gpu = gpu
        folder = lock_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"gpu{gpu}.lock"
        self.note = folder / f"gpu{gpu}.holder.json"
        self._handle: IO[bytes] | None = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def acquire(
        self,
        what: str,
        wait: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
        on_wait: Callable[[dict[str, Any]], None] = lambda holder: None,
        poll: float = 0.25,
    ) -> bool:
        """Take the lock; while another process holds it, call on_wait once and keep trying unless stopped."""
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        told = False
        while not _try_lock(handle):
            if not wait or should_stop():
                handle.close()
                return False
            if not told:
                on_wait(self.holder())
                told = True
            time.sleep(poll)
        self._handle = handle
        note = {"pid": os.getpid(), "what": what, "since": time.strftime("%H:%M:%S")}
        self.note.write_text(json.dumps(note), encoding="utf-8")
        return True

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self.note.unlink()
        except OSError:
            pass
        _unlock(self._handle)
        self._handle.close()
        self._handle = None
