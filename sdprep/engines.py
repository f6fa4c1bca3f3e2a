"""The engines library: what is prepared under an engines folder, whether it is still good, and deleting it.

Reads only files (build.json, config.yaml, the engine files); never imports StreamDiffusion.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import manifest as mf
from sdprep.config import ConfigError, read_config


@dataclass(frozen=True)
class Variant:
    name: str
    config: Path
    built_at: str
    gpu: str | None
    tensorrt: str | None
    engines: list[dict[str, Any]]
    missing: list[str]  # recorded engine files that are gone
    stale: bool
    duration: float | None
    check: dict[str, Any] | None = None  # build.json's "check" record: the last load-and-run check of this build
    changed: list[str] = field(default_factory=list)  # recorded engine files rewritten since (not by this app)

    @property
    def speed(self) -> str | None:
        """After a passed check its speed, e.g. "512x512, 1 step: 87.0 fps on NVIDIA GeForce RTX 4090"; else None."""
        if not self.check or self.check.get("outcome") != "passed":
            return None
        return speed_text(self.check)

    @property
    def check_summary(self) -> str | None:
        """The speed after a passed check, the reason after a failed one, None when never checked."""
        if not self.check:
            return None
        if self.check.get("outcome") == "passed":
            return self.speed
        return f"check {self.check.get('outcome', 'failed')}: {self.check.get('reason', '')}".rstrip(": ")

    @property
    def status(self) -> str:
        if self.missing:
            return "engines missing"
        if self.changed:
            return "engines changed since the build"
        if self.stale:
            return "stale (engines replaced by a later build)"
        return "ready"

    @property
    def size(self) -> int:
        return sum(engine["size"] for engine in self.engines)

    def headline(self) -> str:
        return (
            f"{self.name}: {self.status}, {len(self.engines)} engine(s), {self.size / 1e6:.1f} MB, "
            f"built {self.built_at} on {self.gpu} / TensorRT {self.tensorrt}"
            + (f"; {self.check_summary}" if self.check_summary else "")
        )


@dataclass(frozen=True)
class PreparedModel:
    slug: str
    folder: Path
    model: str
    config: Path | None
    latest_variant: str | None
    variants: list[Variant] = field(default_factory=list)
    loose_engines: int = 0  # engine files no build of this app recorded

    def headline(self) -> str:
        latest = next((v for v in self.variants if v.name == self.latest_variant), None)
        state = latest.status if latest else "no recorded build"
        return f"{self.slug} ({self.model}): {state}; config {self.config or 'none'}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "folder": str(self.folder),
            "model": self.model,
            "config": str(self.config) if self.config else None,
            "latest_variant": self.latest_variant,
            "loose_engines": self.loose_engines,
            "variants": [
                {
                    "name": v.name,
                    "config": str(v.config),
                    "status": v.status,
                    "built_at": v.built_at,
                    "gpu": v.gpu,
                    "tensorrt": v.tensorrt,
                    "size": v.size,
                    "engines": v.engines,
                    "missing": v.missing,
                    "changed": v.changed,
                    "check": v.check,
                    "speed": v.speed,
                }
                for v in self.variants
            ],
        }


def read_model(folder: Path) -> PreparedModel | None:
    manifest = mf.read_manifest(folder)
    config = folder / "config.yaml"
    if not manifest and not config.exists():
        return None
    on_disk = {engine.relative: engine for engine in mf.scan_engines(folder)}
    recorded: set[str] = set()
    variants: list[Variant] = []
    for name, record in (manifest.get("variants") or {}).items():
        engines, missing, changed = [], [], []
        for relative in record.get("engines", []):
            recorded.add(relative)
            engine = on_disk.get(relative)
            if engine is None:
                missing.append(relative)
                continue
            if mf.trusted_record(manifest, engine) is None:
                changed.append(relative)
            engines.append({"path": relative, "kind": engine.kind, "size": engine.size})
        environment = record.get("environment") or {}
        variants.append(
            Variant(
                name=name,
                config=folder / record.get("config", f"{mf.CONFIGS_DIR}/{name}.yaml"),
                built_at=record.get("built_at", "?"),
                gpu=environment.get("gpu"),
                tensorrt=environment.get("tensorrt"),
                engines=engines,
                missing=missing,
                changed=changed,
                stale=bool(record.get("stale")),
                duration=record.get("duration"),
                check=record.get("check") if isinstance(record.get("check"), dict) else None,
            )
        )
    variants.sort(key=lambda v: v.built_at, reverse=True)
    return PreparedModel(
        slug=folder.name,
        folder=folder,
        model=str(manifest.get("model") or _model_of(config)),
        config=config if config.exists() else None,
        latest_variant=manifest.get("latest_variant"),
        variants=variants,
        loose_engines=len(set(on_disk) - recorded),
    )


def _model_of(config: Path) -> str:
    """The model_id of a config.yaml written without a build (Save config only), for the library's listing."""
    try:
        return str(read_config(config).get("model_id") or "?")
    except ConfigError:
        return "?"


def list_models(engines_root: Path) -> list[PreparedModel]:
    if not engines_root.is_dir():
        return []
    models = [read_model(folder) for folder in sorted(engines_root.iterdir()) if folder.is_dir()]
    return [model for model in models if model is not None]


def speed_text(check: dict[str, Any]) -> str | None:
    """A check's speed in one line: "512x512, 1 step: 87.0 fps on NVIDIA GeForce RTX 4090"."""
    fps = check.get("fps")
    if fps is None:
        return None
    steps = check.get("steps")
    size = f"{check.get('width')}x{check.get('height')}" if check.get("width") and check.get("height") else None
    what = ", ".join(part for part in (size, f"{steps} step{'s' if steps != 1 else ''}" if steps else None) if part)
    gpu = f" on {check['gpu']}" if check.get("gpu") else ""
    return f"{what + ': ' if what else ''}{float(fps):.1f} fps{gpu}"


class DeleteRefused(ValueError):
    pass


def delete_model(engines_root: Path, slug: str) -> Path:
    """Delete one prepared model's folder; refuses anything that is not a direct child of the engines folder."""
    root = engines_root.resolve()
    target = (root / slug).resolve()
    if not slug or target.parent != root or target == root:
        raise DeleteRefused(f"{slug!r} is not a model folder inside {root}; nothing was deleted.")
    if not target.is_dir():
        raise DeleteRefused(f"{target} does not exist.")
    if read_model(target) is None:
        raise DeleteRefused(f"{target} holds no prepared model (no build.json or config.yaml); nothing was deleted.")
    shutil.rmtree(target)
    return target
