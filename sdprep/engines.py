"""The engines library: what is prepared under an engines folder, whether it is still good, and deleting it.

Reads only files, through sdprep.model_folder: build.json (parsed once per change of it), config.yaml, and the engine
files build.json records (plus one walk for engines it does not record, outside working folders such as .aside);
never imports StreamDiffusion. A model whose build.json is broken is listed as unreadable, with the reason; a model
folder or file that resolves outside the engines folder as "points outside", unread; a record out of bounds is left
out and named; a value a newer version wrote (a profile, an outcome, a reason) as "unknown (value)". The rest of the
library works.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sdprep.disk import DiskUse, disk_use
from sdprep.locks import job_message, model_lock
from sdprep.manifest import CheckRecord, ImportRecord, ManifestUnreadable
from sdprep.messages import Message, Size, from_json, msg
from sdprep.model_folder import (
    CONFIG_NAME,
    CONFIGS_DIR,
    MANIFEST_NAME,
    config_model,
    engine_kind,
    engine_names,
    engine_stamp,
    holds_model,
    link_outside,
    model_folders,
    records,
    safe_relative,
)
from sdprep.text import enum_message

Status = Literal["ready", "missing", "changed", "stale"]
SKIPPED_SHOWN = 3  # reasons a listing names of the build records it left out


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
    imported: ImportRecord | None = None  # the build came from a pack (sdprep.unpack), not from a build here

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
        reason = reason if isinstance(reason, Message) else ""
        return msg("check_summary_failed", outcome=enum_message("chk_", self.check.outcome), reason=reason)

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
    outside: bool = False  # the folder or its build.json resolves outside the engines folder (so it is not read)
    config_outside: bool = False  # config.yaml resolves outside the engines folder (so it is not read)
    skipped: list[str] = field(default_factory=list)  # build records left out, and why
    size: int | None = None  # the bytes of the whole folder (sdprep.disk); None when not counted (a link out)

    @property
    def skipped_summary(self) -> str:
        """The records left out, for one line: the first few reasons and how many more."""
        shown = "; ".join(self.skipped[:SKIPPED_SHOWN])
        more = len(self.skipped) - SKIPPED_SHOWN
        return f"{shown}; … (+{more})" if more > 0 else shown

    @property
    def latest(self) -> Variant | None:
        return next((v for v in self.variants if v.name == self.latest_variant), None)

    def headline(self) -> Message:
        if self.outside:
            state: Message = msg("status_outside")
        elif self.unreadable:
            state = msg("status_unreadable", reason=self.unreadable)
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
            "outside": self.outside,
            "config_outside": self.config_outside,
            "skipped": self.skipped,
            "size": self.size,
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
                    "imported": asdict(v.imported) if v.imported else None,
                }
                for v in self.variants
            ],
        }


def read_model(root: Path, folder: Path) -> PreparedModel | None:
    """One model folder of the engines folder `root`, as the library shows it; None when it holds nothing prepared."""
    if link_outside(root, folder):
        return PreparedModel(folder.name, folder, "?", None, None, outside=True)
    config: Path | None = None
    config_outside = link_outside(root, folder / CONFIG_NAME)  # Load would fill the form from a file outside
    if not config_outside and (folder / CONFIG_NAME).exists():
        config = folder / CONFIG_NAME
    model_of_config = config_model(folder) if config is not None else None
    if link_outside(root, folder / MANIFEST_NAME):
        return PreparedModel(folder.name, folder, model_of_config or "?", config, None, outside=True)
    try:
        manifest = records(folder)
    except ManifestUnreadable as problem:
        model = model_of_config or "?"
        return PreparedModel(folder.name, folder, model, config, None, unreadable=problem.reason)
    if not manifest.variants and manifest.model is None and config is None and not config_outside:
        return None
    recorded: set[str] = set()
    variants: list[Variant] = []
    for name, record in manifest.variants.items():
        relative_config = record.config or f"{CONFIGS_DIR}/{name}.yaml"
        variant_config = folder / relative_config
        if not safe_relative(relative_config):  # the page loads it: nothing outside (links: checked at load)
            reason = f"build.json.variants.{name}.config lies outside {folder}"
            return PreparedModel(folder.name, folder, model_of_config or "?", None, None, unreadable=reason)
        engines, missing, changed = [], [], []
        for relative in record.engines:
            recorded.add(relative)
            found = engine_stamp(folder, relative)
            if found is None:
                missing.append(relative)
                continue
            written = manifest.engines.get(relative)
            if written is None or (written.size, written.mtime_ns) != found:
                changed.append(relative)
            engines.append({"path": relative, "kind": engine_kind(relative), "size": found[0]})
        gpu, tensorrt = record.environment.get("gpu"), record.environment.get("tensorrt")
        variants.append(
            Variant(
                name=name,
                config=variant_config,
                built_at=record.built_at,
                gpu=gpu if isinstance(gpu, str) else None,
                tensorrt=tensorrt if isinstance(tensorrt, str) else None,
                engines=engines,
                missing=missing,
                changed=changed,
                stale=record.stale,
                duration=record.duration,
                profile=record.profile,
                check=record.check,
                imported=record.imported,
            )
        )
    variants.sort(key=lambda v: v.built_at, reverse=True)
    loose = set(engine_names(folder)) - recorded
    return PreparedModel(
        slug=folder.name,
        folder=folder,
        model=manifest.model or model_of_config or "?",
        config=config,
        latest_variant=manifest.latest_variant,
        variants=variants,
        loose_engines=len(loose),
        config_outside=config_outside,
        skipped=manifest.skipped,
    )


def list_models(engines_root: Path, disk: DiskUse | None = None) -> list[PreparedModel]:
    """Every model folder of the engines folder (none when there is no such folder), each with the size of its folder
    (from `disk`, else counted now)."""
    disk = disk if disk is not None else disk_use(engines_root)
    models = [read_model(engines_root, folder) for folder in model_folders(engines_root)]
    return [replace(model, size=disk.entries.get(model.slug)) for model in models if model is not None]


def find_model(engines_root: Path, slug: str) -> PreparedModel | None:
    """One model by its folder name (what the page's Load asks for), read alone."""
    folder = next((folder for folder in model_folders(engines_root) if folder.name == slug), None)
    return read_model(engines_root, folder) if folder is not None else None


def disk_message(root: Path, disk: DiskUse) -> Message:
    """The engines folder's size and the free space on its disk, in one line."""
    if disk.free is None:
        return msg("lib_disk_no_free", folder=root, size=Size(disk.total))
    return msg("lib_disk", folder=root, size=Size(disk.total), free=Size(disk.free))


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
    with lock.held(f"delete of {target}", job="delete") as got:
        if not got:  # checked first: the first build of a model has written no build.json yet
            holder = lock.holder()
            raise DeleteRefused(msg("delete_busy", path=target, what=holder.get("what") or job_message(holder)))
        if not holds_model(target):
            raise DeleteRefused(msg("delete_not_model", path=target))
        shutil.rmtree(target)
    return target
