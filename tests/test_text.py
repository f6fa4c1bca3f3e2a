"""The text table: every message exists in English and Russian with the same fields, every code the program uses
is in it, and every entry can be worded in both languages.

Codes are found two ways: literally in the source (msg("code"), error(field, "code"), t("code"), ...) and by the
families the program builds at run time (stage_<id>, engine_<kind>, out_<outcome>, ...), listed here from the same
declarations the program uses.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdprep import text
from sdprep.engine_files import FILE_KINDS
from sdprep.features import FEATURES
from sdprep.jobs.job import Outcome
from sdprep.messages import Message, from_json, msg, to_json
from sdprep.params import SPECS
from sdprep.profiles import PROFILE_NAMES
from sdprep.text import TABLE, placeholders, plural_form, word

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sdprep"
PLURALS = re.compile(r"__(one|few|many)$")
LITERAL = re.compile(
    r"""(?<![\w.])(?:msg|Message|t|label)\(\s*["']([a-z][a-z0-9_]*[a-z0-9])["']"""
    r"""|\b(?:self\.say|printer\.line|self\.line)\(\s*["']([a-z][a-z0-9_]*[a-z0-9])["']"""
    r"""|(?<![\w.])(?:error|warning)\(\s*[^,()]+,\s*["']([a-z][a-z0-9_]*[a-z0-9])["']"""
    r"""|\bcode=["']([a-z][a-z0-9_]*[a-z0-9])["']"""
)
CHILD_STAGE = re.compile(r"""stage=["']([a-z_]+)["']""")


def source_codes() -> set[str]:
    codes: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if "text" in path.relative_to(SOURCE).parts[:1]:
            continue
        text = path.read_text(encoding="utf-8")
        for match in LITERAL.finditer(text):
            codes.add(next(group for group in match.groups() if group))
        if path.parent.name == "child":
            codes.update(f"stage_{stage}" for stage in CHILD_STAGE.findall(text))
    return codes


def family_codes() -> set[str]:
    outcomes = get_args(Outcome)
    codes = {f"engine_{kind}" for kind in FILE_KINDS}
    codes |= {f"out_{outcome}" for outcome in outcomes}
    codes |= {f"cli_outcome_{outcome}" for outcome in ("failed", "refused", "unavailable", "busy", "cancelled")}
    codes |= {f"chk_{outcome}" for outcome in ("passed", "failed", "cancelled", "refused", "unavailable", "busy")}
    codes |= {f"status_{status}" for status in ("ready", "missing", "changed", "stale", "unreadable")}
    codes |= {f"python_chosen_{source}" for source in ("flag", "environment", "build_venv", "app")}
    codes |= {f"profile_{name}" for name in (*PROFILE_NAMES, "custom")} | {
        f"hint_profile_{name}" for name in (*PROFILE_NAMES, "custom")
    }
    codes |= {f"family_source_{source}" for source in ("unet_config", "known_model", "name", "assumed")}
    codes |= {f"sev_{severity}" for severity in ("error", "warning")} | {f"f_{name}" for name in SPECS}
    checks = ("torch", "cuda", "tensorrt_import", "tensorrt_build", "tensorrt_run", "streamdiffusion", "build_path")
    codes |= {f"check_{name}" for name in checks} | {f"stage_{name}" for name in checks}
    codes |= {f"stage_setup_{step}" for step in ("check", "venv", "torch", "fork", "tensorrt", "features", "finish")}
    codes |= {f"feat_{feature.name}" for feature in FEATURES} | {f.before for f in FEATURES if f.before}
    codes |= {"stage_probe", "stage_done", "stage_engine", "frame_warmup", "frame_timed"}
    return codes


def test_english_and_russian_have_the_same_keys() -> None:
    english = {key for key in TABLE["en"] if not PLURALS.search(key)}
    russian = {key for key in TABLE["ru"] if not PLURALS.search(key)}
    assert english == russian, f"only English: {sorted(english - russian)}; only Russian: {sorted(russian - english)}"


@pytest.mark.parametrize("key", sorted(TABLE["en"]))
def test_each_entry_has_the_same_fields_in_both_languages(key: str) -> None:
    base = PLURALS.sub("", key)
    russian = [TABLE["ru"][k] for k in TABLE["ru"] if PLURALS.sub("", k) == base]
    assert russian, f"{key} has no Russian text"
    assert all(placeholders(text) == placeholders(TABLE["en"][key]) for text in russian), key


def test_every_code_the_program_uses_is_in_the_table() -> None:
    used = source_codes() | family_codes()
    plural_bases = {PLURALS.sub("", key) for key in TABLE["en"] if PLURALS.search(key)}
    missing = sorted(code for code in used if code not in TABLE["en"] and code not in plural_bases)
    assert not missing, f"codes without text: {missing}"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_entry_can_be_worded(lang: str) -> None:
    for key, template in TABLE["en"].items():
        code = PLURALS.sub("", key)
        params: dict[str, object] = {name: f"<{name}>" for name in placeholders(template)}
        if PLURALS.search(key):
            params["count"] = {"one": 1, "few": 3, "many": 5}[PLURALS.search(key).group(1)]  # type: ignore[union-attr]
        worded = word(Message(code, params), lang)
        assert "{" not in worded or "{{" in template, (key, worded)


def test_russian_is_russian() -> None:
    """A sentence of several words is translated (technical terms alone may stay as they are)."""
    same = [
        key
        for key, english in TABLE["en"].items()
        if len(re.findall(r"[A-Za-z]{3,}", re.sub(r"\{\w+\}|`[^`]*`", "", english))) >= 4
        and TABLE["ru"].get(key) == english
    ]
    assert not same, f"English left in the Russian table: {same}"


@pytest.mark.parametrize(
    ("count", "form"),
    [(1, "one"), (2, "few"), (4, "few"), (5, "many"), (11, "many"), (21, "one"), (22, "few"), (112, "many")],
)
def test_russian_plural_forms(count: int, form: str) -> None:
    assert plural_form(count, "ru") == form
    assert plural_form(count, "en") == ("one" if count == 1 else "many")


def test_a_quote_stays_in_its_own_words_as_code_in_every_language() -> None:
    from sdprep.messages import Quote

    message = msg("env_tensorrt_import", error=Quote("No module named 'tensorrt'"))
    assert "(`No module named 'tensorrt'`)" in word(message, "en")
    russian = word(message, "ru")
    assert russian.startswith("TensorRT не импортируется (`No module named 'tensorrt'`)")
    assert from_json(to_json(message)) == message
    assert word(msg("lora_bad_json", reason=Quote("a `tick`"), line=1, column=2), "en").count("`") == 2


def test_os_errors_a_person_can_act_on_are_worded_in_their_language() -> None:
    import errno

    from sdprep.messages import Quote, os_reason

    denied = PermissionError(errno.EACCES, "Permission denied", "/x")
    assert word(msg("save_failed", path="/x", reason=os_reason(denied)), "ru").startswith("Не удалось")
    assert "Permission denied" not in word(msg("save_failed", path="/x", reason=os_reason(denied)), "ru")
    full = os_reason(OSError(errno.ENOSPC, "No space left on device"))
    assert not isinstance(full, Quote) and word(full, "en") == "the disk is full"
    odd = OSError(errno.EIO, "Input/output error")
    assert os_reason(odd) == Quote("Input/output error")
    assert os_reason(OSError("no errno at all")) == Quote("no errno at all")


def test_the_console_writes_code_spans_plainly_and_the_page_keeps_them(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18's leftover: console lines showed Markdown's backticks (`./run.sh setup`) as they are."""
    from sdprep.cli.report import Printer
    from sdprep.messages import Quote

    assert text.plain_code("Run `./run.sh setup` once; ``a`b`` and `c`.") == "Run ./run.sh setup once; a`b and c."
    assert text.plain_code("one ` tick") == "one ` tick"  # no closing run: no code span
    message = msg("env_tensorrt_import", error=Quote("No module named 'tensorrt'"))
    assert "`" in word(message, "en")  # the page shows it as code
    printer = Printer("en", sys.stdout, sys.stderr)
    assert printer.word(message).startswith("TensorRT cannot be imported (No module named 'tensorrt')")
    printer.line("banner_setup")
    assert "`" not in capsys.readouterr().out


def test_a_label_and_a_sentence_are_joined_as_each_language_writes_them() -> None:
    sentence = text.t("env_no_nvidia", "ru")
    assert text.labelled("здесь невозможно", sentence, "ru") == f"здесь невозможно: {sentence[0].lower()}{sentence[1:]}"
    assert text.labelled("ошибка", "CUDA не найдена", "ru") == "ошибка: CUDA не найдена"  # a name stays as written
    english = text.t("env_no_nvidia", "en")
    assert text.labelled("cannot run here", english, "en") == f"cannot run here: {english}"
    assert text.labelled("error", "", "en") == "error"


def test_prose_shows_code_spans_as_code_and_escapes_the_rest() -> None:
    from sdprep.ui.views.html import prose

    assert prose("Run `a <b>` & <i>go</i>") == "Run <code>a &lt;b&gt;</code> &amp; &lt;i&gt;go&lt;/i&gt;"
    assert prose("no code") == "no code"
    assert prose("one ` tick") == "one ` tick"


def test_a_template_without_fields_writes_its_braces_once() -> None:
    assert word(msg("lora_not_object"), "en").endswith('like {"owner/lora": 0.8}.')
    assert "{{" not in word(msg("lora_not_object"), "ru")


def test_values_from_outside_are_cut_before_they_are_written() -> None:
    """A list read from a file is named by its first items and a count; a value quoted in a message is written
    cut (reprlib), however many items it stands for; a line is cut with how much more there was."""
    from sdprep.messages import cut, shown

    sentence = word(
        msg("runtime_t_index_derived", given=list(range(100_000)), source="x.yaml", count=100_000, steps=4, written=[0])
    )
    assert "19, … (+99980) from" in sentence and len(sentence) < 300
    nested: list[object] = [0] * 9
    for _ in range(9):
        nested = [nested] * 9  # 9**10 items once expanded, a few hundred objects in memory
    assert len(shown(nested)) <= 80 and shown("x" * 10**6).endswith("more)")
    assert cut("y" * 2500) == "y" * 2000 + "… (500 more)"


def _rendered(markdown: str) -> tuple[str, set[str]]:
    """The text and the elements of Markdown as a CommonMark renderer with HTML and tables shows it."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    seen: list[str] = []
    tags: set[str] = set()

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.add(tag)

        def handle_data(self, data: str) -> None:
            seen.append(data)

    reader = Reader(convert_charrefs=True)
    reader.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
    reader.close()
    return " ".join("".join(seen).split()), tags


OUTSIDE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("`*_[]()<>&#!|~\\-+. 1"))


@settings(max_examples=300, deadline=None)
@given(value=OUTSIDE_TEXT)
def test_text_from_outside_renders_as_written_and_makes_no_element(value: str) -> None:
    """A value from outside in a page sentence (text), as code, or as a table cell: a Markdown renderer shows its
    characters as written and makes no element of them (issue 16: m`<b>X, a LoRA id with a tag)."""
    from sdprep.ui.views.html import code, code_block, page_t

    lines = [line for line in value.splitlines() if line.strip()] or ["x"]
    shown, tags = _rendered(code_block([*lines, "```", "`" * 7, *lines]))
    assert tags <= {"pre", "code"} and shown == " ".join(" ".join([*lines, "```", "`" * 7, *lines]).split())
    expected = " ".join(value.split())
    shown, tags = _rendered(page_t("config_missing", "en", path=value))
    assert tags <= {"p"} and shown == " ".join(f"{expected} does not exist.".split()), (value, shown, tags)
    shown, tags = _rendered(page_t("prog_what", "en", model=value, folder="/e"))
    assert tags <= {"p", "code"} and shown.startswith(expected), (value, shown, tags)
    if value.strip():
        cell = f"| a | b |\n|---|---|\n| {code(value, cell=True)} | x |"
        shown, tags = _rendered(cell)
        assert tags <= {"table", "thead", "tbody", "tr", "th", "td", "code"}, (value, tags)
        assert expected in shown, (value, shown)


def test_the_locale_variables_decide_the_terminal_language_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "windows_locale_name", lambda: "ru-RU")
    assert text.system_language({"LANG": "en_US.UTF-8"}, windows=True) == "en"
    assert text.system_language({"LC_ALL": "ru_RU.UTF-8", "LANG": "en_US.UTF-8"}, windows=False) == "ru"


def test_windows_without_locale_variables_speaks_the_users_windows_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows sets no LANG: its user locale (GetUserDefaultLocaleName) decides, not always English."""
    monkeypatch.setattr(text, "windows_locale_name", lambda: "ru-RU")
    assert text.system_language({}, windows=True) == "ru"
    monkeypatch.setattr(text, "windows_locale_name", lambda: None)
    monkeypatch.setattr("locale.getlocale", lambda: ("Russian_Russia", "1251"))
    assert text.system_language({}, windows=True) == "ru"
    monkeypatch.setattr("locale.getlocale", lambda: ("English_United States", "1252"))
    assert text.system_language({}, windows=True) == "en"


def test_the_windows_locale_call_is_harmless_elsewhere() -> None:
    assert text.windows_locale_name() is None or sys.platform == "win32"
