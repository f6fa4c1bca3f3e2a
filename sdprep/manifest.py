"""build.json, typed and bounded: what each engine under a model's folder was built from, and each build (variant).

One parser and one writer of its text (sdprep.model_folder reads and writes the file). The parser checks every
field's type and every number's bounds, so a corrupt or foreign build.json is reported as unreadable (with the reason)
instead of failing somewhere later, and one poisoned record (an engine width of Infinity, a time of NaN, 1e20 bytes)
is left out and named instead of reaching the estimate or the library.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sdprep.engine_files import EngineFile

FORMAT = 2
MANIFEST_LIMIT = 16 * 1024 * 1024
MAX_DEPTH = 32  # build.json nests about 6 levels; a deeper one is not ours (and deep values cost recursion later)

# Plausible bounds of what a record says (sdprep.estimate.history uses the same for VariantRecord.actual).
MAX_BYTES = 512 * 1024**3  # an engine or a GPU's memory: a few hundred GB at most
MAX_SECONDS = 3 * 24 * 3600.0  # a build or a check: a few days at most
PIXELS = (64, 4096)  # a width or height
BYTES = (0, MAX_BYTES)
SECONDS = (0, MAX_SECONDS)
COUNT = (0, 1_000_000)


def bounded(low: float, high: float, **kwargs: Any) -> Any:
    """A dataclass field whose numbers (the value, or each item of a list or mapping) must lie in [low, high]."""
    return field(metadata={"bounds": (low, high)}, **kwargs)


@dataclass
class EngineRecord:
    """One engine file as it was written: its stamp, and the keys of what it was built from and where."""

    kind: str
    key: str  # engine_files.slot_key: the baked values that reach it
    engine_key: str  # GPU, compute capability, TensorRT, fork
    built_at: str
    fingerprint: str
    size: int = bounded(*BYTES)
    mtime_ns: int = bounded(0, 2**63 - 1)


@dataclass
class CheckRecord:
    """The last load-and-run check of a build."""

    outcome: str
    checked_at: str
    gpu: str | None = None
    width: int | None = bounded(*PIXELS, default=None)
    height: int | None = bounded(*PIXELS, default=None)
    steps: int | None = bounded(*COUNT, default=None)
    warmup: int = bounded(*COUNT, default=0)
    frames: int = bounded(*COUNT, default=0)
    fps: float | None = bounded(0, 1e6, default=None)
    mean_ms: float | None = bounded(0, MAX_SECONDS * 1000, default=None)
    p95_ms: float | None = bounded(0, MAX_SECONDS * 1000, default=None)
    load_seconds: float | None = bounded(*SECONDS, default=None)
    peak_memory_bytes: int | None = bounded(*BYTES, default=None)
    device_used_bytes: int | None = bounded(*BYTES, default=None)
    image: str | None = None
    log: str | None = None
    reason: dict[str, Any] | None = None  # messages.to_json of the reason a check did not pass
    rebuilt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class ImportRecord:
    """Where an imported build (sdprep.pack) came from: the pack, the machine that packed it, and when."""

    pack: str  # the pack's file name
    machine: str  # the packing machine's name
    packed_at: str
    imported_at: str
    gpu: str | None = None  # the GPU that built the engines


@dataclass
class TimingCacheUse:
    """The TensorRT timing cache one build started with (sdprep.timing_cache): cold (none) or warm (seeded), for
    which GPU model and TensorRT version, from where, its size; the shared cache's size it left; what it set aside."""

    state: str  # "cold" or "warm"
    gpu_key: str  # timing_cache.gpu_key: the GPU model's name and compute capability
    tensorrt: str
    source: str | None = None  # a warm build's: "shared" (the engines folder's, for this GPU) or "model" (its own)
    size: int = bounded(*BYTES, default=0)  # bytes the build started with (0: cold)
    kept: int | None = bounded(*BYTES, default=None)  # bytes of the shared cache after the build (None: not kept)
    set_aside: list[str] = field(default_factory=list)  # caches of unknown origin it renamed out of the fork's way


@dataclass
class TimingCacheOrigin:
    """A timing cache in the model folder that this app wrote or saw written on one GPU model (the fork's own file,
    which does not say): trusted only while it is exactly that file."""

    gpu_key: str
    tensorrt: str
    size: int = bounded(*BYTES)
    mtime_ns: int = bounded(0, 2**63 - 1)


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
    stages: dict[str, float] = bounded(*SECONDS, default_factory=dict)
    duration: float = bounded(*SECONDS, default=0.0)
    log: str | None = None
    outcome: str = "built"
    stale: bool = False  # a later build replaced one of its engines
    profile: str | None = None
    estimate: dict[str, Any] | None = None  # what sdprep/estimate promised before the build
    actual: dict[str, Any] | None = None  # what the build took: seconds, bytes per engine (bounded by its reader)
    check: CheckRecord | None = None
    imported: ImportRecord | None = None  # set when the build came from a pack, not from a build here
    timing_cache: TimingCacheUse | None = None  # None: built before the app shared timing caches


@dataclass
class Manifest:
    model: str | None = None
    config: str | None = None  # the file name of the current config ("config.yaml")
    latest_variant: str | None = None
    variants: dict[str, VariantRecord] = field(default_factory=dict)
    engines: dict[str, EngineRecord] = field(default_factory=dict)  # relative engine path -> its record
    # relative path of a fork's timing cache -> the GPU model it is known to come from (sdprep.timing_cache)
    timing_caches: dict[str, TimingCacheOrigin] = field(default_factory=dict)
    format: int = FORMAT
    skipped: list[str] = field(default_factory=list, metadata={"stored": False})  # records left out, and why


_STORED = frozenset(item.name for item in dataclasses.fields(Manifest) if item.metadata.get("stored", True))


class ManifestUnreadable(ValueError):
    """build.json exists but is not one this app can use; `reason` says why (for people, any language-neutral)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


T = TypeVar("T")


def _convert(kind: Any, value: Any, where: str, bounds: tuple[float, float] | None = None) -> Any:
    """`value` as `kind` (a field's type hint), or ValueError naming where it is wrong; numbers must be finite and,
    with `bounds`, within them."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        return _convert(next(option for option in options if option is not type(None)), value, where, bounds)
    if origin is dict:
        _, value_kind = typing.get_args(kind)
        if not isinstance(value, dict):
            raise ValueError(f"{where} is not a mapping")
        return {str(key): _convert(value_kind, item, f"{where}.{key}", bounds) for key, item in value.items()}
    if origin is list:
        (item_kind,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ValueError(f"{where} is not a list")
        return [_convert(item_kind, item, f"{where}[{index}]", bounds) for index, item in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        return _from_dict(kind, value, where)  # type: ignore[arg-type]  # a dataclass type, checked just above
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind in (int, float) and isinstance(value, bool)) or not isinstance(value, kind):
        raise ValueError(f"{where} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}, not a finite number")
    if bounds is not None and isinstance(value, (int, float)) and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{where} is {value:.6g}, outside {bounds[0]:g}-{bounds[1]:g}")
    return value


def _from_dict(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a mapping")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass
        if item.name in data:
            bounds = item.metadata.get("bounds")
            values[item.name] = _convert(hints[item.name], data[item.name], f"{where}.{item.name}", bounds)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{item.name} is missing")
    return cls(**values)


def typed(cls: type[T], data: Any, where: str) -> T:
    """`data` (parsed JSON) as the dataclass `cls`, every field's type and bounds checked; ValueError naming where it
    is wrong (what sdprep.pack_manifest reads a pack's manifest with)."""
    return _from_dict(cls, data, where)


def parse_manifest(raw: bytes, path: Path) -> Manifest:
    """build.json's bytes, typed and bounded: ManifestUnreadable when the whole file is not one this app can use;
    a single record out of bounds or of the wrong shape is left out and named in `skipped` (never fatal)."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("build.json is not a mapping")
        if _depth(data) > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        version = data.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"format is {type(version).__name__}, not int")
        if version > FORMAT:
            raise ValueError(f"format {version} is newer than this app ({FORMAT})")
        skipped: list[str] = []
        records: dict[str, Any] = {}
        kinds: tuple[tuple[str, type[Any]], ...] = (
            ("variants", VariantRecord),
            ("engines", EngineRecord),
            ("timing_caches", TimingCacheOrigin),
        )
        for name, record_kind in kinds:
            items = data.pop(name, {})
            if not isinstance(items, dict):
                raise ValueError(f"build.json.{name} is not a mapping")
            records[name] = _records(record_kind, items, f"build.json.{name}", skipped)
        kept = {key: value for key, value in data.items() if key in _STORED and key not in records}
        manifest = _from_dict(Manifest, {**kept, "format": FORMAT}, "build.json")
    except (ValueError, UnicodeDecodeError, RecursionError) as problem:
        raise ManifestUnreadable(path, str(problem)) from None
    manifest.variants, manifest.engines, manifest.skipped = records["variants"], records["engines"], skipped
    manifest.timing_caches = records["timing_caches"]
    return manifest


def _records(kind: type[T], items: dict[Any, Any], where: str, skipped: list[str]) -> dict[str, T]:
    """Each record that reads within bounds; the others named in `skipped` with the reason."""
    kept: dict[str, T] = {}
    for key, item in items.items():
        try:
            kept[str(key)] = _from_dict(kind, item, f"{where}.{key}")
        except ValueError as problem:
            skipped.append(str(problem))
    return kept


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in a parsed JSON value (without recursion: the value may be deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def manifest_text(manifest: Manifest) -> str:
    """build.json as written: the stored fields only."""
    stored = {key: value for key, value in asdict(manifest).items() if key in _STORED}
    return json.dumps(stored, indent=2) + "\n"


def trusted_record(manifest: Manifest, engine: EngineFile) -> EngineRecord | None:
    """The manifest's record of this file, if the file is still exactly what was recorded."""
    record = manifest.engines.get(engine.relative)
    if record is None or (record.size, record.mtime_ns) != (engine.size, engine.mtime_ns):
        return None
    return record


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
