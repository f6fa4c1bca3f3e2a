"""The `python gradio_prepare.py build ...` line that builds the same engines as a set of parameters ("Copy as
command" on the page), derived from the declarations in params.py: a flag for every field that differs from its
default, the profile by name when it has one, ControlNets and the IP-Adapter in their CLI spelling.

The line is quoted for a POSIX shell (shlex.quote); run through the CLI with --config-only it writes the very
config.yaml that Save config only writes for the same parameters (a test checks it byte for byte).
"""

from __future__ import annotations

import shlex
from typing import Any

from sdprep.messages import Message, msg
from sdprep.params import DEFAULTS, SPECS, BakedParams, ControlNetSlot
from sdprep.profiles import PROFILE_NAMES, profile_of, profile_values

SCRIPT = ("python", "gradio_prepare.py", "build")
# Fields the CLI spells in its own way (cli="custom" in the declarations) or not as a plain flag.
_SPELLED_BELOW = ("engines_dir",)


class NotACommand(ValueError):
    """These parameters have no command line (`message` says why, for people)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


def _value(value: Any) -> str:
    return str(value)


def _controlnet(slot: ControlNetSlot, index: int) -> str:
    """MODEL_ID,preprocessor=NAME[,channels=N][,enabled=false], as the CLI's --controlnet reads it."""
    for text in (slot.model_id, slot.preprocessor):
        if "," in text or text != text.strip():
            raise NotACommand(msg("command_cn_comma", slot=index + 1))
    parts = [slot.model_id, f"preprocessor={slot.preprocessor}"]
    if slot.conditioning_channels is not None:
        parts.append(f"channels={slot.conditioning_channels}")
    if not slot.enabled:
        parts.append("enabled=false")
    return ",".join(parts)


def build_args(params: BakedParams) -> list[str]:
    """The CLI arguments after `build` for these parameters (NotACommand when the CLI cannot say them)."""
    args: list[str] = []
    profile = profile_of(params)
    named = profile in PROFILE_NAMES and profile != profile_of(DEFAULTS)
    if named:
        args += ["--profile", profile]
    by_profile = set(profile_values(profile)) if named else set()  # type: ignore[arg-type]  # a ProfileName here
    for name, spec in SPECS.items():
        if spec.cli == "custom" or name in _SPELLED_BELOW or name in by_profile:
            continue
        value = getattr(params, name)
        if value == getattr(DEFAULTS, name):
            continue
        if spec.cli == "switch":
            args.append(spec.flag if value else f"--no-{spec.flag.removeprefix('--')}")
        else:
            args += [spec.flag, _value(value)]
    if params.use_controlnet:
        if not params.controlnets:
            raise NotACommand(msg("command_cn_none"))
        for index, slot in enumerate(params.controlnets):
            args += ["--controlnet", _controlnet(slot, index)]
    if params.use_ipadapter:
        args += ["--ipadapter", params.ipadapter_model_path]
    args += ["--engines-dir", params.engines_dir]
    return args


def shell_command(params: BakedParams) -> str:
    """The whole line, quoted for a POSIX shell."""
    return " ".join(shlex.quote(part) for part in (*SCRIPT, *build_args(params)))
