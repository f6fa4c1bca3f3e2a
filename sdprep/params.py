"""The parameters that TensorRT bakes into StreamDiffusion engines: one typed model, its choices and defaults.

Everything the user chooses in the form or on the command line is a field of `BakedParams`. Runtime values
(prompt, guidance, seed, ...) are not here: they come from RUNTIME_DEFAULTS in gradio_prepare.py and can be
changed later with StreamDiffusion's `update_stream_params()` without a rebuild.

Defaults are what a new user of SD-Turbo wants: stabilityai/sd-turbo, one denoising step, no consistency LoRA
(the model is already distilled), RCFG "self" (no extra UNet work), 512x512, the tiny VAE (TAESD) for speed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

from sdprep.family import detect_family
from sdprep.paths import absolute_model, absolute_path

ConsistencyLora = Literal["lcm", "tcd", "none"]
Scheduler = Literal["lcm", "tcd"]
CfgType = Literal["none", "full", "self", "initialize"]
Family = Literal["auto", "sd1.5", "sd2.1", "sdxl"]
IPAdapterType = Literal["regular", "plus", "faceid"]
IPAdapterTokens = Literal[4, 16]

CONSISTENCY_LORA_CHOICES: tuple[str, ...] = get_args(ConsistencyLora)
SCHEDULER_CHOICES: tuple[str, ...] = get_args(Scheduler)
CFG_TYPE_CHOICES: tuple[str, ...] = get_args(CfgType)
FAMILY_CHOICES: tuple[str, ...] = get_args(Family)
IPADAPTER_TYPE_CHOICES: tuple[str, ...] = get_args(IPAdapterType)
IPADAPTER_TOKEN_CHOICES: tuple[int, ...] = get_args(IPAdapterTokens)

# Ranges the form and the CLI offer; validate.py explains each violation.
STEPS_RANGE = (1, 8)
SIZE_RANGE = (256, 1024)
SIZE_STEP = 8
CACHE_MAXFRAMES_RANGE = (1, 4)
FRAME_BUFFER_RANGE = (1, 4)
MAX_CONTROLNETS = 3

POPULAR_MODELS: tuple[str, ...] = (
    "stabilityai/sd-turbo",
    "stabilityai/sdxl-turbo",
    "KBlueLeaf/kohaku-v2.1",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/stable-diffusion-xl-base-1.0",
)

# StreamDiffusion's always-registered preprocessors (forkni preprocessing/processors/__init__.py).
# Others (custom processors, *_tensorrt ones) exist only on some installs, so an unknown name is a warning.
PREPROCESSORS: tuple[str, ...] = (
    "passthrough",
    "canny",
    "depth",
    "openpose",
    "lineart",
    "standard_lineart",
    "soft_edge",
    "hed",
    "scribble",
    "external",
    "feedback",
    "latent_feedback",
    "sharpen",
    "upscale",
    "blur",
    "realesrgan_trt",
    "depth_tensorrt",
    "pose_tensorrt",
    "temporal_net_tensorrt",
    "mediapipe_pose",
    "mediapipe_segmentation",
    "hed_tensorrt",
    "scribble_tensorrt",
    "normal_bae_tensorrt",
)

DEFAULT_IPADAPTER_MODEL = "h94/IP-Adapter/models/ip-adapter_sd15.bin"
DEFAULT_IPADAPTER_ENCODER = "h94/IP-Adapter/models/image_encoder"


@dataclass(frozen=True)
class ControlNetSlot:
    """One ControlNet: its weights get their own engine; the UNet only gets residual inputs."""

    model_id: str = "lllyasviel/control_v11p_sd15_canny"
    preprocessor: str = "canny"
    # None lets StreamDiffusion use the ControlNet's own default (3); anything else must be a positive int.
    conditioning_channels: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class BakedParams:
    """Every value that changes the engines. Two equal BakedParams give the same engines and config."""

    model: str = "stabilityai/sd-turbo"
    # "auto" detects the family (SD1.5 / SD2.1 / SDXL) from the model; set it for a checkpoint with an odd name.
    model_family: Family = "auto"
    denoise_steps: int = 1
    consistency_lora: ConsistencyLora = "none"
    # Used only when consistency_lora is "none"; otherwise the LoRA decides the scheduler.
    scheduler: Scheduler = "lcm"
    cfg_type: CfgType = "self"
    width: int = 512
    height: int = 512
    frame_buffer_size: int = 1
    use_tiny_vae: bool = True
    use_cached_attn: bool = False
    cache_maxframes: int = 1
    use_safety_checker: bool = False
    # The user's own LoRAs as JSON text {"hf_id_or_path": scale}; kept as text so a typo can be reported.
    lora_json: str = "{}"
    use_controlnet: bool = False
    controlnets: tuple[ControlNetSlot, ...] = field(default_factory=tuple)
    use_ipadapter: bool = False
    ipadapter_model_path: str = DEFAULT_IPADAPTER_MODEL
    ipadapter_encoder_path: str = DEFAULT_IPADAPTER_ENCODER
    ipadapter_tokens: int = 4
    ipadapter_type: IPAdapterType = "regular"
    engines_dir: str = "engines"


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(BakedParams))
SLOT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ControlNetSlot))
DEFAULTS = BakedParams()


def params_from_values(values: dict[str, Any]) -> BakedParams:
    """Build BakedParams from a mapping keyed by field name (form or CLI), ignoring unknown keys.

    `controlnets` may be a list of ControlNetSlot or of dicts keyed by ControlNetSlot field names. Paths are
    made absolute (see `absolute_path`) so the config works from any working directory.
    """
    known = {key: value for key, value in values.items() if key in PARAM_NAMES}
    for key in ("model", "engines_dir"):
        if isinstance(known.get(key), str):
            known[key] = known[key].strip()
    slots = known.get("controlnets", ())
    known["controlnets"] = tuple(
        slot
        if isinstance(slot, ControlNetSlot)
        else ControlNetSlot(**{k: v for k, v in slot.items() if k in SLOT_NAMES})
        for slot in slots
    )
    return normalized(replace(DEFAULTS, **known))


def normalized(params: BakedParams) -> BakedParams:
    """One spelling for equal engines, so equal choices compare equal and a config loads back exactly.

    Local paths become absolute (the config must work from any working directory); values hidden by a switch
    (ControlNet slots when ControlNet is off, ...) fall back to defaults; LoRA JSON is written canonically.
    """
    changes: dict[str, Any] = {
        "model": absolute_model(params.model),
        "engines_dir": absolute_path(params.engines_dir),
        "lora_json": _canonical_lora_json(params.lora_json),
    }
    if params.consistency_lora in ("lcm", "tcd"):
        changes["scheduler"] = params.consistency_lora
    if params.model_family != "auto" and params.model_family == _detected_family(params.model):
        changes["model_family"] = "auto"
    if not params.use_controlnet:
        changes["controlnets"] = ()
    if not params.use_ipadapter:
        for name in ("ipadapter_model_path", "ipadapter_encoder_path", "ipadapter_tokens", "ipadapter_type"):
            changes[name] = getattr(DEFAULTS, name)
    return replace(params, **changes)


def _canonical_lora_json(text: str) -> str:
    try:
        loaded = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return text  # validate() reports it with the position of the mistake
    if not isinstance(loaded, dict) or not all(_is_number(v) for v in loaded.values()):
        return text
    return json.dumps({str(k).strip(): float(v) for k, v in loaded.items()})


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _detected_family(model: str) -> str:
    return detect_family(model).family
