"""Values derived from BakedParams: one small pure function each, so the form, the CLI and the build agree.

Sources for the rules: the StreamDiffusion facts the app relies on, with where each was read, in
docs/streamdiffusion-facts.md (section numbers in the comments); tests/data holds the parts the tests check against.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path, PurePosixPath

from sdprep.family import detect_family
from sdprep.messages import Message, Quote, msg
from sdprep.params import SPECS, BakedParams
from sdprep.paths import MODEL_FILE_SUFFIXES, absolute_model, is_hf_id

# Denoising step count -> t_index_list. Indices point into the 50-step schedule that StreamDiffusion prepares by default
# (valid range 0..49; docs/streamdiffusion-facts.md §3). For img2img a larger index is a less noisy timestep: one step
# at 32 keeps the input's structure, more steps start earlier (more change) and all end at 45, the low-noise end the
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

# Consistency LoRAs by family (docs/streamdiffusion-facts.md §4). There is no LCM LoRA for SD2.1: the fork's own
# fallback would add the SD1.5 one, which does not fit an SD2.1 UNet.
CONSISTENCY_LORAS: dict[str, dict[str, str]] = {
    "lcm": {"sd1.5": "latent-consistency/lcm-lora-sdv1-5", "sdxl": "latent-consistency/lcm-lora-sdxl"},
    "tcd": {"sd1.5": "h1t/TCD-SD15-LoRA", "sd2.1": "h1t/TCD-SD21-base-LoRA", "sdxl": "h1t/TCD-SDXL-LoRA"},
}
ALL_CONSISTENCY_LORA_IDS: frozenset[str] = frozenset(
    i for by_family in CONSISTENCY_LORAS.values() for i in by_family.values()
)
CONSISTENCY_LORA_SCALE = 1.0


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


class InvalidLoras(ValueError):
    """The LoRA JSON cannot be used; `message` says why (validate.py ties it to the lora_json field)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


def _refuse_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity, which would be written to the config as .nan / .inf.
    raise InvalidLoras(msg("lora_not_finite", value=name))


def json_fix(text: str, error: json.JSONDecodeError) -> str | None:
    """The usual fix for a JSON mistake people make when they write a dict as in Python, as a message code."""
    before, after = text[: error.pos].rstrip(), text[error.pos :].lstrip()
    if before.endswith(",") and after[:1] in ("}", "]"):
        return "json_fix_trailing_comma"
    if "'" in text and ("double quotes" in error.msg or error.msg == "Expecting value"):
        return "json_fix_double_quotes"
    if error.msg == "Extra data" and not text.startswith("{"):
        return "json_fix_braces"
    if error.msg == "Expecting ',' delimiter":
        return "json_fix_comma"
    if "double quotes" in error.msg or (error.msg == "Expecting value" and after[:1].isalpha()):
        return "json_fix_quote_names"
    return None


def parse_lora_json(text: str) -> dict[str, float]:
    """The user's LoRAs {id_or_path: scale}; InvalidLoras when the text is not that."""
    stripped = text.strip()
    if not stripped:
        return {}
    try:
        loaded = json.loads(stripped, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        where = {"reason": Quote(error.msg), "line": error.lineno, "column": error.colno}
        fix = json_fix(stripped, error)
        raise InvalidLoras(
            msg("lora_bad_json_fix", fix=msg(fix), **where) if fix else msg("lora_bad_json", **where)
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidLoras(msg("lora_not_object"))
    loras: dict[str, float] = {}
    for key, scale in loaded.items():
        if not key.strip():
            raise InvalidLoras(msg("lora_empty_id"))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise InvalidLoras(msg("lora_bad_scale", lora=key, value=json.dumps(scale)))
        if not math.isfinite(scale):
            raise InvalidLoras(msg("lora_not_finite", value=scale))
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
    # TCD runs the steps one after another (docs/streamdiffusion-facts.md §2, §4).
    return scheduler(params) != "tcd"


def unet_batch(params: BakedParams) -> int:
    """trt_unet_batch_size: the batch the UNet engine is built for (docs/streamdiffusion-facts.md §2)."""
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


def _hashed_slug(model: str) -> str:
    digest = hashlib.sha1(absolute_model(model).encode("utf-8")).hexdigest()[:6]
    return f"{model_slug(model)[: SLUG_MAX - 7].rstrip(' .-_')}-{digest}"


def recorded_model(folder: Path) -> str | None:
    """The model a prepared folder holds (build.json "model", else config.yaml's model_id); None if unknown.

    Asked on every form change for a local model: model_folder reads each file once per change of it.
    """
    from sdprep import model_folder  # it reads configs through config_load, which needs this module first

    return model_folder.recorded_model(folder)


def folder_name(model: str, engines_root: Path) -> str:
    """The model's folder under the engines folder: its slug, unless another local model with the same file name
    already prepared that folder; then the slug plus a short hash of this model's absolute path (and it stays there).
    """
    slug = model_slug(model)
    if is_hf_id(model):
        return slug  # an id keeps its owner in the slug: two ids never share one
    hashed = _hashed_slug(model)
    if (engines_root / hashed).is_dir():
        return hashed
    owner = recorded_model(engines_root / slug)
    return hashed if owner is not None and owner != absolute_model(model) else slug


def slug_taken_by(params: BakedParams) -> str | None:
    """The other model that owns the plain slug folder when this one had to move to a hashed folder."""
    if engine_dir(params).name == model_slug(params.model):
        return None
    return recorded_model(Path(params.engines_dir) / model_slug(params.model))


def engine_dir(params: BakedParams) -> Path:
    root = Path(params.engines_dir)
    return root / folder_name(params.model, root)


def config_path(params: BakedParams) -> Path:
    return engine_dir(params) / "config.yaml"


def variant_name(params: BakedParams) -> str:
    """A readable name for one set of baked parameters of a model, e.g. `1step-self-512x512-fast`.

    Each parameter's declaration names its own part (params.py), in the order of the fields.
    """
    parts = [spec.variant(params) for spec in SPECS.values() if spec.variant is not None]
    return "-".join(part for part in parts if part)
