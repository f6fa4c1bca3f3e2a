"""What the core says to people, as codes with parameters: worded later, in English or Russian, by sdprep.text.

The core never formats a sentence. A rule, a build or the environment returns `Message(code, params)`; the CLI and
the web page word it from one table (sdprep/text/en.py and ru.py, the same keys), so every message exists in both
languages and a test can walk them all. Values that need words of their own travel as small types: a nested
Message, a Size in bytes, a Duration in seconds, a Field name; sdprep.text renders each in the reader's language. A
Quote is the one value never translated: a program's own words (an exception, a parser's complaint), shown as code.
"""

from __future__ import annotations

import errno
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Message:
    """A code from the text table and the values its sentence needs."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.code, tuple(sorted((key, repr(value)) for key, value in self.params.items()))))


def msg(code: str, /, **params: Any) -> Message:
    return Message(code, params)


@dataclass(frozen=True)
class Size:
    """A number of bytes, worded in binary units ("139.8 GiB")."""

    bytes: int | float


@dataclass(frozen=True)
class Duration:
    """A number of seconds, worded for people ("6 min 12 s")."""

    seconds: float


@dataclass(frozen=True)
class Field:
    """A parameter's name: the CLI words it as its flag (--steps), the page as its label."""

    name: str


@dataclass(frozen=True)
class Quote:
    """Text in another program's own words (Python's "No module named 'tensorrt'"): shown as code, as written.

    The sentence around it is in the reader's language; the quote is what they would search the web for.
    """

    text: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong (error: refuses the build) or worth knowing (warning) about one field."""

    field: str  # a BakedParams field name, or "controlnets[i].<slot field>"
    severity: Severity
    message: Message

    def __str__(self) -> str:
        from sdprep.text import word  # the English wording, for logs and assertion messages

        return f"{self.severity}: {self.field}: {word(self.message)}"


def error(field_name: str, code: str, /, **params: Any) -> Problem:
    return Problem(field_name, "error", Message(code, params))


def warning(field_name: str, code: str, /, **params: Any) -> Problem:
    return Problem(field_name, "warning", Message(code, params))


def to_json(value: Any) -> Any:
    """A Message (and what its params hold) as plain JSON, to keep in build.json and word later."""
    if isinstance(value, Message):
        return {"code": value.code, "params": {key: to_json(item) for key, item in value.params.items()}}
    if isinstance(value, Size):
        return {"size": value.bytes}
    if isinstance(value, Duration):
        return {"seconds": value.seconds}
    if isinstance(value, Field):
        return {"field": value.name}
    if isinstance(value, Quote):
        return {"quote": value.text}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def from_json(value: Any) -> Any:
    """The inverse of to_json (unknown shapes come back as they are)."""
    if isinstance(value, dict):
        if set(value) == {"code", "params"} and isinstance(value["params"], dict):
            return Message(str(value["code"]), {key: from_json(item) for key, item in value["params"].items()})
        if set(value) == {"size"}:
            return Size(value["size"])
        if set(value) == {"seconds"}:
            return Duration(value["seconds"])
        if set(value) == {"field"}:
            return Field(str(value["field"]))
        if set(value) == {"quote"}:
            return Quote(str(value["quote"]))
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


LINE_LIMIT = 2000  # characters of one line a page or a result shows; the log file keeps the rest


def cut(text: str, limit: int = LINE_LIMIT) -> str:
    """`text`, or its first `limit` characters and how many more there were: a line from a log or another program
    has no bound of its own, and a page (or a terminal) should not receive a megabyte of one line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more)"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 80, 40, 40
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 6


def shown(value: Any, limit: int = 60) -> str:
    """A value from a file or a client as Python writes it, for a message: cut while written (reprlib looks at a
    few items of each level, a few levels deep), never repr() of the whole, which may stand for billions of items."""
    try:
        return cut(_SHORT.repr(value), limit)
    except ValueError:  # an int past Python's 4300 digits, which refuses to be written in full
        return f"<{type(value).__name__}>"


def has_errors(problems: list[Problem]) -> bool:
    return any(problem.severity == "error" for problem in problems)


# The OS errors a person can act on, worded in their language; any other keeps the system's own words as a Quote.
_ERRNO_CODES = {
    errno.EACCES: "os_denied",
    errno.EPERM: "os_denied",
    errno.ENOSPC: "os_disk_full",
    errno.EDQUOT: "os_disk_full",
    errno.ENOENT: "os_not_found",
    errno.EROFS: "os_read_only",
    errno.ENOTDIR: "os_not_a_folder",
    errno.EISDIR: "os_is_a_folder",
    errno.ENAMETOOLONG: "os_name_too_long",
}


def os_reason(problem: OSError) -> Message | Quote:
    """Why a file operation failed, for a sentence's {reason}: "permission denied" in the reader's language."""
    code = _ERRNO_CODES.get(problem.errno or 0)
    return Message(code) if code else Quote(problem.strerror or str(problem))
