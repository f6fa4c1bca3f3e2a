"""Which family (SD 1.5, SD 2.1, SDXL) a model belongs to, found without loading it.

The family picks the consistency LoRA and the IP-Adapter weights. StreamDiffusion detects it on the loaded UNet
(FACTS §10); the app must know it before the build, from what it can read cheaply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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


@dataclass(frozen=True)
class FamilyGuess:
    family: str  # "sd1.5" | "sd2.1" | "sdxl"
    source: str  # how it was found, for people: "unet/config.json", "known model", "name", "assumed"


def _family_from_unet_config(folder: Path) -> str | None:
    config_file = folder / "unet" / "config.json"
    try:
        unet = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # Same test StreamDiffusion's detect_model() makes on the loaded UNet (FACTS §10).
    if unet.get("addition_embed_type") is not None:
        return "sdxl"
    dim = unet.get("cross_attention_dim")
    if dim == 1024:
        return "sd2.1"
    if dim == 768:
        return "sd1.5"
    return None


def detect_family(model: str) -> FamilyGuess:
    """Guess the model family without loading it: a diffusers folder's UNet config, a known id, or the name."""
    text = model.strip()
    local = Path(text).expanduser()
    if local.is_dir():
        found = _family_from_unet_config(local)
        if found:
            return FamilyGuess(found, "unet/config.json")
    known = KNOWN_MODEL_FAMILIES.get(text.lower())
    if known:
        return FamilyGuess(known, "known model")
    name = re.sub(r"[^a-z0-9.]+", "-", PurePosixPath(text.replace("\\", "/")).name.lower())
    if "xl" in name or "1024" in name:
        return FamilyGuess("sdxl", "name")
    if name.startswith("sd-turbo") or re.search(r"(^|-)(sd|v)?2[-.]?1($|-)|sd21", name):
        return FamilyGuess("sd2.1", "name")
    return FamilyGuess("sd1.5", "assumed")
