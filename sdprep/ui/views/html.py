"""HTML from templates whose every value is escaped: a value can never become markup."""

from __future__ import annotations

import html
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
