"""The engine files a config needs, the ones on disk, and the identity of each: what it was built from.

StreamDiffusion reuses any engine file whose folder name matches, and several baked values are not in those names
(docs/streamdiffusion-facts.md §1.5: the UNet batch in the newest fork, IP-Adapter weights, the ControlNet batch, static
shapes for the VAE). So the app computes its own key per engine: every baked config key that reaches that engine (the
declarations in params.py and config.py say which; an undeclared key reaches all), hashed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdprep.config import NOT_BAKED_KEYS, RUNTIME_ITEM_KEYS, key_engines
from sdprep.derive import T_INDEX_PRESETS
from sdprep.params import EngineKind

# Engine file stem (docs/streamdiffusion-facts.md §1.3) -> the engine kind parameters declare they reach.
FILE_KINDS: dict[str, EngineKind] = {
    "unet": "unet",
    "vae_encoder": "vae",
    "vae_decoder": "vae",
    "cnet": "cnet",
    "safety_checker": "safety",
}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def baked_part(config: dict[str, Any]) -> dict[str, Any]:
    """The config without runtime values: what the engines are built from."""
    baked = {key: value for key, value in config.items() if key not in NOT_BAKED_KEYS}
    # Only the length of t_index_list is baked (the UNet batch); its values change at runtime. Spelled as the preset
    # of that length, so the fingerprints of builds recorded before this rule stay the same.
    t_index = baked.get("t_index_list")
    if isinstance(t_index, list) and len(t_index) in T_INDEX_PRESETS:
        baked["t_index_list"] = list(T_INDEX_PRESETS[len(t_index)])
    for list_key in ("controlnets", "ipadapter_config"):
        if isinstance(baked.get(list_key), list):
            baked[list_key] = [
                {k: v for k, v in item.items() if k not in RUNTIME_ITEM_KEYS} if isinstance(item, dict) else item
                for item in baked[list_key]
            ]
    return baked


def fingerprint(config: dict[str, Any]) -> str:
    """Equal for two configs that need the same engines."""
    return _digest(baked_part(config))


def variant_id(name: str, config: dict[str, Any]) -> str:
    """A build's name in build.json: the readable variant name plus the start of the fingerprint."""
    return f"{name}-{fingerprint(config)[:6]}"


@dataclass(frozen=True)
class EngineSlot:
    """One engine a config needs: its file kind, and for ControlNets which model."""

    kind: str  # a FILE_KINDS key
    controlnet: str | None = None

    @property
    def id(self) -> str:
        return f"cnet:{self.controlnet}" if self.controlnet else self.kind


def controlnet_folder_prefix(model_id: str) -> str:
    # StreamDiffusion names a ControlNet engine folder controlnet_<model_id with / as _> (docs/streamdiffusion-facts.md
    # §1.4, §12).
    return "controlnet_" + model_id.replace("/", "_").replace("\\", "_")


def expected_slots(config: dict[str, Any], safety_engine: bool) -> list[EngineSlot]:
    slots = [EngineSlot("unet"), EngineSlot("vae_encoder"), EngineSlot("vae_decoder")]
    seen: set[str] = set()
    for item in config.get("controlnets") or []:
        model_id = str(item.get("model_id", ""))
        if model_id and model_id not in seen:
            seen.add(model_id)
            slots.append(EngineSlot("cnet", model_id))
    if config.get("use_safety_checker") and safety_engine:
        slots.append(EngineSlot("safety_checker"))
    return slots


def slot_key(slot: EngineSlot, config: dict[str, Any]) -> str:
    """The values an engine of this slot is built from; equal keys mean the file may be reused."""
    kind = FILE_KINDS[slot.kind]
    baked = baked_part(config)
    reaching = {key: value for key, value in baked.items() if key != "controlnets" and kind in key_engines(key)}
    if slot.controlnet is not None:
        items = [item for item in baked.get("controlnets") or [] if item.get("model_id") == slot.controlnet]
        reaching["controlnet"] = items[0] if items else {"model_id": slot.controlnet}
    # Encoder and decoder share a folder and the same inputs; their kind keeps their keys apart.
    return _digest({"kind": slot.kind, **reaching})


@dataclass(frozen=True)
class EngineFile:
    path: Path  # absolute
    relative: str  # relative to the model's engine folder, POSIX style
    kind: str  # a FILE_KINDS key
    controlnet_folder: str | None
    size: int
    mtime_ns: int

    def matches(self, slot: EngineSlot) -> bool:
        if slot.kind != self.kind:
            return False
        if slot.kind != "cnet":
            return True
        prefix = controlnet_folder_prefix(slot.controlnet or "")
        folder = self.controlnet_folder or ""
        return bool(folder) and (folder == prefix or folder.startswith(prefix + "--"))

    @property
    def stamp(self) -> tuple[int, int]:
        return self.mtime_ns, self.size
