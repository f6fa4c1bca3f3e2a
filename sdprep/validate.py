"""Every rule a build would otherwise discover after minutes on the GPU, checked in milliseconds.

`validate()` returns all problems at once, each tied to the field it is about, so the form can show them
beside their controls and the CLI can print them together. Errors refuse the build; warnings do not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sdprep import derive
from sdprep.family import detect_family
from sdprep.params import (
    CACHE_MAXFRAMES_RANGE,
    CFG_TYPE_CHOICES,
    CONSISTENCY_LORA_CHOICES,
    FAMILY_CHOICES,
    FRAME_BUFFER_RANGE,
    IPADAPTER_TOKEN_CHOICES,
    IPADAPTER_TYPE_CHOICES,
    MAX_CONTROLNETS,
    PREPROCESSORS,
    SCHEDULER_CHOICES,
    SIZE_RANGE,
    SIZE_STEP,
    STEPS_RANGE,
    BakedParams,
)
from sdprep.paths import looks_like_local_path, nearest_existing_parent

Severity = Literal["error", "warning"]

# The newest fork's config loader cannot set min/max batch: its UNet engine is always built for batch 1..4
# (FACTS §0.1). A fork whose loader passes them through lifts this; the build runner tells validate() so.
CONFIG_ROUTE_MAX_BATCH = 4
# A dynamic-shape VAE engine is built for 384..1024 px (FACTS §2), below that its build fails.
VAE_MIN_SIZE = 384
# The VAE folder name is ~120 characters and is not hashed (FACTS §11): warn before Windows' 260 limit bites.
WINDOWS_ENGINE_DIR_BUDGET = 110


@dataclass(frozen=True)
class Problem:
    field: str  # a BakedParams field name, or "controlnets[i].<slot field>"
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.field}: {self.message}"


def has_errors(problems: list[Problem]) -> bool:
    return any(problem.severity == "error" for problem in problems)


def validate(params: BakedParams, max_unet_batch: int = CONFIG_ROUTE_MAX_BATCH) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (
        _model,
        _choices,
        _sampling,
        _size,
        _cached_attention,
        _loras,
        _controlnets,
        _ipadapter,
        _engines_dir,
    ):
        problems.extend(rule(params))
    problems.extend(check_unet_batch(params, max_unet_batch))
    return problems


def _error(field: str, message: str) -> Problem:
    return Problem(field, "error", message)


def _warning(field: str, message: str) -> Problem:
    return Problem(field, "warning", message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(field: str, label: str, value: object, bounds: tuple[int, int]) -> list[Problem]:
    low, high = bounds
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        return [_error(field, f"{label} must be a whole number from {low} to {high}, not {value!r}.")]
    return []


def _model(params: BakedParams) -> list[Problem]:
    model = params.model.strip()
    if not model:
        return [_error("model", "Choose a model: a Hugging Face id like stabilityai/sd-turbo, or a local path.")]
    problems: list[Problem] = []
    if looks_like_local_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            return [_error("model", f"The local model {model} does not exist. Check the path, or use an HF id.")]
        if path.is_file() and path.suffix.lower() not in (".safetensors", ".ckpt"):
            problems.append(_error("model", "A single-file model must be a .safetensors or .ckpt file."))
        if path.is_dir() and not (path / "model_index.json").exists() and not (path / "unet").is_dir():
            problems.append(_error("model", f"{model} is not a diffusers folder: it has no model_index.json."))
    guess = detect_family(model)
    if params.model_family == "auto" and guess.source == "assumed":
        problems.append(
            _warning(
                "model_family",
                "The model family could not be recognised and is assumed to be SD 1.5; "
                "set the model family if it is SD 2.1 or SDXL.",
            )
        )
    return problems


def _choices(params: BakedParams) -> list[Problem]:
    checks = (
        ("model_family", params.model_family, FAMILY_CHOICES),
        ("consistency_lora", params.consistency_lora, CONSISTENCY_LORA_CHOICES),
        ("scheduler", params.scheduler, SCHEDULER_CHOICES),
        ("cfg_type", params.cfg_type, CFG_TYPE_CHOICES),
        ("ipadapter_type", params.ipadapter_type, IPADAPTER_TYPE_CHOICES),
    )
    return [
        _error(field, f"{value!r} is not one of {', '.join(choices)}.")
        for field, value, choices in checks
        if value not in choices
    ]


def _sampling(params: BakedParams) -> list[Problem]:
    problems = _in_range("denoise_steps", "Denoising steps", params.denoise_steps, STEPS_RANGE)
    problems += _in_range("frame_buffer_size", "Frame buffer size", params.frame_buffer_size, FRAME_BUFFER_RANGE)
    if problems or params.consistency_lora not in CONSISTENCY_LORA_CHOICES:
        return problems
    family = derive.family(params) if params.model_family in FAMILY_CHOICES else "sd1.5"
    label = derive.FAMILY_LABELS[family]
    if params.consistency_lora != "none" and derive.consistency_lora_id(params) is None:
        problems.append(
            _error(
                "consistency_lora",
                f"There is no {params.consistency_lora.upper()} LoRA for {label} models. "
                "Choose TCD, or none with a distilled (turbo) model.",
            )
        )
    if params.consistency_lora != "none" and "turbo" in params.model.lower():
        problems.append(
            _warning(
                "consistency_lora",
                "Turbo models are already distilled for few steps; a consistency LoRA usually makes them worse.",
            )
        )
    if params.consistency_lora == "none" and "turbo" not in params.model.lower() and params.denoise_steps <= 4:
        problems.append(
            _warning(
                "consistency_lora",
                f"{params.denoise_steps} step(s) without a consistency LoRA give noisy images "
                "unless the model is distilled (turbo, LCM or TCD merged).",
            )
        )
    return problems


def _size(params: BakedParams) -> list[Problem]:
    problems: list[Problem] = []
    low, high = SIZE_RANGE
    for field, value in (("width", params.width), ("height", params.height)):
        if not _is_int(value) or not low <= value <= high:
            problems.append(_error(field, f"{field.capitalize()} must be from {low} to {high} pixels, not {value!r}."))
        elif value % SIZE_STEP:
            lower = value - value % SIZE_STEP
            problems.append(
                _error(field, f"{field.capitalize()} must be a multiple of 8 (try {lower} or {lower + SIZE_STEP}).")
            )
        elif value < VAE_MIN_SIZE:
            problems.append(
                _error(
                    field,
                    f"{field.capitalize()} {value} is below {VAE_MIN_SIZE}: StreamDiffusion builds its VAE engines "
                    f"for {VAE_MIN_SIZE}-{high} pixels, so the build would fail.",
                )
            )
    return problems


def _cached_attention(params: BakedParams) -> list[Problem]:
    if not params.use_cached_attn:
        return []
    return _in_range("cache_maxframes", "Cache max frames", params.cache_maxframes, CACHE_MAXFRAMES_RANGE)


def _loras(params: BakedParams) -> list[Problem]:
    try:
        loras = derive.parse_lora_json(params.lora_json)
    except ValueError as error:
        return [_error("lora_json", f"The LoRA list {error}.")]
    problems: list[Problem] = []
    for lora_id, scale in loras.items():
        if lora_id in derive.ALL_CONSISTENCY_LORA_IDS:
            problems.append(
                _error("lora_json", f"{lora_id} is a consistency LoRA: choose it under Consistency LoRA instead.")
            )
        elif looks_like_local_path(lora_id, hub_subpaths=True) and not Path(lora_id).expanduser().exists():
            problems.append(_error("lora_json", f"The LoRA file {lora_id} does not exist."))
        if scale == 0:
            problems.append(_warning("lora_json", f"{lora_id} has scale 0: StreamDiffusion skips it."))
    return problems


def _controlnets(params: BakedParams) -> list[Problem]:
    if not params.use_controlnet:
        return []
    problems: list[Problem] = []
    if not params.controlnets:
        problems.append(
            _warning(
                "use_controlnet",
                "No ControlNet is chosen: the UNet is built to accept ControlNets, but no ControlNet engine is built; "
                "ControlNets added later run in PyTorch (slower).",
            )
        )
    if len(params.controlnets) > MAX_CONTROLNETS:
        problems.append(_error("controlnets", f"At most {MAX_CONTROLNETS} ControlNets can be baked."))
    seen: set[str] = set()
    for index, slot in enumerate(params.controlnets):
        prefix = f"controlnets[{index}]"
        model_id = slot.model_id.strip()
        if not model_id:
            problems.append(_error(f"{prefix}.model_id", f"ControlNet {index + 1} needs a model id or path."))
        elif looks_like_local_path(model_id, hub_subpaths=True) and not Path(model_id).expanduser().exists():
            problems.append(_error(f"{prefix}.model_id", f"The ControlNet {model_id} does not exist on disk."))
        elif model_id in seen:
            problems.append(_warning(f"{prefix}.model_id", f"{model_id} is used twice; both slots share one engine."))
        seen.add(model_id)
        channels = slot.conditioning_channels
        if channels is not None and (not _is_int(channels) or channels <= 0):
            problems.append(
                _error(
                    f"{prefix}.conditioning_channels",
                    f"Conditioning channels of ControlNet {index + 1} must be a positive whole number "
                    f"(usually 3), not {channels!r}.",
                )
            )
        if not slot.preprocessor.strip():
            problems.append(_error(f"{prefix}.preprocessor", f"ControlNet {index + 1} needs a preprocessor."))
        elif slot.preprocessor not in PREPROCESSORS:
            problems.append(
                _warning(
                    f"{prefix}.preprocessor",
                    f"{slot.preprocessor!r} is not a standard StreamDiffusion preprocessor; "
                    "it works only if your install registers it.",
                )
            )
    return problems


def _ipadapter(params: BakedParams) -> list[Problem]:
    if not params.use_ipadapter:
        return []
    problems: list[Problem] = []
    for field, label, value in (
        ("ipadapter_model_path", "IP-Adapter model path", params.ipadapter_model_path),
        ("ipadapter_encoder_path", "IP-Adapter encoder path", params.ipadapter_encoder_path),
    ):
        if not value.strip():
            problems.append(_error(field, f"{label} is required when IP-Adapter is on."))
        elif looks_like_local_path(value, hub_subpaths=True) and not Path(value).expanduser().exists():
            problems.append(_error(field, f"{label} {value} does not exist."))
    if params.ipadapter_tokens not in IPADAPTER_TOKEN_CHOICES:
        problems.append(_error("ipadapter_tokens", f"Tokens must be 4 or 16, not {params.ipadapter_tokens!r}."))
    is_plus = params.ipadapter_type == "plus" or "plus" in params.ipadapter_model_path.lower()
    if params.ipadapter_tokens == 16 and not is_plus:
        problems.append(
            _warning(
                "ipadapter_tokens",
                "16 tokens are for IP-Adapter Plus models; this adapter looks like a regular one (4 tokens).",
            )
        )
    if params.ipadapter_tokens == 4 and params.ipadapter_type == "plus":
        problems.append(_warning("ipadapter_tokens", "IP-Adapter Plus models use 16 tokens, not 4."))
    if params.model_family in FAMILY_CHOICES and derive.family(params) == "sd2.1":
        problems.append(
            _warning(
                "use_ipadapter",
                "There is no IP-Adapter for SD 2.1 models; StreamDiffusion turns it off for this model.",
            )
        )
    return problems


def check_unet_batch(params: BakedParams, max_unet_batch: int) -> list[Problem]:
    if _in_range("", "", params.denoise_steps, STEPS_RANGE) or not _is_int(params.frame_buffer_size):
        return []  # reported by _sampling
    if params.cfg_type not in CFG_TYPE_CHOICES or params.scheduler not in SCHEDULER_CHOICES:
        return []
    batch = derive.unet_batch(params)
    if batch <= max_unet_batch:
        return []
    return [
        _error(
            "denoise_steps",
            f"{params.denoise_steps} step(s) with cfg_type {params.cfg_type} need a UNet batch of {batch}, but "
            f"StreamDiffusion builds the UNet engine for batch 1..{max_unet_batch} from a config. Use fewer steps"
            f"{'' if params.cfg_type in ('self', 'none') else ', cfg_type self or none'}, or the TCD scheduler.",
        )
    ]


def _engines_dir(params: BakedParams) -> list[Problem]:
    folder = params.engines_dir.strip()
    if not folder:
        return [_error("engines_dir", "Choose an engines folder.")]
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        return [_error("engines_dir", f"{folder} is a file, not a folder.")]
    existing = nearest_existing_parent(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [_error("engines_dir", f"The engines folder {folder} is not writable ({existing} is read-only).")]
    problems: list[Problem] = []
    if len(str(derive.engine_dir(params).resolve())) > WINDOWS_ENGINE_DIR_BUDGET:
        problems.append(
            _warning(
                "engines_dir",
                "This engines folder path is long: on Windows engine paths over 260 characters fail. "
                "A shorter folder (e.g. C:\\engines) is safer.",
            )
        )
    return problems
