"""The server's C heap: at most two malloc arenas where the C library is glibc, so that memory freed by the page's
many short events is reused rather than kept.

glibc gives threads their own malloc arenas, up to eight per core, and each keeps what its threads freed for its
own later use. The server runs every page event on one of Gradio's worker threads, whichever is free, so in a soak
(docs/reliability.md) the free memory held in those arenas grew all the time (3 -> 14 MB in 5 minutes, the server's
RSS with it) while the memory in use stayed level; with two arenas it stayed at 2-6 MB. The server's own work is
I/O and small parsing (the build runs in a child process), so threads sharing two arenas wait on each other
very little.

It is glibc's own `MALLOC_ARENA_MAX` setting, made at start-up: a MALLOC_ARENA_MAX in the environment (glibc reads
it itself) is left to decide. On Windows, macOS or another C library nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Allow `arenas` malloc arenas from now on (threads made later share them); whether the setting was made."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
