"""What each engine under a model's folder was built from, and which builds (variants) are ready.

StreamDiffusion reuses any engine file whose folder name matches, and several baked values are not in those
names (FACTS §1.5: the UNet batch in the newest fork, IP-Adapter weights, the ControlNet batch). So the app
keeps its own record, `build.json`, beside config.yaml: for every engine file the key of the values it depends
on and the machine it was built on; for every successful build its fingerprint, files, versions and timings.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdprep.config import RUNTIME_CONFIG_KEYS, RUNTIME_ITEM_KEYS
from sdprep.paths import atomic_write_text

MANIFEST_NAME = "build.json"
CONFIGS_DIR = "configs"
LOGS_DIR = "logs"
ASIDE_DIR = ".aside"
ENGINE_KINDS = ("unet", "vae_encoder", "vae_decoder", "cnet", "safety_checker")
KIND_LABELS = {
    "unet": "UNet",
    "vae_encoder": "VAE encoder",
    "vae_decoder": "VAE decoder",
    "cnet": "ControlNet",
    "safety_checker": "safety checker",
}
# Keys that never change an engine: leaving them out of the fingerprint lets a runtime edit of config.yaml
# (a new prompt) or a moved engines folder still count as the same build.
IGNORED_KEYS = frozenset(
    {
        *RUNTIME_CONFIG_KEYS,
        "build_engines_if_missing",
        "compile_engines_only",
        "engine_dir",
        "prompt_blending",
        "seed_blending",
    }
)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def baked_part(config: dict[str, Any]) -> dict[str, Any]:
    baked = {key: value for key, value in config.items() if key not in IGNORED_KEYS}
    for list_key in ("controlnets", "ipadapter_config"):
        if list_key in baked:
            baked[list_key] = [
                {k: v for k, v in item.items() if k not in RUNTIME_ITEM_KEYS} for item in baked[list_key]
            ]
    return baked


def fingerprint(config: dict[str, Any]) -> str:
    """Equal for two configs that need the same engines."""
    return _digest(baked_part(config))


def unet_batch_of(config: dict[str, Any]) -> int:
    return int(config.get("max_batch_size") or 0)


@dataclass(frozen=True)
class EngineSlot:
    """One engine a config needs: its kind, and for ControlNets which model."""

    kind: str
    controlnet: str | None = None

    @property
    def label(self) -> str:
        return f"ControlNet {self.controlnet}" if self.controlnet else KIND_LABELS[self.kind]

    @property
    def id(self) -> str:
        return f"cnet:{self.controlnet}" if self.controlnet else self.kind


def controlnet_folder_prefix(model_id: str) -> str:
    # StreamDiffusion names a ControlNet engine folder controlnet_<model_id with / as _> (FACTS §1.4, §12).
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
    baked = baked_part(config)
    if slot.kind == "unet":
        unet = {k: v for k, v in baked.items() if k not in ("use_safety_checker", "controlnets")}
        return _digest({"kind": "unet", **unet})
    if slot.kind in ("vae_encoder", "vae_decoder"):
        names = ("model_id", "use_tiny_vae", "frame_buffer_size", "width", "height", "mode", "use_ipadapter")
        adapter = (baked.get("ipadapter_config") or [{}])[0] if baked.get("use_ipadapter") else {}
        return _digest(
            {
                "kind": "vae",
                **{k: baked.get(k) for k in names},
                "tokens": adapter.get("num_image_tokens"),
                "faceid": adapter.get("type") == "faceid",
            }
        )
    if slot.kind == "cnet":
        item = next(i for i in baked.get("controlnets") or [] if i.get("model_id") == slot.controlnet)
        return _digest(
            {
                "kind": "cnet",
                "model_id": slot.controlnet,
                "channels": item.get("conditioning_channels"),
                "batch": unet_batch_of(config),
                "size": [baked.get("width"), baked.get("height")],
                "family": baked.get("pipeline_type"),
            }
        )
    return _digest({"kind": slot.kind, "fbs": baked.get("frame_buffer_size"), "mode": baked.get("mode")})


@dataclass(frozen=True)
class EngineFile:
    path: Path  # absolute
    relative: str  # relative to the model's engine folder, POSIX style
    kind: str
    controlnet_folder: str | None
    size: int
    mtime_ns: int

    def matches(self, slot: EngineSlot) -> bool:
        if slot.kind != self.kind:
            return False
        if slot.kind != "cnet":
            return True
        prefix = controlnet_folder_prefix(slot.controlnet or "")
        return bool(self.controlnet_folder) and (
            self.controlnet_folder == prefix or self.controlnet_folder.startswith(prefix + "--")
        )


def scan_engines(engine_dir: Path) -> list[EngineFile]:
    """Every engine file under a model's folder, except what this app keeps aside."""
    found: list[EngineFile] = []
    if not engine_dir.is_dir():
        return found
    for path in sorted(engine_dir.rglob("*.engine")):
        relative = path.relative_to(engine_dir)
        if relative.parts[0] == ASIDE_DIR or path.stem not in ENGINE_KINDS:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        folder = path.parent.name.split("--")[0] if path.stem == "cnet" else None
        found.append(EngineFile(path, relative.as_posix(), path.stem, folder, stat.st_size, stat.st_mtime_ns))
    return found


def read_manifest(engine_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((engine_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_manifest(engine_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(engine_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def file_record(engine: EngineFile) -> dict[str, Any]:
    return {"kind": engine.kind, "size": engine.size, "mtime_ns": engine.mtime_ns}


def trusted_record(manifest: dict[str, Any], engine: EngineFile) -> dict[str, Any] | None:
    """The manifest's record of this file, if the file is still exactly what was recorded."""
    record = (manifest.get("engines") or {}).get(engine.relative)
    if not record or record.get("size") != engine.size or record.get("mtime_ns") != engine.mtime_ns:
        return None
    return record


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
