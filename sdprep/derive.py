"""Values derived from BakedParams: one small pure function each, so the form, the CLI and the build agree.

Sources for the rules are in shared/streamdiffusion/FACTS.md (section numbers in the comments).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath

from sdprep.family import detect_family
from sdprep.params import BakedParams
from sdprep.paths import MODEL_FILE_SUFFIXES, is_hf_id

# Denoising step count -> t_index_list. Indices point into the 50-step schedule that StreamDiffusion prepares
# by default (valid range 0..49; FACTS §3). For img2img a larger index is a less noisy timestep: one step at 32
# keeps the input's structure, more steps start earlier (more change) and all end at 45, the low-noise end the
# fork's own examples use ([32, 45], [22, 32, 45]).
T_INDEX_PRESETS: dict[int, tuple[int, ...]] = {
    1: (32,),
    2: (32, 45),
    3: (22, 32, 45),
    4: (16, 26, 36, 45),
    5: (12, 20, 28, 36, 45),
    6: (10, 17, 24, 31, 38, 45),
    7: (8, 14, 20, 26, 32, 38, 45),
    8: (4, 10, 16, 22, 28, 34, 40, 45),
}
NUM_INFERENCE_STEPS = 50

# Consistency LoRAs by family (FACTS §4). There is no LCM LoRA for SD2.1: the fork's own fallback would add the
# SD1.5 one, which does not fit an SD2.1 UNet.
CONSISTENCY_LORAS: dict[str, dict[str, str]] = {
    "lcm": {"sd1.5": "latent-consistency/lcm-lora-sdv1-5", "sdxl": "latent-consistency/lcm-lora-sdxl"},
    "tcd": {"sd1.5": "h1t/TCD-SD15-LoRA", "sd2.1": "h1t/TCD-SD21-base-LoRA", "sdxl": "h1t/TCD-SDXL-LoRA"},
}
ALL_CONSISTENCY_LORA_IDS: frozenset[str] = frozenset(
    i for by_family in CONSISTENCY_LORAS.values() for i in by_family.values()
)
CONSISTENCY_LORA_SCALE = 1.0

FAMILY_LABELS: dict[str, str] = {"sd1.5": "SD 1.5", "sd2.1": "SD 2.1", "sdxl": "SDXL"}


def t_index_list(params: BakedParams) -> list[int]:
    return list(T_INDEX_PRESETS[params.denoise_steps])


def steps_for_t_index_list(indices: list[int]) -> int:
    """The step count of a t_index_list (its length): how a loaded config maps back onto the form."""
    return len(indices)


def scheduler(params: BakedParams) -> str:
    """The consistency LoRA's scheduler when one is chosen, else the pipeline scheduler."""
    return params.consistency_lora if params.consistency_lora != "none" else params.scheduler


def family(params: BakedParams) -> str:
    return params.model_family if params.model_family != "auto" else detect_family(params.model).family


def consistency_lora_id(params: BakedParams) -> str | None:
    """The consistency LoRA to fuse, or None (none chosen, or none exists for this family)."""
    if params.consistency_lora == "none":
        return None
    return CONSISTENCY_LORAS[params.consistency_lora].get(family(params))


def parse_lora_json(text: str) -> dict[str, float]:
    """The user's LoRAs. Raises ValueError with a sentence for people; validate.py reports it per field."""
    stripped = text.strip()
    if not stripped:
        return {}
    try:
        loaded = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    if not isinstance(loaded, dict):
        raise ValueError('must be a JSON object like {"owner/lora": 0.8}')
    loras: dict[str, float] = {}
    for key, scale in loaded.items():
        if not key.strip():
            raise ValueError("has an empty LoRA id or path")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ValueError(f'scale of "{key}" must be a number, not {json.dumps(scale)}')
        loras[key.strip()] = float(scale)
    return loras


def lora_dict(params: BakedParams) -> dict[str, float]:
    """The final lora_dict StreamDiffusion fuses: the consistency LoRA first, then the user's."""
    merged: dict[str, float] = {}
    consistency = consistency_lora_id(params)
    if consistency:
        merged[consistency] = CONSISTENCY_LORA_SCALE
    merged.update(parse_lora_json(params.lora_json))
    return merged


def uses_denoising_batch(params: BakedParams) -> bool:
    # TCD runs the steps one after another (FACTS §2, §4).
    return scheduler(params) != "tcd"


def unet_batch(params: BakedParams) -> int:
    """trt_unet_batch_size: the batch the UNet engine is built for (FACTS §2)."""
    fbs = params.frame_buffer_size
    if not uses_denoising_batch(params):
        return fbs
    steps = params.denoise_steps
    if params.cfg_type == "full":
        return 2 * steps * fbs
    if params.cfg_type == "initialize":
        return (steps + 1) * fbs
    return steps * fbs


# --- where things go -------------------------------------------------------------------------------------------

_RESERVED_WINDOWS = {"con", "prn", "aux", "nul"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}
SLUG_MAX = 48


def model_slug(model: str) -> str:
    """A folder name for the model: readable, stable, safe on Windows and Linux, short enough for MAX_PATH.

    An HF id keeps its owner (`stabilityai--sd-turbo`); a local file or folder is named by its stem.
    """
    text = model.strip().replace("\\", "/").rstrip("/")
    if is_hf_id(text):
        raw = text.replace("/", "--")
    else:
        raw = PurePosixPath(text).name
        for suffix in MODEL_FILE_SUFFIXES:
            if raw.lower().endswith(suffix):
                raw = raw[: -len(suffix)]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", raw)
    slug = re.sub(r"\.{2,}", ".", slug).strip(" .-_") or "model"
    if slug.split(".")[0].lower() in _RESERVED_WINDOWS:
        slug = f"model-{slug}"
    if len(slug) > SLUG_MAX:
        # A cut name gets a short hash of the whole name, so two long names never share a folder.
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
        slug = f"{slug[: SLUG_MAX - 7].rstrip(' .-_')}-{digest}"
    return slug


def engine_dir(params: BakedParams) -> Path:
    return Path(params.engines_dir) / model_slug(params.model)


def config_path(params: BakedParams) -> Path:
    return engine_dir(params) / "config.yaml"


def variant_name(params: BakedParams) -> str:
    """A readable name for one set of baked parameters of a model, e.g. `1step-self-512x512`."""
    parts = [f"{params.denoise_steps}step", params.cfg_type, f"{params.width}x{params.height}"]
    if params.consistency_lora != "none":
        parts.append(params.consistency_lora)
    elif params.scheduler == "tcd":
        parts.append("tcdsched")
    if params.frame_buffer_size > 1:
        parts.append(f"fbs{params.frame_buffer_size}")
    if not params.use_tiny_vae:
        parts.append("fullvae")
    if params.use_cached_attn:
        parts.append(f"cache{params.cache_maxframes}")
    if params.use_controlnet:
        parts.append(f"cn{len(params.controlnets)}")
    if params.use_ipadapter:
        parts.append(f"ip{params.ipadapter_tokens}")
    if params.use_safety_checker:
        parts.append("safety")
    return "-".join(parts)
