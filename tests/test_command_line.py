"""Copy as command: the `python gradio_prepare.py build ...` line for a set of parameters (sdprep/command_line.py),
parsed back by its platform's rules (a POSIX shell's, or cmd.exe's and then the C runtime's on Windows) and run
through the CLI with --config-only, writes the very config.yaml that Save config only writes for them."""

from __future__ import annotations

import io
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdprep.cli import main as cli_main
from sdprep.command_line import SHELLS, NotACommand, Shell, build_args, shell_command
from sdprep.params import (
    DEFAULTS,
    SPECS,
    BakedParams,
    ControlNetSlot,
    params_from_values,
)
from sdprep.profiles import profile_values
from sdprep.save import save_config

from .conftest import runtime_defaults, said
from .strategies import field_strategy

ANY_PARAMS = st.fixed_dictionaries(
    {name: field_strategy(name, odd_paths=True) for name in SPECS if name not in ("controlnets", "engines_dir")},
    optional={"controlnets": field_strategy("controlnets", odd_paths=True)},
)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_main([*args, "--lang", "en"], runtime_defaults(), serve=lambda a: 0, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def cmd_split(line: str) -> list[str]:
    """What a Windows program receives from a line typed into cmd.exe: cmd's own pass (a caret escapes the next
    character outside its quotes; a `"` toggles them), then the C runtime's split (CommandLineToArgvW rules:
    2n backslashes and a quote are n backslashes and a delimiter, 2n+1 are n and a literal quote; other backslashes
    are literal; "" inside quotes is one literal quote)."""
    passed, quoted, index = [], False, 0
    while index < len(line):
        char = line[index]
        if char == "^" and not quoted and index + 1 < len(line):
            passed.append(line[index + 1])
            index += 2
            continue
        assert quoted or char not in "&|<>", f"cmd.exe would act on {char!r} in {line!r}"
        quoted = not quoted if char == '"' else quoted
        passed.append(char)
        index += 1
    text = "".join(passed)
    assert "%" not in text or not quoted, text
    words: list[str] = []
    current: list[str] = []
    in_word = in_quotes = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            run = len(text[index:]) - len(text[index:].lstrip("\\"))
            if text[index + run : index + run + 1] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    index += run + 1
                else:
                    index += run
            else:
                current.append("\\" * run)
                index += run
            in_word = True
            continue
        if char == '"':
            if in_quotes and text[index + 1 : index + 2] == '"':
                current.append('"')
                index += 2
                continue
            in_quotes, in_word = not in_quotes, True
        elif char in " \t" and not in_quotes:
            if in_word:
                words.append("".join(current))
            current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        index += 1
    if in_word:
        words.append("".join(current))
    return words


SPLIT: dict[str, Callable[[str], list[str]]] = {"posix": shlex.split, "cmd": cmd_split}


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ANY_PARAMS)
def test_the_command_writes_the_same_config_as_save_config_only(
    shell: Shell, values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("cmd")
    params = params_from_values({**values, "engines_dir": str(root / "my engines")})
    try:
        line = shell_command(params, shell)
    except NotACommand as problem:
        assert problem.message.code in ("command_cn_none", "command_cn_comma")
        assert params.use_controlnet and not params.controlnets
        return
    words = SPLIT[shell](line)
    assert words[:3] == ["python", "gradio_prepare.py", "build"]
    code, out, err = run_cli([*words[2:], "--config-only"])
    by_cli = Path(out.strip().splitlines()[-1]).read_bytes() if code == 0 else None
    if code == 0:
        shutil.rmtree(root / "my engines")
    saved = save_config(params, runtime_defaults())
    assert (code == 0) == saved.ok, (line, err, saved.reason)
    if saved.ok:
        assert saved.config_path is not None
        assert by_cli == saved.config_path.read_bytes(), line


def test_the_defaults_need_only_the_engines_folder(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path / "e e")})
    assert shell_command(params) == f"python gradio_prepare.py build '--engines-dir={tmp_path}/e e'"
    assert shell_command(params, "cmd") == f'python gradio_prepare.py build ^"--engines-dir={tmp_path}/e e^"'


def test_a_named_profile_is_written_by_name_and_a_custom_one_field_by_field() -> None:
    fast = params_from_values({**profile_values("fast"), "engines_dir": "/e"})
    assert build_args(fast) == ["--profile=fast", "--engines-dir=/e"]
    custom = params_from_values({"static_shapes": True, "opt_level": 5, "engines_dir": "/e"})
    assert build_args(custom) == ["--static-shapes", "--opt-level=5", "--engines-dir=/e"]
    full_vae = params_from_values({"use_tiny_vae": False, "engines_dir": "/e"})
    assert build_args(full_vae) == ["--no-tiny-vae", "--engines-dir=/e"]


@pytest.mark.parametrize("shell", SHELLS)
def test_values_that_start_with_a_dash_or_hold_json_survive_both_shells(shell: Shell, tmp_path: Path) -> None:
    """A ControlNet `-lllyasviel/...` and an IP-Adapter `-h94/...` (both accepted by the form) once made the copied
    line fail with "expected one argument"; a LoRA's JSON once broke under Windows' argument rules."""
    slot = ControlNetSlot("-lllyasviel/control_v11p_sd15_canny", "canny")
    values = {"use_controlnet": True, "controlnets": [slot], "use_ipadapter": True}
    values |= {"ipadapter_model_path": "-h94/IP-Adapter", "lora_json": '{"owner/style-lora": 0.8}'}
    params = params_from_values({**values, "engines_dir": str(tmp_path / "my engines")})
    line = shell_command(params, shell)
    code, out, err = run_cli([*SPLIT[shell](line)[2:], "--config-only"])
    assert code == 0, (line, err)
    written = Path(out.strip().splitlines()[-1]).read_bytes()
    shutil.rmtree(tmp_path / "my engines")
    saved = save_config(params, runtime_defaults())
    assert saved.ok and saved.config_path is not None, said(saved.reason)
    assert written == saved.config_path.read_bytes(), line


def test_cmd_escapes_what_cmd_reads_itself_and_refuses_a_line_break() -> None:
    from sdprep.command_line import cmd_line

    words = ["python", '--lora={"a b": 1}', "--x=%PATH%&calc|more<in>out^(!x!)"]
    line = cmd_line(words)
    assert cmd_split(line) == words
    assert "^%PATH^%^&calc^|more^<in^>out^^^(^!x^!^)" in line, line
    with pytest.raises(NotACommand) as raised:
        cmd_line(["python", "--model=a\nb"])
    assert raised.value.message.code == "command_cmd_line_break"


def test_controlnets_and_the_ip_adapter_in_their_cli_spelling() -> None:
    slot = ControlNetSlot("lllyasviel/control_v11p_sd15_canny", "canny", 3, False)
    params = params_from_values(
        {"use_controlnet": True, "controlnets": [slot], "use_ipadapter": True, "engines_dir": "/e"}
    )
    args = build_args(params)
    assert "--controlnet=lllyasviel/control_v11p_sd15_canny,preprocessor=canny,channels=3,enabled=false" in args
    assert f"--ipadapter={DEFAULTS.ipadapter_model_path}" in args


def test_what_the_cli_cannot_say_is_named() -> None:
    comma = params_from_values(
        {"use_controlnet": True, "controlnets": [ControlNetSlot("a/b,c", "canny")], "engines_dir": "/e"}
    )
    with pytest.raises(NotACommand) as raised:
        build_args(comma)
    assert said(raised.value.message).startswith("ControlNet #1: a model id or preprocessor with a comma")
    empty: BakedParams = params_from_values({"use_controlnet": True, "engines_dir": "/e"})
    with pytest.raises(NotACommand):
        build_args(empty)


def test_a_windows_server_offers_the_cmd_line_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdprep.command_line import default_shell

    monkeypatch.setattr(os, "name", "nt")
    assert default_shell() == "cmd"
    monkeypatch.setattr(os, "name", "posix")
    assert default_shell() == "posix"


def test_sdprep_gpu_is_the_default_of_gpu_and_a_bad_one_is_refused_like_the_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's table: --gpu N, else $SDPREP_GPU, else 0 (for builds, checks and setup alike)."""
    from sdprep.cli import build_parser

    monkeypatch.setenv("SDPREP_GPU", "1")
    assert build_parser("en").parse_args(["probe"]).gpu == 1
    assert build_parser("en").parse_args(["setup"]).gpu == 1
    assert build_parser("en").parse_args(["probe", "--gpu", "0"]).gpu == 0
    monkeypatch.setenv("SDPREP_GPU", "-1")
    with pytest.raises(SystemExit):
        build_parser("en").parse_args(["probe"])
