"""Every rule a build would otherwise discover after minutes on the GPU, checked in milliseconds.

`validate()` returns all problems at once, each tied to the field it is about and worded later from its code, so
the form can show them beside their controls and the CLI can print them together. Errors refuse the build;
warnings do not. Types, choices and ranges come from the declarations in params.py; the rules below are the ones
that need knowledge of StreamDiffusion.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sdprep import derive
from sdprep.addon_rules import controlnets, ipadapter, loras, too_long_problem
from sdprep.family import (
    FAMILY_LABELS,
    detect_family,
    known_model_family,
)
from sdprep.messages import Problem, error, has_errors, msg, shown, warning
from sdprep.model_ids import did_you_mean, known_ids
from sdprep.params import (
    SIZE_STEP,
    SPECS,
    TYPES,
    BakedParams,
    choices_of,
    size_range,
)
from sdprep.paths import (
    foreign_path,
    looks_like_local_path,
    nearest_existing_parent,
    server_system,
    special_file,
    too_long,
    user_path,
)

__all__ = ["CONFIG_ROUTE_MAX_BATCH", "Problem", "check_unet_batch", "has_errors", "validate"]

# The newest fork's config loader cannot set min/max batch: its UNet engine is always built for batch 1..4
# (docs/streamdiffusion-facts.md §0.1). A fork whose loader passes them through lifts this; the build runner tells
# validate() so.
CONFIG_ROUTE_MAX_BATCH = 4
# The VAE folder name is ~120 characters and is not hashed (docs/streamdiffusion-facts.md §11): warn before Windows' 260
# limit bites.
WINDOWS_ENGINE_DIR_BUDGET = 110


def validate(params: BakedParams, max_unet_batch: int = CONFIG_ROUTE_MAX_BATCH) -> list[Problem]:
    problems = _types_and_ranges(params)
    # Rules that combine fields need every field to be of its type (a whole number out of range is still one);
    # these read one text field each and always run.
    independent: tuple[Callable[[BakedParams], list[Problem]], ...] = (_model, loras, _engines_dir)
    combined: tuple[Callable[[BakedParams], list[Problem]], ...] = (
        _sampling,
        _size,
        controlnets,
        ipadapter,
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
                problems.append(error(name, "not_a_choice", value=shown(value), choices=list(choices)))
        elif TYPES[name] is bool or TYPES[name] == "bool":
            if not isinstance(value, bool):
                problems.append(error(name, "not_a_switch", value=shown(value)))
        elif spec.bounds is not None:
            low, high = spec.bounds
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(error(name, "not_finite", value=shown(value)))
            elif not _is_int(value) or not low <= value <= high:
                problems.append(error(name, "out_of_range", value=shown(value), low=low, high=high))
    return problems


def _model(params: BakedParams) -> list[Problem]:
    model = params.model.strip()
    if not model:
        return [error("model", "model_empty")]
    if too_long(model):
        return [too_long_problem("model", model)]
    problems: list[Problem] = []
    if looks_like_local_path(model):
        path = user_path(model)
        if not path.exists():
            foreign = foreign_path(model)
            if foreign is not None:
                return [error("model", f"{foreign}_path", path=model, server=server_system())]
            return [error("model", "model_missing", path=model)]
        if special_file(path):
            return [error("model", "special_file", path=model)]
        if path.is_file() and path.suffix.lower() not in (".safetensors", ".ckpt"):
            problems.append(error("model", "model_bad_suffix", path=model))
        if path.is_dir() and not (path / "model_index.json").exists() and not (path / "unet").is_dir():
            problems.append(error("model", "model_not_diffusers", path=model))
    suggestion = did_you_mean(model, known_ids(Path(params.engines_dir)))
    if suggestion is not None:
        problems.append(warning("model", "model_did_you_mean", typed=model, suggestion=suggestion))
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
        if not _is_int(value) or not low <= value <= high:
            continue  # _types_and_ranges says so
        if value % SIZE_STEP:
            lower = value - value % SIZE_STEP
            problems.append(error(name, "not_multiple_of_8", lower=lower, upper=lower + SIZE_STEP))
        floor = size_range(params.static_shapes)[0]
        if value < floor:
            problems.append(error(name, "size_dynamic_floor", value=value, low=floor, static_low=low))
    return problems


def _profile(params: BakedParams) -> list[Problem]:
    problems: list[Problem] = []
    if params.opt_level == 5:
        problems.append(warning("opt_level", "opt_level_5"))
    if params.opt_level <= 1:
        problems.append(warning("opt_level", "opt_level_low", level=params.opt_level))
    return problems


def check_unet_batch(params: BakedParams, max_unet_batch: int) -> list[Problem]:
    """The UNet batch these parameters need must fit the engine StreamDiffusion builds from a config
    (docs/streamdiffusion-facts.md §2)."""
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
        return [too_long_problem("engines_dir", folder)]
    path = user_path(folder)
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
