"""Output that never fails on a code page.

With output redirected (`run.bat setup > log.txt`), or a console in cp1251/cp1252, Python encodes what it prints in
the ANSI code page, where the marks this app prints (✔ ✘ ⚠ ⊘ →) do not exist: a strict encoder would end the command
half-way (after a 15-minute install, at the self-test's first ✔). Every stream the CLI writes to therefore keeps its
encoding (what a reader of the file or console expects) and writes what that encoding lacks as a close ASCII
stand-in ("✔" -> "+"), or "?". A console that takes Unicode (Windows' own console API, any UTF-8 terminal) shows the
marks as they are; run.bat also sets PYTHONUTF8=1, so a redirected file there is UTF-8 in the first place.
"""

from __future__ import annotations

import codecs
from typing import TextIO

ERRORS = "sdprep-ascii"
ASCII = {
    "✔": "+",
    "✘": "x",
    "⚠": "!",
    "⊘": "-",
    "■": "#",
    "⚙": "*",
    "→": "->",
    "←": "<-",
    "—": "-",
    "–": "-",
    "…": "...",
    "·": "-",
    "×": "x",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "«": '"',
    "»": '"',
    "≈": "~",
    "≥": ">=",
    "≤": "<=",
}


def _ascii_instead(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    lacking = error.object[error.start : error.end]
    return "".join(ASCII.get(character, "?") for character in lacking), error.end


codecs.register_error(ERRORS, _ascii_instead)


def never_fail(*streams: TextIO) -> None:
    """Make each stream write what its encoding lacks as ASCII stand-ins instead of raising UnicodeEncodeError (also
    in UTF-8: a file name with undecodable bytes is a lone surrogate there). Streams that cannot be reconfigured
    (StringIO in tests) can encode anything and are left as they are."""
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            try:
                reconfigure(errors=ERRORS)
            except (ValueError, OSError):  # a closed stream, or one that refuses: nothing to protect then
                pass
