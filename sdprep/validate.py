"""Every rule a build would otherwise discover after minutes on the GPU, checked in milliseconds.

`validate()` returns all problems at once, each tied to the field it is about and worded later from its code, so
the form can show them beside their controls and the CLI can print them together. Errors refuse the build;
warnings do not. Types, choices and ranges come from the declarations in params.py; the rules below are the ones
that need knowledge of StreamDiffusion.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sdprep import derive
from sdprep.family import (
    DEFAULT_IPADAPTERS,
    FAMILY_LABELS,
    controlnet_family,
    controlnet_for,
    detect_family,
    ipadapter_family,
    known_model_family,
)
from sdprep.messages import Problem, error, has_errors, msg, warning
from sdprep.params import (
    MAX_CONTROLNETS,
    PREPROCESSORS,
    SIZE_STEP,
    SPECS,
    TYPES,
    BakedParams,
    choices_of,
)
from sdprep.paths import MAX_NAME, MAX_PATH_TEXT, looks_like_local_path, nearest_existing_parent, special_file, too_long

__all__ = ["CONFIG_ROUTE_MAX_BATCH", "Problem", "check_unet_batch", "has_errors", "validate"]

# The newest fork's config loader cannot set min/max batch: its UNet engine is always built for batch 1..4
# (FACTS §0.1). A fork whose loader passes them through lifts this; the build runner tells validate() so.
CONFIG_ROUTE_MAX_BATCH = 4
# The VAE folder name is ~120 characters and is not hashed (FACTS §11): warn before Windows' 260 limit bites.
WINDOWS_ENGINE_DIR_BUDGET = 110


def validate(params: BakedParams, max_unet_batch: int = CONFIG_ROUTE_MAX_BATCH) -> list[Problem]:
    problems = _types_and_ranges(params)
    # Rules that combine fields need every field to be of its type (a whole number out of range is still one);
    # these read one text field each and always run.
    independent: tuple[Callable[[BakedParams], list[Problem]], ...] = (_model, _loras, _engines_dir)
    combined: tuple[Callable[[BakedParams], list[Problem]], ...] = (
        _sampling,
        _size,
        _controlnets,
        _ipadapter,
        _profile,
    )
    mistyped = any(p.message.code != "out_of_range" or not _is_int(getattr(params, p.field)) for p in problems)
    rules = independent if mistyped else independent + combined
    for rule in rules:
        problems.extend(rule(params))
    batch_fields = {"denoise_steps", "cfg_type", "frame_buffer_size", "scheduler", "consistency_lora"}
    if not mistyped and not any(p.severity == "error" and p.field in batch_fields for p in problems):
        problems.extend(check_unet_batch(params, max_unet_batch))  # the batch of valid steps, cfg and buffer
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _types_and_ranges(params: BakedParams) -> list[Problem]:
    """What the declarations say: a choice among the Literal's values, a whole number in its bounds, a bool."""
    problems: list[Problem] = []
    for name, spec in SPECS.items():
        value = getattr(params, name)
        choices = choices_of(name)
        if choices is not None:
            if value not in choices or isinstance(value, bool):
                problems.append(error(name, "not_a_choice", value=repr(value), choices=list(choices)))
        elif TYPES[name] is bool or TYPES[name] == "bool":
            if not isinstance(value, bool):
                problems.append(error(name, "not_a_switch", value=repr(value)))
        elif spec.bounds is not None:
            low, high = spec.bounds
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(error(name, "not_finite", value=repr(value)))
            elif not _is_int(value) or not low <= value <= high:
                problems.append(error(name, "out_of_range", value=repr(value), low=low, high=high))
    return problems


def _too_long(name: str, text: str) -> Problem:
    """What the OS would answer "File name too long" for: the whole text, or one name in it."""
    if len(text) > MAX_PATH_TEXT:
        return error(name, "path_too_long", length=len(text))
    longest = max(len(part) for part in re.split(r"[\\/]", text))
    return error(name, "name_too_long", length=longest, max=MAX_NAME)


def _model(params: BakedParams) -> list[Problem]:
    model = params.model.strip()
    if not model:
        return [error("model", "model_empty")]
    if too_long(model):
        return [_too_long("model", model)]
    problems: list[Problem] = []
    if looks_like_local_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            return [error("model", "model_missing", path=model)]
        if special_file(path):
            return [error("model", "special_file", path=model)]
        if path.is_file() and path.suffix.lower() not in (".safetensors", ".ckpt"):
            problems.append(error("model", "model_bad_suffix", path=model))
        if path.is_dir() and not (path / "model_index.json").exists() and not (path / "unet").is_dir():
            problems.append(error("model", "model_not_diffusers", path=model))
    guess = detect_family(model)
    known = known_model_family(model)
    if params.model_family == "auto" and guess.source == "assumed":
        problems.append(warning("model_family", "family_assumed"))
    elif params.model_family != "auto" and known is not None and known != params.model_family:
        problems.append(
            warning(
                "model_family",
                "family_contradicts",
                model=model,
                known=FAMILY_LABELS[known],
                chosen=FAMILY_LABELS.get(params.model_family, params.model_family),
            )
        )
    taken_by = derive.slug_taken_by(params)
    if taken_by is not None:
        problems.append(
            warning(
                "model",
                "slug_collision",
                other=taken_by,
                folder=derive.model_slug(model),
                used=derive.engine_dir(params).name,
            )
        )
    return problems


def _sampling(params: BakedParams) -> list[Problem]:
    problems: list[Problem] = []
    family = derive.family(params)
    is_turbo = "turbo" in params.model.lower()
    if params.consistency_lora != "none" and derive.consistency_lora_id(params) is None:
        problems.append(
            error(
                "consistency_lora",
                "no_consistency_lora",
                kind=params.consistency_lora.upper(),
                family=FAMILY_LABELS[family],
            )
        )
    if params.consistency_lora != "none" and is_turbo:
        problems.append(warning("consistency_lora", "turbo_with_lora"))
    if params.consistency_lora == "none" and not is_turbo and params.denoise_steps <= 4:
        problems.append(warning("consistency_lora", "few_steps_without_lora", steps=params.denoise_steps))
    return problems


def _size(params: BakedParams) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("width", "height"):
        value = getattr(params, name)
        low, high = SPECS[name].bounds or (0, 0)
        if low <= value <= high and value % SIZE_STEP:
            lower = value - value % SIZE_STEP
            problems.append(error(name, "not_multiple_of_8", lower=lower, upper=lower + SIZE_STEP))
    return problems


def _reference_problems(name: str, value: str, empty_code: str, **context: object) -> list[Problem]:
    """A LoRA / ControlNet / IP-Adapter reference: a Hugging Face id (owner/name[/file]) or an existing file/folder."""
    text = value.strip()
    if not text:
        return [error(name, empty_code, **context)]
    if too_long(text):
        return [_too_long(name, text)]
    if looks_like_local_path(text, hub_subpaths=True):
        path = Path(text).expanduser()
        if not path.exists():
            if "/" not in text and "\\" not in text and not text.startswith((".", "~")):
                return [error(name, "not_file_nor_id", value=text)]
            return [error(name, "reference_missing", path=text)]
        if special_file(path):
            return [error(name, "special_file", path=text)]
    return []


def _loras(params: BakedParams) -> list[Problem]:
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


def _controlnets(params: BakedParams) -> list[Problem]:
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
                error(f"{prefix}.conditioning_channels", "bad_channels", slot=index + 1, value=repr(channels))
            )
        if not slot.preprocessor.strip():
            problems.append(error(f"{prefix}.preprocessor", "preprocessor_empty", slot=index + 1))
        elif slot.preprocessor not in PREPROCESSORS:
            problems.append(warning(f"{prefix}.preprocessor", "preprocessor_unknown", name=slot.preprocessor))
    return problems


def _ipadapter(params: BakedParams) -> list[Problem]:
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
        # The fork knows no IP-Adapter for SD 2.1 and turns a known one off (FACTS §7): it would not be baked.
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


def _profile(params: BakedParams) -> list[Problem]:
    problems: list[Problem] = []
    if params.opt_level == 5:
        problems.append(warning("opt_level", "opt_level_5"))
    if params.opt_level <= 1:
        problems.append(warning("opt_level", "opt_level_low", level=params.opt_level))
    return problems


def check_unet_batch(params: BakedParams, max_unet_batch: int) -> list[Problem]:
    """The UNet batch these parameters need must fit the engine StreamDiffusion builds from a config (FACTS §2)."""
    batch = derive.unet_batch(params)
    if batch <= max_unet_batch:
        return []
    fixes = []
    fitting_steps = [
        steps
        for steps in range(1, params.denoise_steps)
        if derive.unet_batch(replace(params, denoise_steps=steps)) <= max_unet_batch
    ]
    if fitting_steps:
        fixes.append(msg("fix_fewer_steps", steps=fitting_steps[-1]))
    if params.frame_buffer_size > 1 and derive.unet_batch(replace(params, frame_buffer_size=1)) <= max_unet_batch:
        fixes.append(msg("fix_smaller_buffer"))
    if (
        params.cfg_type in ("full", "initialize")
        and derive.unet_batch(replace(params, cfg_type="self")) <= max_unet_batch
    ):
        fixes.append(msg("fix_cfg_self"))
    if derive.scheduler(params) != "tcd" and params.frame_buffer_size <= max_unet_batch:
        fixes.append(msg("fix_tcd"))
    return [
        error(
            "denoise_steps",
            "unet_batch_too_large",
            steps=params.denoise_steps,
            cfg=params.cfg_type,
            buffer=params.frame_buffer_size,
            batch=batch,
            max=max_unet_batch,
            fixes=fixes,
        )
    ]


def _engines_dir(params: BakedParams) -> list[Problem]:
    folder = params.engines_dir.strip()
    if not folder:
        return [error("engines_dir", "engines_dir_empty")]
    if too_long(folder):
        return [_too_long("engines_dir", folder)]
    path = Path(folder).expanduser()
    if path.is_symlink() and not path.exists():
        return [error("engines_dir", "engines_dir_dangling", path=folder, target=os.readlink(path))]
    if path.exists() and not path.is_dir():
        return [error("engines_dir", "engines_dir_is_file", path=folder)]
    existing = nearest_existing_parent(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [error("engines_dir", "engines_dir_read_only", path=folder, existing=str(existing))]
    problems: list[Problem] = []
    if len(str(derive.engine_dir(params).resolve())) > WINDOWS_ENGINE_DIR_BUDGET:
        problems.append(warning("engines_dir", "engines_dir_long"))
    return problems
