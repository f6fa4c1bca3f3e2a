"""Cross-process locks with a note of who holds them: one per GPU, one per model folder.

A GPU runs one build or check at a time, across the UI and CLI processes. A model folder has one writer at a time:
a build, a delete and a Save of the same model exclude each other, also when the builds run on two GPUs. The locks
are OS file locks (filelock): the OS releases them when their holder dies, so a crash never leaves one stuck. Beside
each lock file a small JSON note says who holds it (the job: build, check, save, delete; what it works on; the process),
for the message the waiting side shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sdprep.messages import Message
from sdprep.text import enum_message

LOCK_DIR_ENV = "SDPREP_LOCK_DIR"


def lock_dir() -> Path:
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "sdprep-locks"


class NamedLock:
    """One lock by name. `acquire` waits (telling on_wait once) unless told not to; `release` lets go."""

    def __init__(self, name: str) -> None:
        folder = lock_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.path = folder / f"{name}.lock"
        self.note = folder / f"{name}.holder.json"
        # thread_local=False: the thread that acquires may not be the one that releases (a UI job hands over).
        self._lock = FileLock(self.path, thread_local=False)

    def holder(self) -> dict[str, Any]:
        try:
            note = json.loads(self.note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return note if isinstance(note, dict) else {}

    def acquire(
        self,
        what: str,
        wait: bool = True,
        job: str = "",
        should_stop: Callable[[], bool] = lambda: False,
        on_wait: Callable[[dict[str, Any]], None] = lambda holder: None,
        poll: float = 0.25,
    ) -> bool:
        """Take the lock; while another holds it, call on_wait once and keep trying unless `wait` is off or stopped."""
        told = False
        while True:
            try:
                self._lock.acquire(timeout=0)
                break
            except Timeout:
                if not wait or should_stop():
                    return False
                if not told:
                    on_wait(self.holder())
                    told = True
                time.sleep(poll)
        note = {"pid": os.getpid(), "job": job, "what": what, "since": time.strftime("%H:%M:%S")}
        with contextlib.suppress(OSError):
            self.note.write_text(json.dumps(note), encoding="utf-8")
        return True

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            self.note.unlink()
        self._lock.release(force=True)

    @contextlib.contextmanager
    def held(self, what: str, job: str = "") -> Iterator[bool]:
        """Try once without waiting; yields whether it is held (the with-block decides what to do if not)."""
        got = self.acquire(what, wait=False, job=job)
        try:
            yield got
        finally:
            if got:
                self.release()


def job_message(holder: dict[str, Any]) -> Message:
    """The job a lock note names, in words: "a check" (so a refused Save says what it waits for)."""
    return enum_message("job_", holder.get("job") or "?")


def gpu_lock(gpu: int) -> NamedLock:
    return NamedLock(f"gpu{gpu}")


def model_lock(folder: Path) -> NamedLock:
    """The lock of one model folder, by its resolved path (the lock file lives outside it: it may be deleted)."""
    resolved = str(folder.expanduser().resolve()).encode("utf-8", errors="surrogateescape")
    return NamedLock(f"model-{hashlib.sha1(resolved).hexdigest()[:16]}")
