"""Markup from templates whose every value is escaped: a value can never become markup.

Two kinds of text reach the page: the app's own (the text table's templates, trusted: their `code spans` and
**bold** are meant) and text from outside (file, folder and model names, LoRA ids, log lines, another program's
words). Outside text is escaped for what reads it: for gr.Markdown (which reads HTML too) its Markdown is
backslash-escaped and < > & become entities, or it goes into a code span or a fenced block whose fence is longer
than any run of backticks in it, so a name like m`<b>X or ![x](http://…) is shown as written and a log line of three
backticks cannot close its block; for gr.HTML it is HTML-escaped. Long lines are cut for the page (messages.cut);
the log file keeps them whole.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import PurePath
from string import Template
from typing import Any

from sdprep.messages import Message, Quote, cut
from sdprep.text import after_colon, fill, render_value, template_for


class Markup(str):
    """HTML made by `render` (or trusted constant markup): inserted as is, not escaped again."""


def render(template: str, **values: Any) -> Markup:
    """`$name` placeholders filled with html-escaped values (Markup values go in unchanged)."""
    escaped = {key: value if isinstance(value, Markup) else html.escape(str(value)) for key, value in values.items()}
    return Markup(Template(template).substitute(escaped))


def join(parts: list[Markup]) -> Markup:
    return Markup("".join(parts))


_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_FIELD = re.compile(r"\{(\w+)\}")
# What Markdown (GitHub's, as gr.Markdown reads it) may take as syntax, backslash-escaped: anywhere in a line, and a
# leading "- " or "+ " (a value that starts a line would start a list; "-h94/…" would not).
# `_` only at a word's edge (inside a word it is no emphasis, and ids are full of it); < > & as HTML entities.
_MARKDOWN_ACTIVE = re.compile(r"[\\`*\[\]|~!#]|^[-+](?=[ \t]|$)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_ORDERED_ITEM = re.compile(r"^(\d{1,9})([.)])(?=[ \t]|$)")  # "1. x" starting a line starts a numbered list
_HTML_ACTIVE = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LINE_BREAKS = re.compile(r"[\r\n\t\0]")


def text(value: str, limit: int = 2000) -> Markup:
    """Text from outside for gr.Markdown, shown as written: cut at `limit`, its markup escaped, on one line."""
    one_line = _LINE_BREAKS.sub(" ", cut(value, limit))
    escaped = _MARKDOWN_ACTIVE.sub(lambda found: "\\" + found[0], one_line)
    escaped = _ORDERED_ITEM.sub(r"\1\\\2", escaped)
    html_safe = "".join(_HTML_ACTIVE.get(char, char) for char in escaped)
    # Leading spaces would make an indented code block of a value that starts a line: the first as an entity.
    return Markup("&#32;" + html_safe[1:] if html_safe.startswith(" ") else html_safe)


def code(value: str, limit: int = 2000, cell: bool = False) -> Markup:
    """Text from outside as a Markdown code span that it cannot close: a fence longer than any run of backticks in
    it (nothing inside a code span is read as Markdown or HTML). `cell`: inside a table row, where | is escaped."""
    content = _LINE_BREAKS.sub(" ", cut(value, limit))
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    if content.startswith("`") or content.endswith("`") or not content.strip():
        content = f" {content} "
    return Markup(fence + (content.replace("|", "\\|") if cell else content) + fence)


def code_block(lines: Iterable[str], language: str = "text", limit: int = 2000) -> str:
    """Log lines as a fenced Markdown block that none of them can close: a fence longer than any run of backticks
    in the lines (the content of a fenced block is never read as Markdown or HTML); each line cut at `limit`."""
    kept = [cut(line.replace("\r", ""), limit) for line in lines]
    longest = max((len(run) for line in kept for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence + language, *kept, fence])


def page_word(message: Message | str, lang: str) -> Markup:
    """word() for gr.Markdown: the template's own Markdown kept, every value from outside escaped; a value inside
    one of the template's `code spans` gets a code span of its own that it cannot close."""
    if isinstance(message, Markup):
        return message
    if isinstance(message, str):
        return text(message)
    parts = re.split(r"(`[^`\n]+`)", template_for(message, lang))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            inner = part[1:-1]
            raw = {key: render_value(value, lang) for key, value in message.params.items()}
            out.append(code(fill(inner, raw)) if _FIELD.search(inner) else part)
        else:
            out.append(fill(part, {key: _page_value(value, lang) for key, value in message.params.items()}))
    return Markup("".join(out))


def page_t(key: str, lang: str, /, **values: Any) -> Markup:
    """page_word(Message(key, values), lang): a page sentence with values from outside in it."""
    return page_word(Message(key, values), lang)


def _page_value(value: Any, lang: str) -> str:
    if isinstance(value, Markup):
        return value
    if isinstance(value, Message):
        return page_word(value, lang)
    if isinstance(value, Quote):
        return code(value.text)
    if isinstance(value, (list, tuple)):
        return ", ".join(_page_value(item, lang) for item in value)
    if isinstance(value, (str, PurePath)):
        return text(str(value))
    return text(render_value(value, lang))


def html_word(message: Message | str, lang: str) -> Markup:
    """word() for gr.HTML: the sentence escaped, the template's and quotes' code spans as <code>, each value
    escaped on its own (so a value with a backtick cannot shift where code starts)."""
    if isinstance(message, str):
        return render("$text", text=cut(message))
    parts = re.split(r"(`[^`\n]+`)", template_for(message, lang))
    values = {key: _html_value(value, lang) for key, value in message.params.items()}
    out = []
    for part in parts:
        inside = part.startswith("`") and part.endswith("`") and len(part) > 1
        escaped = html.escape(part[1:-1] if inside else part, quote=False)
        filled = fill(escaped, values)
        out.append(f"<code>{filled}</code>" if inside else filled)
    return Markup("".join(out))


def _html_value(value: Any, lang: str) -> str:
    if isinstance(value, Message):
        return html_word(value, lang)
    if isinstance(value, Quote):
        return render("<code>$text</code>", text=cut(value.text))
    if isinstance(value, (list, tuple)):
        return ", ".join(_html_value(item, lang) for item in value)
    return html.escape(cut(render_value(value, lang)))


def prose(words: str) -> Markup:
    """A sentence already worded (word()) as HTML: escaped, its `code spans` as <code>. For the app's own
    sentences; a sentence with values from outside goes through page_word, which escapes each value."""
    parts = _CODE_SPAN.split(words)
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


def after_label(sentence: Markup, lang: str) -> Markup:
    """A page sentence written after "label: " (in Russian its first word goes to lower case: text.after_colon)."""
    return Markup(after_colon(str(sentence), lang))
