"""Disk use under the engines folder: the bytes of a folder, of each model folder, of the whole folder, and the free
space on its disk, cheap enough for every library refresh.

A folder's size is the sum of its regular files, links not followed (a link's target is not this folder's), working
folders (.aside) included: they take disk too. Each folder's own listing is kept by the folder's (mtime, inode), so a
refresh of an unchanged library only stats folders, not every file (at 300 builds: ~1.5 ms instead of ~13 ms). A
folder's mtime changes when an entry is added, removed or renamed, which is how the app and the fork write (atomic
replaces, new files); a listing with a file written in the last two seconds is not kept (it may still be growing).
What that leaves: a file appended in place in a folder that has not changed since (a log) is counted as it was when
its folder last changed, until the folder changes again.
"""

from __future__ import annotations

import os
import stat as stat_mode
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from sdprep.estimate import free_space
from sdprep.paths import RACY_NS

MAX_DEPTH = 16  # engines sit a few folders down; deeper is not a layout of this app or the fork
_CACHE_SIZE = 16384  # folders; an entry is a few names


@dataclass(frozen=True)
class _Listing:
    files: int  # the bytes of the regular files directly inside
    folders: tuple[str, ...]  # the sub-folders' names (links excluded)


_LISTINGS: OrderedDict[str, tuple[tuple[int, int], _Listing]] = OrderedDict()
_LOCK = threading.Lock()


def _listing(path: str) -> _Listing | None:
    """One folder's own files and sub-folders; None when it is gone or not a folder."""
    try:
        found = os.stat(path, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    if not stat_mode.S_ISDIR(found.st_mode):
        return None
    key = (found.st_mtime_ns, found.st_ino)
    with _LOCK:
        hit = _LISTINGS.get(path)
        if hit is not None and hit[0] == key:
            _LISTINGS.move_to_end(path)
            return hit[1]
    files, folders, newest = 0, [], found.st_mtime_ns
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        files += info.st_size
                        newest = max(newest, info.st_mtime_ns)
                except OSError:  # gone since the listing
                    continue
    except OSError:
        return None
    listing = _Listing(files, tuple(folders))
    if time.time_ns() - newest >= RACY_NS:
        with _LOCK:
            _LISTINGS[path] = (key, listing)
            _LISTINGS.move_to_end(path)
            while len(_LISTINGS) > _CACHE_SIZE:
                _LISTINGS.popitem(last=False)
    return listing


def folder_size(folder: Path) -> int:
    """The bytes of every regular file under `folder` (links not followed); 0 when it is not there. A sub-folder that
    vanishes during the count is skipped."""
    total = 0
    pending = [(str(folder), 0)]
    while pending:
        current, depth = pending.pop()
        listing = _listing(current)
        if listing is None:
            continue
        total += listing.files
        if depth < MAX_DEPTH:
            pending.extend((os.path.join(current, name), depth + 1) for name in listing.folders)
    return total


@dataclass(frozen=True)
class DiskUse:
    """The engines folder's bytes, each top-level entry's (a model folder, the shared timing cache), and the free
    space on its disk."""

    total: int = 0
    entries: dict[str, int] = field(default_factory=dict)
    free: int | None = None


def disk_use(root: Path) -> DiskUse:
    """The engines folder's disk use; an empty one when there is no such folder."""
    listing = _listing(str(root))
    if listing is None:
        return DiskUse(free=free_space(root))
    entries = {name: folder_size(root / name) for name in listing.folders}
    return DiskUse(listing.files + sum(entries.values()), entries, free_space(root))


def clear_cache() -> None:
    with _LOCK:
        _LISTINGS.clear()
