"""Renaming and removing whole environments on a machine where other programs hold files for a moment.

On Windows a virus scanner, the search indexer or OneDrive opens fresh files for a moment, and a rename or delete
then fails with "access denied" (WinError 5) or "in use by another process" (WinError 32); a second try a moment
later works. So every rename and removal of an environment retries a few times before it gives up, and the swap of
a new environment for the old one puts the old one back when the new one cannot take its place.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRIES = 5
PAUSE = 0.5  # seconds between tries, doubled each time: 0.5 + 1 + 2 + 4 = 7.5 s in all
_WINDOWS_HELD = (5, 32, 33)  # access denied, sharing violation, lock violation
_HELD_ERRNOS = (errno.EACCES, errno.EPERM, errno.EBUSY, errno.ENOTEMPTY)


def held_for_a_moment(problem: OSError) -> bool:
    """Whether another program may let go of the file soon (worth another try), as opposed to a lasting fault."""
    winerror = getattr(problem, "winerror", None)
    return winerror in _WINDOWS_HELD or problem.errno in _HELD_ERRNOS


def retrying(operation: Callable[[], None]) -> None:
    """Run `operation`; again after a pause while it fails with a file that is held; the last failure is raised."""
    for attempt in range(TRIES):
        try:
            operation()
            return
        except OSError as problem:
            if attempt == TRIES - 1 or not held_for_a_moment(problem):
                raise
            time.sleep(PAUSE * 2**attempt)


def rename(source: Path, destination: Path) -> None:
    retrying(lambda: os.replace(source, destination))


def _writable_then_again(function: Callable[..., Any], path: str, *_: Any) -> None:
    """A read-only file (git's objects on Windows) cannot be deleted there until it is made writable."""
    os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
    function(path)


def _remove_once(folder: Path) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=_writable_then_again)
    else:
        shutil.rmtree(folder, onerror=_writable_then_again)


def remove_tree(folder: Path) -> bool:
    """Remove `folder` and everything in it, retrying files that are held; whether it is gone (a file still held
    after the tries stays, and the caller says so: nothing here raises)."""
    try:
        retrying(lambda: _remove_once(folder) if folder.exists() else None)
    except OSError:
        pass
    return not folder.exists()


class SwapFailed(Exception):
    """The new environment could not take the target's place. `restored`: the target is as it was (the old one is
    back, or there was none); else the old one is at `aside`."""

    def __init__(self, problem: OSError, restored: bool, aside: Path | None) -> None:
        super().__init__(str(problem))
        self.problem, self.restored, self.aside = problem, restored, aside


def swap_in(new: Path, target: Path, aside: Path) -> bool:
    """Put `new` at `target`; an existing target is renamed to `aside` first and removed after. If either rename
    fails (after its retries), the old one is renamed back where needed (SwapFailed says whether the target is as
    it was). Returns whether the old one
    is gone entirely (False: a held file kept part of `aside`, which the next setup need not care about)."""
    had_old = target.exists()
    if had_old:
        try:
            rename(target, aside)
        except OSError as problem:  # nothing has changed yet
            raise SwapFailed(problem, restored=True, aside=None) from problem
    try:
        rename(new, target)
    except OSError as problem:
        if not had_old:
            raise SwapFailed(problem, restored=True, aside=None) from problem
        try:
            rename(aside, target)
        except OSError:
            raise SwapFailed(problem, restored=False, aside=aside) from problem
        raise SwapFailed(problem, restored=True, aside=None) from problem
    return remove_tree(aside) if had_old else True
