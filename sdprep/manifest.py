"""build.json, typed: what each engine under a model's folder was built from, and each build (variant) of the model.

One reader and one writer. The reader checks every field's type, so a corrupt or foreign build.json is reported as
unreadable (with the reason) instead of failing somewhere later, and a build sets it aside before writing a new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sdprep.engine_files import EngineFile
from sdprep.paths import UnreadableFile, atomic_write_text, read_limited

MANIFEST_NAME = "build.json"
CONFIGS_DIR = "configs"
LOGS_DIR = "logs"
FORMAT = 2
MANIFEST_LIMIT = 16 * 1024 * 1024


@dataclass
class EngineRecord:
    """One engine file as it was written: its stamp, and the keys of what it was built from and where."""

    kind: str
    size: int
    mtime_ns: int
    key: str  # engine_files.slot_key: the baked values that reach it
    engine_key: str  # GPU, compute capability, TensorRT, fork
    built_at: str
    fingerprint: str


@dataclass
class CheckRecord:
    """The last load-and-run check of a build."""

    outcome: str
    checked_at: str
    gpu: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    warmup: int = 0
    frames: int = 0
    fps: float | None = None
    mean_ms: float | None = None
    p95_ms: float | None = None
    load_seconds: float | None = None
    peak_memory_bytes: int | None = None
    device_used_bytes: int | None = None
    image: str | None = None
    log: str | None = None
    reason: dict[str, Any] | None = None  # messages.to_json of the reason a check did not pass
    rebuilt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class VariantRecord:
    """One successful build of one set of baked parameters."""

    fingerprint: str
    engine_key: str
    config: str  # configs/<variant>.yaml, relative to the model folder
    built_at: str
    engines: list[str]
    environment: dict[str, Any] = field(default_factory=dict)  # jobs.environment.Environment.summary()
    params: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    log: str | None = None
    outcome: str = "built"
    stale: bool = False  # a later build replaced one of its engines
    profile: str | None = None
    estimate: dict[str, Any] | None = None  # what sdprep/estimate promised before the build
    actual: dict[str, Any] | None = None  # what the build took: seconds, bytes per engine
    check: CheckRecord | None = None


@dataclass
class Manifest:
    model: str | None = None
    config: str | None = None  # the file name of the current config ("config.yaml")
    latest_variant: str | None = None
    variants: dict[str, VariantRecord] = field(default_factory=dict)
    engines: dict[str, EngineRecord] = field(default_factory=dict)  # relative engine path -> its record
    format: int = FORMAT


class ManifestUnreadable(ValueError):
    """build.json exists but is not one this app can use; `reason` says why (for people, any language-neutral)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


T = TypeVar("T")


def _convert(kind: Any, value: Any, where: str) -> Any:
    """`value` as `kind` (a field's type hint), or ValueError naming where it is wrong."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        return _convert(next(option for option in options if option is not type(None)), value, where)
    if origin is dict:
        _, value_kind = typing.get_args(kind)
        if not isinstance(value, dict):
            raise ValueError(f"{where} is not a mapping")
        return {str(key): _convert(value_kind, item, f"{where}.{key}") for key, item in value.items()}
    if origin is list:
        (item_kind,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ValueError(f"{where} is not a list")
        return [_convert(item_kind, item, f"{where}[{index}]") for index, item in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        return _from_dict(kind, value, where)  # type: ignore[arg-type]  # a dataclass type, checked just above
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind in (int, float) and isinstance(value, bool)) or not isinstance(value, kind):
        raise ValueError(f"{where} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return value


def _from_dict(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a mapping")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name], f"{where}.{item.name}")
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{item.name} is missing")
    return cls(**values)


def read_manifest(engine_dir: Path) -> Manifest:
    """The model folder's build.json; an empty Manifest when there is none; ManifestUnreadable when it is broken."""
    path = engine_dir / MANIFEST_NAME
    try:
        raw = read_limited(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        return Manifest()
    except (UnreadableFile, OSError) as problem:
        raise ManifestUnreadable(path, str(problem)) from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if isinstance(data, dict) and data.get("format", 1) > FORMAT:
            raise ValueError(f"format {data.get('format')} is newer than this app ({FORMAT})")
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key in {f.name for f in dataclasses.fields(Manifest)}}
            data["format"] = FORMAT
        return _from_dict(Manifest, data, "build.json")
    except (ValueError, UnicodeDecodeError, RecursionError) as problem:
        raise ManifestUnreadable(path, str(problem)) from None


def read_manifest_or_empty(engine_dir: Path) -> Manifest:
    """For readers that only look up a record: an unreadable build.json counts as none (nothing is trusted)."""
    try:
        return read_manifest(engine_dir)
    except ManifestUnreadable:
        return Manifest()


def write_manifest(engine_dir: Path, manifest: Manifest) -> None:
    atomic_write_text(engine_dir / MANIFEST_NAME, json.dumps(asdict(manifest), indent=2) + "\n")


def set_aside_unreadable(engine_dir: Path) -> Path | None:
    """Move a broken build.json out of the way (kept, renamed) so a new one can be written; its new path."""
    path = engine_dir / MANIFEST_NAME
    if not path.exists():
        return None
    target = path.with_name(f"{MANIFEST_NAME}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    return target


def trusted_record(manifest: Manifest, engine: EngineFile) -> EngineRecord | None:
    """The manifest's record of this file, if the file is still exactly what was recorded."""
    record = manifest.engines.get(engine.relative)
    if record is None or (record.size, record.mtime_ns) != (engine.size, engine.mtime_ns):
        return None
    return record


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
