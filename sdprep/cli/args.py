"""The command line, derived from the parameter declarations: one flag per BakedParams field (params.py), plus the
flags of each command. Help texts come from the same text table as the page, in the CLI's language.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from sdprep.jobs.check import DEFAULT_FRAMES, DEFAULT_WARMUP
from sdprep.jobs.process import GPU_ENV
from sdprep.messages import Problem, error
from sdprep.params import (
    DEFAULTS,
    MAX_CONTROLNETS,
    SIZE_STEP,
    SPECS,
    TYPES,
    BakedParams,
    choices_of,
    params_from_values,
)
from sdprep.profiles import PROFILE_FIELDS, PROFILE_NAMES, contradicted, profile_of, profile_values
from sdprep.text import TABLE, t

LANG_CHOICES = ("en", "ru")


def flag_for(field: str, lang: str = "en") -> str:
    """The flag a CLI user typed for a field, so every message names what to fix ("--controlnet #2" for a slot)."""
    if field.startswith("controlnets["):
        index = int(field[len("controlnets[") : field.index("]")])
        return f"--controlnet #{index + 1}"
    spec = SPECS.get(field)
    return spec.flag if spec else field


def _help(name: str, lang: str) -> str:
    """The field's hint, then its rules and its default: "[384-1024, a multiple of 8; default: 512]"."""
    key = f"i_{name}" if f"i_{name}" in TABLE["en"] else f"f_{name}"
    rules: list[str] = []
    bounds = SPECS[name].bounds
    if bounds:
        rules.append(f"{bounds[0]}-{bounds[1]}")
    if name in ("width", "height"):
        rules.append(t("cli_multiple_of", lang, step=SIZE_STEP))
    default = getattr(DEFAULTS, name)
    if isinstance(default, bool):
        shown = SPECS[name].flag if default else "--no-" + SPECS[name].flag.removeprefix("--")
    else:
        shown = str(default)
    if shown:
        rules = [", ".join(rules)] if rules else []
        rules.append(t("cli_default", lang, value=shown))
    return f"{t(key, lang)} [{'; '.join(rules)}]".replace("%", "%%")  # argparse formats help with %


def _value_type(name: str) -> Any:
    choices = choices_of(name)
    if choices is not None:
        return type(choices[0])
    return int if TYPES[name] is int else str


def add_param_flags(parser: argparse.ArgumentParser, lang: str) -> None:
    """Every declared parameter as a flag (dest = the field name); custom ones are spelled out below."""
    group = parser.add_argument_group(t("cli_group_params", lang))
    for name, spec in SPECS.items():
        if spec.cli == "custom" or name == "engines_dir":
            continue
        # A profile's fields default to None, so that a flag typed equal to its default still counts as typed.
        default = None if name in PROFILE_FIELDS else getattr(DEFAULTS, name)
        if spec.cli == "switch":
            group.add_argument(
                spec.flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=_help(name, lang)
            )
        else:
            choices = choices_of(name)
            group.add_argument(
                spec.flag,
                dest=name,
                type=_value_type(name),
                choices=choices,
                default=default,
                metavar=None if choices else ("N" if TYPES[name] is int else "TEXT"),
                help=_help(name, lang),
            )
    group.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=None,
        help=f"{t('cli_profile', lang)} [{t('cli_default', lang, value=profile_of(DEFAULTS))}]",
    )
    group.add_argument(
        "--controlnet",
        action="append",
        default=[],
        metavar="MODEL_ID[,preprocessor=NAME][,channels=N][,enabled=false]",
        help=t("cli_controlnet", lang, max=MAX_CONTROLNETS),
    )
    ipadapter_default = t("cli_default", lang, value=DEFAULTS.ipadapter_model_path)
    group.add_argument("--ipadapter", metavar="PATH", help=f"{t('cli_ipadapter', lang)} [{ipadapter_default}]")
    engines_default = t("cli_default", lang, value=DEFAULTS.engines_dir)
    group.add_argument(
        "--engines-dir", default=None, metavar="DIR", help=f"{t('i_engines_dir', lang)} [{engines_default}]"
    )


def parse_controlnet(text: str, index: int) -> tuple[dict[str, Any], list[Problem]]:
    field = f"controlnets[{index}]"
    model_id, *options = [part.strip() for part in text.split(",")]
    slot: dict[str, Any] = {"model_id": model_id, "preprocessor": "passthrough"}
    problems: list[Problem] = []
    for option in options:
        key, _, value = option.partition("=")
        if key == "preprocessor" and value:
            slot["preprocessor"] = value
        elif key == "channels":
            try:
                slot["conditioning_channels"] = int(value)
            except ValueError:
                problems.append(error(f"{field}.conditioning_channels", "cli_channels_not_int", value=value))
        elif key == "enabled" and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            slot["enabled"] = value.lower() in ("true", "1", "yes")
        else:
            problems.append(error(f"{field}.model_id", "cli_unknown_option", option=option))
    return slot, problems


def params_from_args(args: argparse.Namespace) -> tuple[BakedParams, list[Problem]]:
    """The flags as BakedParams; problems that only the CLI can have (a malformed --controlnet option)."""
    problems: list[Problem] = []
    values: dict[str, Any] = {name: getattr(args, name) for name in SPECS if hasattr(args, name)}
    # What a profile sets, then what was typed: any flag typed wins over the profile (unless it says the opposite
    # of the profile's very name, which is refused), and a mix that is no profile builds as "custom".
    typed = {name: values[name] for name in PROFILE_FIELDS if values.get(name) is not None}
    values.update({name: getattr(DEFAULTS, name) for name in PROFILE_FIELDS})
    if args.profile is not None:
        values.update(profile_values(args.profile))
        against = contradicted(args.profile, typed)
        if against is not None:
            flag = SPECS[against].flag
            typed_flag = flag if typed[against] else f"--no-{flag.removeprefix('--')}"
            problems.append(error(against, "cli_profile_contradiction", flag=typed_flag, profile=args.profile))
    values.update(typed)
    slots = []
    for index, text in enumerate(args.controlnet):  # too many is one problem, reported by validate()
        slot, slot_problems = parse_controlnet(text, index)
        slots.append(slot)
        problems += slot_problems
    values["use_controlnet"] = bool(args.controlnet)
    values["controlnets"] = slots
    values["use_ipadapter"] = args.ipadapter is not None
    # `--ipadapter ""` is an empty path (an error), not the default adapter.
    values["ipadapter_model_path"] = DEFAULTS.ipadapter_model_path if args.ipadapter is None else args.ipadapter
    # `--engines-dir ""` is refused by validate(), not silently replaced by the default folder.
    values["engines_dir"] = DEFAULTS.engines_dir if args.engines_dir is None else args.engines_dir
    return params_from_values(values), problems


def add_child_flags(parser: argparse.ArgumentParser, lang: str) -> None:
    parser.add_argument("--python", metavar="PATH", help=t("cli_python", lang))
    parser.add_argument("--streamdiffusion-src", metavar="DIR", help=t("cli_streamdiffusion_src", lang))
    add_gpu_flag(parser, lang)


def add_gpu_flag(parser: argparse.ArgumentParser, lang: str) -> None:
    # A string default goes through `type` too: a bad $SDPREP_GPU is refused as a bad --gpu is.
    parser.add_argument("--gpu", type=_gpu_index, default=os.environ.get(GPU_ENV) or "0", help=t("cli_gpu", lang))


def _gpu_index(text: str) -> int:
    """A GPU index: 0 or more. -1 would hide every GPU from CUDA (CUDA_VISIBLE_DEVICES=-1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(t("cli_gpu_bad", current_lang(), value=text)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(t("cli_gpu_bad", current_lang(), value=text))
    return value


def add_check_flags(parser: argparse.ArgumentParser, lang: str) -> None:
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N", help=t("cli_warmup", lang))
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N", help=t("cli_frames", lang))


_LANG: list[str] = ["en"]


def current_lang() -> str:
    return _LANG[0]


def set_lang(lang: str) -> None:
    _LANG[0] = lang
