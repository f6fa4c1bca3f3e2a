"""Copy as command: the `python gradio_prepare.py build ...` line for a set of parameters (sdprep/command_line.py),
run through the CLI with --config-only, writes the very config.yaml that Save config only writes for them."""

from __future__ import annotations

import io
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdprep.cli import main as cli_main
from sdprep.command_line import NotACommand, build_args, shell_command
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ANY_PARAMS)
def test_the_command_writes_the_same_config_as_save_config_only(
    values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("cmd")
    params = params_from_values({**values, "engines_dir": str(root / "my engines")})
    try:
        line = shell_command(params)
    except NotACommand as problem:
        assert problem.message.code in ("command_cn_none", "command_cn_comma")
        assert params.use_controlnet and not params.controlnets
        return
    words = shlex.split(line)
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
    assert shell_command(params) == f"python gradio_prepare.py build --engines-dir '{tmp_path}/e e'"


def test_a_named_profile_is_written_by_name_and_a_custom_one_field_by_field() -> None:
    fast = params_from_values({**profile_values("fast"), "engines_dir": "/e"})
    assert build_args(fast) == ["--profile", "fast", "--engines-dir", "/e"]
    custom = params_from_values({"static_shapes": True, "opt_level": 5, "engines_dir": "/e"})
    assert build_args(custom) == ["--static-shapes", "--opt-level", "5", "--engines-dir", "/e"]
    full_vae = params_from_values({"use_tiny_vae": False, "engines_dir": "/e"})
    assert build_args(full_vae) == ["--no-tiny-vae", "--engines-dir", "/e"]


def test_controlnets_and_the_ip_adapter_in_their_cli_spelling() -> None:
    slot = ControlNetSlot("lllyasviel/control_v11p_sd15_canny", "canny", 3, False)
    params = params_from_values(
        {"use_controlnet": True, "controlnets": [slot], "use_ipadapter": True, "engines_dir": "/e"}
    )
    args = build_args(params)
    assert (
        args[args.index("--controlnet") + 1]
        == "lllyasviel/control_v11p_sd15_canny,preprocessor=canny,channels=3,enabled=false"
    )
    assert args[args.index("--ipadapter") + 1] == DEFAULTS.ipadapter_model_path


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
