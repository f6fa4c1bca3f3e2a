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
import itertools
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


# --- a build environment: many users at once, or one setup replacing it ---------------------------------------
# Builds, checks and self-tests run a child from a build environment; setup replaces that environment with a
# renamed one. Each running child holds a lock of its own ("use"), registered through the environment's gate;
# setup holds the gate while it waits for the uses to end and swaps the folders, so no child starts from an
# environment that is being replaced and none is running when it goes. Two setups of one target exclude each other
# on a lock of their own for the whole run (the install takes minutes; only the swap needs the gate).
_uses = itertools.count()


def _folder_key(folder: Path) -> str:
    resolved = str(folder.expanduser().resolve()).encode("utf-8", errors="surrogateescape")
    return hashlib.sha1(resolved).hexdigest()[:16]


def environment_of(python: str) -> Path | None:
    """The virtual environment an interpreter belongs to (`<env>/bin/python`, `<env>\\Scripts\\python.exe`), or
    None for one outside any (a system Python: no setup replaces it). The link a venv's python is, is not followed."""
    executable = Path(os.path.abspath(os.path.expanduser(python)))
    folder = executable.parent.parent
    if executable.parent.name not in ("bin", "Scripts") or not (folder / "pyvenv.cfg").is_file():
        return None
    return folder


def setup_lock(target: Path) -> NamedLock:
    """One setup per target folder, across processes."""
    return NamedLock(f"setup-{_folder_key(target)}")


def environment_gate(environment: Path) -> NamedLock:
    """Held by setup while it replaces `environment`; taken briefly by each child that starts from it."""
    return NamedLock(f"envgate-{_folder_key(environment)}")


def environment_use(environment: Path) -> NamedLock:
    """A new lock that says "a child runs from `environment`" while held (one per child, never shared)."""
    return NamedLock(f"envuse-{_folder_key(environment)}-{os.getpid()}-{next(_uses)}")


def environment_users(environment: Path) -> list[dict[str, Any]]:
    """Who runs a child from `environment` now (their notes); leftovers of ended processes are removed.
    Call it holding the environment's gate, so no new user registers meanwhile."""
    users = []
    for path in sorted(lock_dir().glob(f"envuse-{_folder_key(environment)}-*.lock")):
        use = NamedLock(path.name.removesuffix(".lock"))
        if use.acquire("setup", wait=False):  # its holder has ended: nobody uses it
            use.release()
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        users.append(use.holder())
    return users
