"""The engines library: what is prepared under an engines folder, whether it is still good, and deleting it.

Reads only files (build.json, config.yaml, the engine files); never imports StreamDiffusion. A model whose build.json
is broken is listed as unreadable, with the reason, and the rest of the library works.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdprep.config_load import ConfigError, read_config
from sdprep.engine_files import by_relative
from sdprep.locks import model_lock
from sdprep.manifest import CONFIGS_DIR, MANIFEST_NAME, CheckRecord, ManifestUnreadable, read_manifest, trusted_record
from sdprep.messages import Message, Size, from_json, msg
from sdprep.paths import inside

Status = Literal["ready", "missing", "changed", "stale"]


def speed_message(
    width: int | None, height: int | None, steps: int | None, fps: float | None, gpu: str | None
) -> Message | None:
    """A check's speed in one line: "512x512, 1 step: 87.0 fps on NVIDIA GeForce RTX 4090"; None without fps."""
    if fps is None:
        return None
    size = f"{width}x{height}" if width and height else "?"
    steps_text = msg("steps_count", count=steps) if steps else "?"
    if gpu:
        return msg("speed", size=size, steps=steps_text, fps=f"{float(fps):.1f}", gpu=gpu)
    return msg("speed_no_gpu", size=size, steps=steps_text, fps=f"{float(fps):.1f}")


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
    profile: str | None = None
    check: CheckRecord | None = None  # the last load-and-run check of this build
    changed: list[str] = field(default_factory=list)  # recorded engine files rewritten since (not by this app)

    @property
    def speed(self) -> Message | None:
        if self.check is None or self.check.outcome != "passed":
            return None
        return speed_message(self.check.width, self.check.height, self.check.steps, self.check.fps, self.check.gpu)

    @property
    def check_summary(self) -> Message | None:
        """The speed after a passed check, the reason after a failed one, None when never checked."""
        if self.check is None:
            return None
        if self.check.outcome == "passed":
            return self.speed
        reason = from_json(self.check.reason) if self.check.reason else None
        return msg("check_summary_failed", outcome=msg(f"chk_{self.check.outcome}"), reason=reason or "")

    @property
    def status(self) -> Status:
        if self.missing:
            return "missing"
        if self.changed:
            return "changed"
        return "stale" if self.stale else "ready"

    @property
    def size(self) -> int:
        return sum(int(engine["size"]) for engine in self.engines)

    def headline(self) -> Message:
        return msg(
            "lib_variant_line",
            name=self.name,
            status=msg(f"status_{self.status}"),
            count=len(self.engines),
            size=Size(self.size),
            built_at=self.built_at,
            gpu=self.gpu or msg("unknown"),
            tensorrt=self.tensorrt or msg("unknown"),
            check=self.check_summary or "",
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
    unreadable: str | None = None  # why build.json could not be read (the model is listed, its builds are not)

    @property
    def latest(self) -> Variant | None:
        return next((v for v in self.variants if v.name == self.latest_variant), None)

    def headline(self) -> Message:
        if self.unreadable:
            state: Message = msg("status_unreadable", reason=self.unreadable)
        else:
            state = msg(f"status_{self.latest.status}") if self.latest else msg("lib_no_build")
        return msg(
            "lib_model_line", slug=self.slug, model=self.model, state=state, config=self.config or msg("env_none")
        )

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "slug": self.slug,
            "folder": str(self.folder),
            "model": self.model,
            "config": str(self.config) if self.config else None,
            "latest_variant": self.latest_variant,
            "loose_engines": self.loose_engines,
            "unreadable": self.unreadable,
            "variants": [
                {
                    "name": v.name,
                    "config": str(v.config),
                    "status": v.status,
                    "profile": v.profile,
                    "built_at": v.built_at,
                    "gpu": v.gpu,
                    "tensorrt": v.tensorrt,
                    "size": v.size,
                    "engines": v.engines,
                    "missing": v.missing,
                    "changed": v.changed,
                    "check": asdict(v.check) if v.check else None,
                }
                for v in self.variants
            ],
        }


def read_model(folder: Path) -> PreparedModel | None:
    config = folder / "config.yaml"
    try:
        manifest = read_manifest(folder)
    except ManifestUnreadable as problem:
        return PreparedModel(
            folder.name, folder, _model_of(config), config if config.exists() else None, None, unreadable=problem.reason
        )
    if not manifest.variants and manifest.model is None and not config.exists():
        return None
    on_disk = by_relative(folder)
    recorded: set[str] = set()
    variants: list[Variant] = []
    for name, record in manifest.variants.items():
        variant_config = folder / (record.config or f"{CONFIGS_DIR}/{name}.yaml")
        if not inside(folder, variant_config):  # the page loads it: nothing outside the model's folder
            reason = f"build.json.variants.{name}.config lies outside {folder}"
            return PreparedModel(folder.name, folder, _model_of(config), None, None, unreadable=reason)
        engines, missing, changed = [], [], []
        for relative in record.engines:
            recorded.add(relative)
            engine = on_disk.get(relative)
            if engine is None:
                missing.append(relative)
                continue
            if trusted_record(manifest, engine) is None:
                changed.append(relative)
            engines.append({"path": relative, "kind": engine.kind, "size": engine.size})
        variants.append(
            Variant(
                name=name,
                config=variant_config,
                built_at=record.built_at,
                gpu=record.environment.get("gpu"),
                tensorrt=record.environment.get("tensorrt"),
                engines=engines,
                missing=missing,
                changed=changed,
                stale=record.stale,
                duration=record.duration,
                profile=record.profile,
                check=record.check,
            )
        )
    variants.sort(key=lambda v: v.built_at, reverse=True)
    return PreparedModel(
        slug=folder.name,
        folder=folder,
        model=manifest.model or _model_of(config),
        config=config if config.exists() else None,
        latest_variant=manifest.latest_variant,
        variants=variants,
        loose_engines=len(set(on_disk) - recorded),
    )


def _model_of(config: Path) -> str:
    """The model_id of a config.yaml written without a build (Save config only), for the library's listing."""
    try:
        model = read_config(config).get("model_id")
    except ConfigError:
        return "?"
    return str(model) if isinstance(model, str) else "?"


def list_models(engines_root: Path) -> list[PreparedModel]:
    if not engines_root.is_dir():
        return []
    models = [
        read_model(folder) for folder in sorted(engines_root.iterdir()) if folder.is_dir() and not folder.is_symlink()
    ]
    return [model for model in models if model is not None]


class DeleteRefused(ValueError):
    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


def delete_model(engines_root: Path, slug: str) -> Path:
    """Delete one prepared model's folder: only a real folder directly inside the engines folder (no link), only one
    that holds a prepared model, and never while a build, a check or a save of it is running."""
    root = engines_root.resolve()
    candidate = root / slug
    if not slug or "/" in slug or "\\" in slug or slug in (".", "..") or candidate.is_symlink():
        raise DeleteRefused(msg("delete_not_inside", slug=slug, root=root))
    target = candidate.resolve()
    if target.parent != root:
        raise DeleteRefused(msg("delete_not_inside", slug=slug, root=root))
    if not target.is_dir():
        raise DeleteRefused(msg("delete_missing", path=target))
    lock = model_lock(target)
    with lock.held(f"delete of {target}") as got:
        if not got:  # checked first: the first build of a model has written no build.json yet
            raise DeleteRefused(msg("delete_busy", path=target, what=lock.holder().get("what") or "?"))
        if not (target / MANIFEST_NAME).exists() and not (target / "config.yaml").exists():
            raise DeleteRefused(msg("delete_not_model", path=target))
        shutil.rmtree(target)
    return target
