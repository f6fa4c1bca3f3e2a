"""HTML from templates whose every value is escaped: a value can never become markup."""

from __future__ import annotations

import html
import re
from string import Template
from typing import Any


class Markup(str):
    """HTML made by `render` (or trusted constant markup): inserted as is, not escaped again."""


def render(template: str, **values: Any) -> Markup:
    """`$name` placeholders filled with html-escaped values (Markup values go in unchanged)."""
    escaped = {key: value if isinstance(value, Markup) else html.escape(str(value)) for key, value in values.items()}
    return Markup(Template(template).substitute(escaped))


def join(parts: list[Markup]) -> Markup:
    return Markup("".join(parts))


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def prose(text: str) -> Markup:
    """A worded sentence as HTML: escaped, its `code spans` (a command, a program's own words) as <code>.

    Works in gr.HTML and gr.Markdown alike (Markdown passes the tags through), so an exception quoted inside a
    Russian sentence is shown as code, not as an English phrase in the text.
    """
    parts = _CODE_SPAN.split(text)
    return join(
        [
            render("<code>$code</code>", code=part) if index % 2 else render("$text", text=part)
            for index, part in enumerate(parts)
        ]
    )


_SEPARATOR = re.compile(r"([/\\\\_-]+)")


def path_code(path: object) -> Markup:
    """A path or id as <code>, with a line-break opportunity after each separator (/ \\ - _): on a narrow window it
    breaks between its parts, not every few letters, and copies without any added character."""
    parts = _SEPARATOR.split(str(path))
    # As entities, the characters Markdown would read as emphasis or a table's cell border (the code is inline HTML).
    markdown = str.maketrans({"_": "&#95;", "*": "&#42;", "|": "&#124;", "`": "&#96;"})
    text = "".join(
        html.escape(part).translate(markdown) + ("<wbr>" if index % 2 else "") for index, part in enumerate(parts)
    )
    return Markup(f"<code>{text}</code>")
