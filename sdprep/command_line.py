"""The `python gradio_prepare.py build ...` line that builds the same engines as a set of parameters ("Copy as
command" on the page), derived from the declarations in params.py: a flag for every field that differs from its
default, the profile by name when it has one, ControlNets and the IP-Adapter in their CLI spelling.

Every option is written `--flag=value`, so a value that starts with `-` (a ControlNet id `-lllyasviel/...`) is
never read as a flag. The line is quoted for a POSIX shell (shlex.quote) or for Windows' cmd.exe (below); either,
parsed back by its platform's rules and run through the CLI with --config-only, writes the very config.yaml that
Save config only writes for the same parameters (tests check both byte for byte).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any, Literal, get_args

from sdprep.messages import Message, msg
from sdprep.params import DEFAULTS, SPECS, BakedParams, ControlNetSlot
from sdprep.profiles import PROFILE_NAMES, profile_of, profile_values

SCRIPT = ("python", "gradio_prepare.py", "build")
Shell = Literal["posix", "cmd"]
SHELLS: tuple[Shell, ...] = get_args(Shell)
# What cmd.exe itself reads in a line (pipes, redirections, grouping, %VAR% and !VAR! expansion, its quote, its
# escape): each gets a caret. With every `"` escaped, cmd never enters its quoted mode, so every caret escapes.
_CMD_SPECIAL = frozenset('^&|<>()%!"')
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


def default_shell() -> Shell:
    """The shell of the server's own platform: the line is most often run where the page is served."""
    return "cmd" if os.name == "nt" else "posix"


def build_args(params: BakedParams) -> list[str]:
    """The CLI arguments after `build` for these parameters (NotACommand when the CLI cannot say them)."""
    args: list[str] = []
    profile = profile_of(params)
    named = profile in PROFILE_NAMES and profile != profile_of(DEFAULTS)
    if named:
        args.append(f"--profile={profile}")
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
            args.append(f"{spec.flag}={_value(value)}")
    if params.use_controlnet:
        if not params.controlnets:
            raise NotACommand(msg("command_cn_none"))
        for index, slot in enumerate(params.controlnets):
            args.append(f"--controlnet={_controlnet(slot, index)}")
    if params.use_ipadapter:
        args.append(f"--ipadapter={params.ipadapter_model_path}")
    args.append(f"--engines-dir={params.engines_dir}")
    return args


def shell_command(params: BakedParams, shell: Shell = "posix") -> str:
    """The whole line, quoted for a POSIX shell or for cmd.exe."""
    words = [*SCRIPT, *build_args(params)]
    return cmd_line(words) if shell == "cmd" else " ".join(shlex.quote(word) for word in words)


def cmd_line(words: list[str]) -> str:
    """`words` as one cmd.exe line: quoted by the rules Windows programs split their command line with
    (subprocess.list2cmdline: the C runtime's), then every character cmd.exe reads itself escaped with a caret.
    A line break cannot travel through cmd.exe at all: NotACommand."""
    if any(stop in word for word in words for stop in "\r\n\0"):
        raise NotACommand(msg("command_cmd_line_break"))
    return "".join(f"^{char}" if char in _CMD_SPECIAL else char for char in subprocess.list2cmdline(words))
