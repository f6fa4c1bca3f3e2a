"""Every sentence and label a person reads, in English and Russian, from one table; and the wording of Messages.

`TABLE` has the shape `gr.I18n` takes ({language: {key: text}}): the web page hands it to Gradio for its static
labels, and everything composed at run time (problems, build results, the environment) is worded here with
`word(message, lang)`. The CLI words the same Messages (English unless `--lang ru` or a Russian locale).

Templates use str.format fields: `{name}`. A field whose value is a Message, a Size, a Duration or a Field is worded
in the same language first, so no unit, label or nested reason stays English on a Russian page; a Quote (another
program's own words) is written as a `code span`, which the page shows as code.
"""

from __future__ import annotations

import ctypes
import locale
import os
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any, Literal, get_args

from sdprep.launcher import app_command
from sdprep.messages import Duration, Field, Message, Quote, Size
from sdprep.text import en, ru

Lang = Literal["en", "ru"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
TABLE: dict[str, dict[str, str]] = {"en": en.TEXT, "ru": ru.TEXT}

# Items of a list a sentence names (a t_index_list read from a file may hold thousands); the rest are counted.
LIST_LIMIT = 20
# How a Field is worded: the CLI sets this to its flags (--steps), the page leaves labels.
FieldNamer = Callable[[str, str], str]


def field_label(name: str, lang: str) -> str:
    """The form's label of a field ("Denoise steps (denoise_steps)"); a ControlNet slot field by its slot."""
    if name.startswith("controlnets[") and "]." in name:
        index, _, slot_field = name[len("controlnets[") :].partition("].")
        return t("slot_field", lang, index=int(index) + 1, label=t(f"f_slot_{slot_field}", lang))
    key = f"f_{name}"
    return t(key, lang) if key in TABLE["en"] else name


UNKNOWN_SHOWN = 40  # characters of an unknown value shown in "unknown (value)"


def known(code: str) -> bool:
    """Whether the table has a sentence for `code` (in any plural form)."""
    return code in TABLE["en"] or f"{code}__many" in TABLE["en"]


def enum_message(prefix: str, value: object) -> Message:
    """The words for one value of a set this app knows (a profile, a check outcome, a job): Message(prefix + value);
    a value this version does not know (a newer app wrote it into a shared engines folder) as "unknown (value)"."""
    code = f"{prefix}{value}"
    if isinstance(value, str) and known(code):
        return Message(code)
    return unknown_value(value)


def unknown_value(value: object) -> Message:
    text = str(value)
    return Message("unknown_value", {"value": text if len(text) <= UNKNOWN_SHOWN else text[: UNKNOWN_SHOWN - 1] + "…"})


def word(message: Message | str, lang: str = "en", namer: FieldNamer = field_label) -> str:
    """The sentence for `message` in `lang` (English when a key or language is missing; "unknown (code)" for a code
    no table has: a reason a newer version recorded in build.json)."""
    if isinstance(message, str):
        return message
    if not known(message.code):
        return word(unknown_value(message.code), lang, namer)
    values = {key: _render(value, lang, namer) for key, value in message.params.items()}
    template = template_for(message, lang)
    if lang == "ru":
        # Russian writes a clause after a colon in lower case ("нельзя: для FP8 нужна…"), though the nested
        # sentence starts with a capital when it stands alone.
        for key in _AFTER_COLON.findall(template):
            if key in values and not isinstance(message.params.get(key), Quote):
                values[key] = _lower_initial(values[key])
    return fill(template, values)


def template_for(message: Message, lang: str) -> str:
    """The table's template for `message` in `lang` (its plural form where the code has them; English if missing)."""
    table = TABLE.get(lang, TABLE["en"])
    code = message.code
    if code not in TABLE["en"] and isinstance(message.params.get("count"), int):
        code = f"{code}__{plural_form(message.params['count'], lang)}"  # "{count} steps", "{count} шага", ...
    return table.get(code) or TABLE["en"][code]


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with its fields filled. Always formatted: a template without fields may still write a brace
    as {{ }}; a field left without a value stays as written rather than failing the whole sentence. {app} is the
    command a person types to run this app on this machine, unless the message says otherwise."""
    if "{app}" in template and "app" not in values:
        values = {**values, "app": app_command()}
    return template.format_map(_Unfilled(values))


_AFTER_COLON = re.compile(r": \{(\w+)\}")
_CAPITALISED_WORD = re.compile(r"^[А-ЯЁ][а-яё]*\b")


def _lower_initial(text: str) -> str:
    """ "Для FP8 нужна…" -> "для FP8 нужна…"; an acronym or a Latin name ("CUDA", "PyTorch") stays as written."""
    return text[0].lower() + text[1:] if _CAPITALISED_WORD.match(text) else text


def after_colon(text: str, lang: str) -> str:
    """A sentence written after "label: " — in Russian its first word goes to lower case ("Ширина (width): должно…")."""
    return _lower_initial(text) if lang == "ru" else text


def labelled(label: str, sentence: str, lang: str) -> str:
    """A label (an outcome, a severity, a flag) and a worded sentence for a person, as "label: sentence": the one way
    they are joined outside a template. After the colon Russian writes the sentence's first word in lower case
    ("здесь невозможно: на этой машине…"); English keeps the sentence as written, as a template would."""
    return f"{label}: {after_colon(sentence, lang)}" if sentence else label


# A Markdown code span: a run of backticks, text, and a run of the same length (`x`, ``a`b``).
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def plain_code(text: str) -> str:
    """`text` for a console: Markdown code spans written plainly ("run `x setup`" -> "run x setup"). The page keeps
    them: there they are shown as code (views/html.py)."""
    return _CODE_SPAN.sub(lambda span: span.group(2), text)


def _sentences_or_items(rendered: list[str]) -> str:
    """Whole sentences follow one another ("… torch. TensorRT …"); short items are listed with commas."""
    if len(rendered) > 1 and all(item.rstrip().endswith((".", "!", "?")) for item in rendered):
        return " ".join(item.strip() for item in rendered)
    return ", ".join(rendered)


class _Unfilled(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def plural_form(count: int, lang: str) -> str:
    """Which form a count takes: English one/many; Russian one (1, 21), few (2-4, 22-24), many (5-20, 25...)."""
    if lang == "ru":
        if count % 10 == 1 and count % 100 != 11:
            return "one"
        return "few" if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14 else "many"
    return "one" if count == 1 else "many"


def t(key: str, lang: str = "en", /, **values: Any) -> str:
    """Shorthand for word(Message(key, values), lang): labels and page text composed by the UI."""
    return word(Message(key, values), lang)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render_value(value: Any, lang: str, namer: FieldNamer = field_label) -> str:
    """One value of a message in words, as word() writes it into its sentence."""
    return _render(value, lang, namer)


def _render(value: Any, lang: str, namer: FieldNamer) -> str:
    if isinstance(value, Message):
        return word(value, lang, namer)
    if isinstance(value, Size):
        return human_size(value.bytes, lang)
    if isinstance(value, Duration):
        return human_duration(value.seconds, lang)
    if isinstance(value, Field):
        return namer(value.name, lang)
    if isinstance(value, Quote):
        return "`" + value.text.replace("`", "'") + "`"  # a code span: the page shows it as code, untranslated
    if value is None:
        return "—"
    if isinstance(value, bool):
        return t("yes" if value else "no", lang)
    if isinstance(value, float):
        return _number(f"{value:g}", lang)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return str(dict(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = _ordered(value)
        rendered = _sentences_or_items([_render(item, lang, namer) for item in items[:LIST_LIMIT]])
        return rendered + (f", … (+{len(items) - LIST_LIMIT})" if len(items) > LIST_LIMIT else "")
    return str(value)


def _ordered(items: Iterable[Any]) -> list[Any]:
    return sorted(items, key=str) if isinstance(items, (set, frozenset)) else list(items)


def _number(text: str, lang: str) -> str:
    return text.replace(".", ",") if lang == "ru" else text


_SIZE_UNITS = {"en": ("B", "KiB", "MiB", "GiB", "TiB"), "ru": ("Б", "КиБ", "МиБ", "ГиБ", "ТиБ")}


def human_size(size: int | float | None, lang: str = "en") -> str:
    """Bytes in binary units with one decimal: 146_028_888_064 -> "136.0 GiB" ("136,0 ГиБ")."""
    if size is None:
        return "—"
    units = _SIZE_UNITS.get(lang, _SIZE_UNITS["en"])
    value = float(size)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == units[0] else f"{_number(f'{value:.1f}', lang)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None, lang: str = "en") -> str:
    """Seconds for people: "0.4 s", "42 s", "6 min 12 s", "1 h 05 min"."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return t("unit_seconds", lang, value=_number(f"{seconds:.1f}", lang))
    whole = round(seconds)
    if whole < 60:
        return t("unit_seconds", lang, value=whole)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return t("unit_min_sec", lang, minutes=minutes, seconds=secs)
    hours, minutes = divmod(minutes, 60)
    return t("unit_hour_min", lang, hours=hours, minutes=f"{minutes:02d}")


def lang_of(locale: str | None) -> Lang:
    """The table language for a browser or system locale like "ru-RU" / "ru_RU.UTF-8" (English otherwise)."""
    return "ru" if (locale or "").strip().lower().startswith("ru") else "en"


def system_language(environ: Mapping[str, str] | None = None, windows: bool = sys.platform == "win32") -> Lang:
    """The language a terminal user reads: the usual locale variables (LC_ALL > LC_MESSAGES > LANG), and where none
    is set (always on Windows) the system's own locale."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return lang_of(value)
    return lang_of(system_locale(windows))


def system_locale(windows: bool) -> str | None:
    """The user's locale without the variables: "ru-RU" from Windows, else what Python's locale module reads."""
    if windows:
        name = windows_locale_name()
        if name:
            return name
    try:
        return locale.getlocale()[0]  # on Windows a name like "Russian_Russia", which lang_of also reads
    except ValueError:
        return None


def windows_locale_name() -> str | None:
    """GetUserDefaultLocaleName ("ru-RU"): the language the user chose in Windows' settings."""
    try:
        kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
        buffer = ctypes.create_unicode_buffer(85)  # LOCALE_NAME_MAX_LENGTH
        length = int(kernel32.GetUserDefaultLocaleName(buffer, len(buffer)))
    except (AttributeError, OSError):
        return None
    return buffer.value if length > 0 else None
