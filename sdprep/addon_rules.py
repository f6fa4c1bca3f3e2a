"""The rules for what a model takes on top: the user's LoRAs, ControlNets and the IP-Adapter.

Each is a Hugging Face id or an existing file or folder (not a device or a pipe), of the model's family where the
family is known (the fork's own registry of ControlNets and IP-Adapters, docs/streamdiffusion-facts.md §6-7). Called by
validate().
"""

from __future__ import annotations

import re

from sdprep import derive
from sdprep.family import DEFAULT_IPADAPTERS, FAMILY_LABELS, controlnet_family, controlnet_for, ipadapter_family
from sdprep.messages import Problem, error, shown, warning
from sdprep.params import MAX_CONTROLNETS, PREPROCESSORS, BakedParams
from sdprep.paths import (
    MAX_NAME,
    MAX_PATH_TEXT,
    foreign_path,
    looks_like_local_path,
    server_system,
    special_file,
    too_long,
    user_path,
)


def too_long_problem(name: str, text: str) -> Problem:
    """What the OS would answer "File name too long" for: the whole text, or one name in it."""
    if len(text) > MAX_PATH_TEXT:
        return error(name, "path_too_long", length=len(text))
    longest = max(len(part) for part in re.split(r"[\\/]", text))
    return error(name, "name_too_long", length=longest, max=MAX_NAME)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reference_problems(name: str, value: str, empty_code: str, **context: object) -> list[Problem]:
    """A LoRA / ControlNet / IP-Adapter reference: a Hugging Face id (owner/name[/file]) or an existing file/folder."""
    text = value.strip()
    if not text:
        return [error(name, empty_code, **context)]
    if too_long(text):
        return [too_long_problem(name, text)]
    if looks_like_local_path(text, hub_subpaths=True):
        path = user_path(text)
        if not path.exists():
            foreign = foreign_path(text)
            if foreign is not None:
                return [error(name, f"{foreign}_path", path=text, server=server_system())]
            if "/" not in text and "\\" not in text and not text.startswith((".", "~")):
                return [error(name, "not_file_nor_id", value=text)]
            return [error(name, "reference_missing", path=text)]
        if special_file(path):
            return [error(name, "special_file", path=text)]
    return []


def loras(params: BakedParams) -> list[Problem]:
    try:
        loras = derive.parse_lora_json(params.lora_json)
    except derive.InvalidLoras as invalid:
        return [error("lora_json", invalid.message.code, **invalid.message.params)]
    problems: list[Problem] = []
    for lora_id, scale in loras.items():
        if lora_id in derive.ALL_CONSISTENCY_LORA_IDS:
            problems.append(error("lora_json", "lora_is_consistency", lora=lora_id))
            continue
        problems += _reference_problems("lora_json", lora_id, "lora_empty_id")
        if scale == 0:
            problems.append(warning("lora_json", "lora_scale_zero", lora=lora_id))
    return problems


def controlnets(params: BakedParams) -> list[Problem]:
    if not params.use_controlnet:
        return []
    if not params.controlnets:
        return [warning("use_controlnet", "controlnet_none_chosen")]
    if len(params.controlnets) > MAX_CONTROLNETS:
        # One problem for one mistake: the slots themselves are not judged until there are few enough.
        return [error("controlnets", "too_many_controlnets", count=len(params.controlnets), max=MAX_CONTROLNETS)]
    family = derive.family(params)
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, slot in enumerate(params.controlnets):
        prefix = f"controlnets[{index}]"
        model_id = slot.model_id.strip()
        found = _reference_problems(f"{prefix}.model_id", model_id, "controlnet_empty", slot=index + 1)
        problems += found
        made_for = controlnet_family(model_id)
        if not found and made_for is not None and made_for != family:
            problems.append(
                error(
                    f"{prefix}.model_id",
                    "controlnet_wrong_family",
                    model_id=model_id,
                    made_for=FAMILY_LABELS[made_for],
                    family=FAMILY_LABELS[family],
                    offered=controlnet_for(model_id, family, index),
                )
            )
        elif not found and model_id in seen:
            problems.append(warning(f"{prefix}.model_id", "controlnet_duplicate", model_id=model_id))
        seen.add(model_id)
        channels = slot.conditioning_channels
        if channels is not None and (not _is_int(channels) or channels <= 0):
            problems.append(
                error(f"{prefix}.conditioning_channels", "bad_channels", slot=index + 1, value=shown(channels))
            )
        if not slot.preprocessor.strip():
            problems.append(error(f"{prefix}.preprocessor", "preprocessor_empty", slot=index + 1))
        elif slot.preprocessor not in PREPROCESSORS:
            problems.append(warning(f"{prefix}.preprocessor", "preprocessor_unknown", name=slot.preprocessor))
    return problems


def ipadapter(params: BakedParams) -> list[Problem]:
    if not params.use_ipadapter:
        return []
    problems: list[Problem] = []
    for name, code in (
        ("ipadapter_model_path", "ipadapter_model_empty"),
        ("ipadapter_encoder_path", "ipadapter_encoder_empty"),
    ):
        problems += _reference_problems(name, getattr(params, name), code)
    is_plus = params.ipadapter_type == "plus" or "plus" in params.ipadapter_model_path.lower()
    if params.ipadapter_tokens == 16 and not is_plus:
        problems.append(warning("ipadapter_tokens", "tokens_16_regular"))
    if params.ipadapter_tokens == 4 and params.ipadapter_type == "plus":
        problems.append(warning("ipadapter_tokens", "tokens_4_plus"))
    family = derive.family(params)
    made_for = ipadapter_family(params.ipadapter_model_path)
    if family == "sd2.1":
        # The fork knows no IP-Adapter for SD 2.1 and turns a known one off (docs/streamdiffusion-facts.md §7): it would
        # not be baked.
        if made_for is not None:
            problems.append(error("use_ipadapter", "ipadapter_none_for_sd21", model_id=params.ipadapter_model_path))
        else:
            problems.append(warning("use_ipadapter", "ipadapter_custom_sd21"))
    elif made_for is not None and made_for != family:
        offered, encoder = DEFAULT_IPADAPTERS[family]
        problems.append(
            error(
                "ipadapter_model_path",
                "ipadapter_wrong_family",
                model_id=params.ipadapter_model_path,
                made_for=FAMILY_LABELS[made_for],
                family=FAMILY_LABELS[family],
                offered=offered,
                encoder=encoder,
            )
        )
    return problems
