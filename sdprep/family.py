"""Which family (SD 1.5, SD 2.1, SDXL) a model, a ControlNet or an IP-Adapter belongs to, found without loading it.

The family picks the consistency LoRA, the ControlNets and the IP-Adapter weights that fit. StreamDiffusion detects
it on the loaded UNet (docs/streamdiffusion-facts.md §10); the app must know it before the build, from what it can read
cheaply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sdprep.paths import StampCache, UnreadableFile, read_limited, too_long, user_path

FAMILIES = ("sd1.5", "sd2.1", "sdxl")
FAMILY_LABELS: dict[str, str] = {"sd1.5": "SD 1.5", "sd2.1": "SD 2.1", "sdxl": "SDXL"}

KNOWN_MODEL_FAMILIES: dict[str, str] = {
    "stabilityai/sd-turbo": "sd2.1",
    "stabilityai/sdxl-turbo": "sdxl",
    "kblueleaf/kohaku-v2.1": "sd1.5",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd1.5",
    "runwayml/stable-diffusion-v1-5": "sd1.5",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "stabilityai/stable-diffusion-2-1": "sd2.1",
    "stabilityai/stable-diffusion-2-1-base": "sd2.1",
}

# ControlNet ids by family, from the fork's own registry (demo/realtime-img2img/controlnet_registry.yaml,
# docs/streamdiffusion-facts.md §6):
# a known id outside the model's family is an error, with the id of the same kind offered instead.
_CONTROLNET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^lllyasviel/(control_v11\w*_sd15_|sd-controlnet-)"), "sd1.5"),
    (re.compile(r"^thibaud/controlnet-sd21-"), "sd2.1"),
    (re.compile(r"^(xinsir|diffusers)/controlnet-.*sdxl"), "sdxl"),
)
# The ControlNet a new slot offers, by family and slot: canny, depth, openpose.
DEFAULT_CONTROLNETS: dict[str, tuple[tuple[str, str], ...]] = {
    "sd1.5": (
        ("lllyasviel/control_v11p_sd15_canny", "canny"),
        ("lllyasviel/control_v11f1p_sd15_depth", "depth"),
        ("lllyasviel/control_v11p_sd15_openpose", "openpose"),
    ),
    "sd2.1": (
        ("thibaud/controlnet-sd21-canny-diffusers", "canny"),
        ("thibaud/controlnet-sd21-depth-diffusers", "depth"),
        ("thibaud/controlnet-sd21-openpose-diffusers", "openpose"),
    ),
    "sdxl": (
        ("xinsir/controlnet-canny-sdxl-1.0", "canny"),
        ("diffusers/controlnet-depth-sdxl-1.0", "depth"),
        ("xinsir/controlnet-openpose-sdxl-1.0", "openpose"),
    ),
}
_CONTROLNET_KINDS = ("canny", "depth", "openpose", "scribble", "lineart", "softedge", "seg", "normal", "tile")

# IP-Adapter weights and encoders the fork knows (its IPADAPTER_MODEL_MAP, docs/streamdiffusion-facts.md §7). There is
# none for SD 2.1: the fork turns the adapter off for such a model.
DEFAULT_IPADAPTERS: dict[str, tuple[str, str]] = {
    "sd1.5": ("h94/IP-Adapter/models/ip-adapter_sd15.bin", "h94/IP-Adapter/models/image_encoder"),
    "sdxl": ("h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.bin", "h94/IP-Adapter/sdxl_models/image_encoder"),
}
_IPADAPTER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^h94/IP-Adapter/models/"), "sd1.5"),
    (re.compile(r"^h94/IP-Adapter/sdxl_models/"), "sdxl"),
    (re.compile(r"^h94/IP-Adapter-FaceID/.*sd15"), "sd1.5"),
    (re.compile(r"^h94/IP-Adapter-FaceID/.*sdxl"), "sdxl"),
)
UNET_CONFIG_LIMIT = 256 * 1024  # a UNet config.json is a few KB
_UNET_FAMILIES: StampCache[str | None] = StampCache()


@dataclass(frozen=True)
class FamilyGuess:
    family: str  # "sd1.5" | "sd2.1" | "sdxl"
    source: str  # how it was found: "unet_config", "known_model", "name", "assumed" (worded by sdprep.text)


def _family_from_unet_config(folder: Path) -> str | None:
    # Asked several times on every form change of a local model: read once per change of the file.
    return _UNET_FAMILIES.get(folder / "unet" / "config.json", _read_unet_family, None)


def _read_unet_family(path: Path) -> str | None:
    try:
        unet = json.loads(read_limited(path, UNET_CONFIG_LIMIT).decode("utf-8"))
    except (OSError, UnreadableFile, ValueError, RecursionError):
        return None
    if not isinstance(unet, dict):
        return None
    # Same test StreamDiffusion's detect_model() makes on the loaded UNet (docs/streamdiffusion-facts.md §10).
    if unet.get("addition_embed_type") is not None:
        return "sdxl"
    dim = unet.get("cross_attention_dim")
    if dim == 1024:
        return "sd2.1"
    if dim == 768:
        return "sd1.5"
    return None


def known_model_family(model: str) -> str | None:
    return KNOWN_MODEL_FAMILIES.get(model.strip().lower())


def detect_family(model: str) -> FamilyGuess:
    """Guess the model family without loading it: a diffusers folder's UNet config, a known id, or the name."""
    text = model.strip()
    if not too_long(text):
        local = user_path(text)
        try:
            is_dir = local.is_dir()
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            found = _family_from_unet_config(local)
            if found:
                return FamilyGuess(found, "unet_config")
    known = known_model_family(text)
    if known:
        return FamilyGuess(known, "known_model")
    name = re.sub(r"[^a-z0-9.]+", "-", PurePosixPath(text.replace("\\", "/")).name.lower())
    if "xl" in name or "1024" in name:
        return FamilyGuess("sdxl", "name")
    if name.startswith("sd-turbo") or re.search(r"(^|-)(sd|v)?2[-.]?1($|-)|sd21", name):
        return FamilyGuess("sd2.1", "name")
    return FamilyGuess("sd1.5", "assumed")


def controlnet_family(model_id: str) -> str | None:
    """The family of a known ControlNet id, None for anything else (local files, unknown repos)."""
    for pattern, family in _CONTROLNET_PATTERNS:
        if pattern.search(model_id.strip()):
            return family
    return None


def controlnet_for(model_id: str, family: str, slot: int = 0) -> str:
    """The known ControlNet of the same kind (canny, depth, ...) for `family`: what to offer instead of a mismatch."""
    lowered = model_id.lower()
    kind = next((kind for kind in _CONTROLNET_KINDS if kind in lowered), None)
    offered = DEFAULT_CONTROLNETS[family]
    for candidate, _ in offered:
        if kind and kind in candidate:
            return candidate
    return offered[slot % len(offered)][0]


def ipadapter_family(path: str) -> str | None:
    for pattern, family in _IPADAPTER_PATTERNS:
        if pattern.search(path.strip()):
            return family
    return None
