"""What earlier builds teach the estimate: build.json keeps, for every successful build, what it took.

VariantRecord.actual holds the build's seconds and, per engine it built, its bytes and the seconds the fork's
build_stats.json reports. Sizes are learnt from engines of the same weights on any GPU (an engine is almost all
weights), times only from the same engines on the same GPU, and how a GPU did against the table scales the rest.
VariantRecord.timing_cache says whether the build started with a TensorRT timing cache (warm) or not (cold, and every
build recorded before the app shared caches): the two are timed apart.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import model_folder
from sdprep.estimate.reference import Shape, table_seconds
from sdprep.manifest import BYTES, PIXELS, SECONDS
from sdprep.paths import Stamp, stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastEngine:
    """One engine an earlier build made, as build.json's VariantRecord.actual records it."""

    slot: str
    kind: str
    family: str
    fp8: bool
    static_shapes: bool
    opt_level: int
    tiny_vae: bool
    width: int
    height: int
    batch: int
    bytes: int
    seconds: float | None  # the fork's build_stats.json total_elapsed_s; None when it reported none
    controlnet: str | None = None


@dataclass(frozen=True)
class PastBuild:
    gpu: str | None
    seconds: float  # the build, from starting StreamDiffusion to the proof
    engines: tuple[PastEngine, ...] = ()
    name: str = ""  # model folder / variant, to count builds
    warm: bool = False  # it started with a TensorRT timing cache (sdprep.timing_cache)


def past_engine_json(
    slot: str, kind: str, controlnet: str | None, shape: Shape, size: int, seconds: float | None
) -> dict[str, Any]:
    """One engine a build made, for build.json's VariantRecord.actual (read back by past_build)."""
    return {
        "slot": slot,
        "kind": kind,
        "controlnet": controlnet,
        "family": shape.family,
        "fp8": shape.fp8,
        "static_shapes": shape.static_shapes,
        "opt_level": shape.opt_level,
        "tiny_vae": shape.tiny_vae,
        "width": shape.width,
        "height": shape.height,
        "batch": shape.unet_batch,
        "bytes": size,
        "seconds": seconds,
    }


def same_engine(past: PastEngine, kind: str, controlnet: str | None, shape: Shape) -> bool:
    """An earlier engine built from the same things as this one would be (for its time on the same GPU)."""
    if past.kind != kind or past.family != shape.family or past.fp8 != shape.fp8:
        return False
    if kind in ("vae_encoder", "vae_decoder"):
        return (past.tiny_vae, past.static_shapes, past.width, past.height) == (
            shape.tiny_vae,
            shape.static_shapes,
            shape.width,
            shape.height,
        )
    if kind == "safety_checker":
        return True
    same = (past.static_shapes, past.opt_level, past.width, past.height, past.batch) == (
        shape.static_shapes,
        shape.opt_level,
        shape.width,
        shape.height,
        shape.unet_batch,
    )
    return same and (kind != "cnet" or past.controlnet == controlnet)


def same_weights(past: PastEngine, kind: str, controlnet: str | None, shape: Shape) -> bool:
    """An earlier engine of the same weights (its size, on any GPU: an engine is almost all weights)."""
    if past.kind != kind or past.fp8 != shape.fp8:
        return False
    if kind in ("vae_encoder", "vae_decoder"):
        return past.tiny_vae == shape.tiny_vae
    if kind == "cnet":
        return past.controlnet == controlnet
    return kind == "safety_checker" or past.family == shape.family


def _past_shape(past: PastEngine) -> Shape:
    return Shape(
        family=past.family,
        fp8=past.fp8,
        static_shapes=past.static_shapes,
        opt_level=past.opt_level,
        tiny_vae=past.tiny_vae,
        width=past.width,
        height=past.height,
        unet_batch=past.batch,
    )


def gpu_speed(history: Iterable[PastBuild], gpu: str | None) -> tuple[float, int] | None:
    """How this GPU built against the table before: the median of (seconds taken / the table's middle), and over
    how many earlier builds; None without any."""
    ratios: list[float] = []
    builds: set[str] = set()
    for build in history:
        if gpu is None or build.gpu != gpu:
            continue
        for past in build.engines:
            if past.seconds is None or past.seconds <= 0:
                continue
            low, high = table_seconds(past.kind, _past_shape(past))
            ratios.append(past.seconds / ((low + high) / 2))
            builds.add(build.name)
    return (statistics.median(ratios), len(builds)) if ratios else None


@dataclass
class _HistoryCache:
    stamps: tuple[tuple[str, Stamp | None], ...] = ()
    builds: tuple[PastBuild, ...] = field(default_factory=tuple)


_CACHE: dict[str, _HistoryCache] = {}


def load_history(root: Path) -> tuple[PastBuild, ...]:
    """Every earlier build recorded under an engines folder (each model folder's build.json), cached until one of
    those files changes (the preview asks on every change of the form). A record out of bounds is left out and named
    once in the log; it never reaches the estimate."""
    root = Path(root)
    folders = [folder for folder in model_folder.model_folders(root) if not model_folder.link_outside(root, folder)]
    stamps = tuple((str(folder), stamp(folder / model_folder.MANIFEST_NAME)) for folder in folders)
    cached = _CACHE.get(str(root))
    if cached is not None and cached.stamps == stamps:
        return cached.builds
    builds: list[PastBuild] = []
    for folder in folders:
        for name, record in model_folder.records_or_empty(folder).variants.items():
            where = f"{folder.name}/{name}"
            try:
                past = read_past_build(where, record.environment.get("gpu"), record.actual)
            except ValueError as problem:
                model_folder.name_once(f"{where}: build.json: an earlier build is left out of the estimate: {problem}")
                continue
            if past is not None:
                warm = record.timing_cache is not None and record.timing_cache.state == "warm"
                builds.append(dataclasses.replace(past, warm=warm))
    _CACHE[str(root)] = _HistoryCache(stamps, tuple(builds))
    return tuple(builds)


def _number(item: dict[str, Any], key: str, kind: type[int] | type[float], bounds: tuple[float, float]) -> Any:
    """item[key] as a finite int or float within bounds; ValueError naming the key otherwise."""
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is {type(value).__name__}, not a number")
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{key} is {value:.6g}, outside {bounds[0]:g}-{bounds[1]:g}")
    if kind is int and value != int(value):
        raise ValueError(f"{key} is {value:.6g}, not a whole number")
    return kind(value)


def _flag(item: dict[str, Any], key: str) -> bool:
    value = item.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is {type(value).__name__}, not true or false")
    return value


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is {type(value).__name__}, not text")
    return value


def past_engine(item: Any) -> PastEngine:
    """One engine of VariantRecord.actual, typed and bounded; ValueError naming what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("an engine is not a mapping")
    seconds = item.get("seconds")
    return PastEngine(
        slot=_text(item, "slot"),
        kind=_text(item, "kind"),
        family=_text(item, "family"),
        fp8=_flag(item, "fp8"),
        static_shapes=_flag(item, "static_shapes"),
        opt_level=_number(item, "opt_level", int, (0, 5)),
        tiny_vae=_flag(item, "tiny_vae"),
        width=_number(item, "width", int, PIXELS),
        height=_number(item, "height", int, PIXELS),
        batch=_number(item, "batch", int, (1, 1024)),
        bytes=_number(item, "bytes", int, BYTES),
        seconds=None if seconds is None else _number(item, "seconds", float, SECONDS),
        controlnet=item.get("controlnet") if isinstance(item.get("controlnet"), str) else None,
    )


def past_build(name: str, gpu: Any, actual: dict[str, Any] | None) -> PastBuild | None:
    """A VariantRecord.actual as a PastBuild; None for a record without one, of another shape or out of bounds."""
    try:
        return read_past_build(name, gpu, actual)
    except ValueError:
        return None


def read_past_build(name: str, gpu: Any, actual: dict[str, Any] | None) -> PastBuild | None:
    """A VariantRecord.actual as a PastBuild; None for a record without one; ValueError for one of another shape or
    out of bounds (a width of Infinity, a time of NaN, 1e20 bytes: none of it may reach the estimate)."""
    if actual is None:
        return None
    if not isinstance(actual, dict):
        raise ValueError("actual is not a mapping")
    engines = actual.get("engines") or []
    if not isinstance(engines, list):
        raise ValueError("actual.engines is not a list")
    past = tuple(past_engine(item) for item in engines)
    seconds = _number(actual, "seconds", float, SECONDS)
    return PastBuild(gpu if isinstance(gpu, str) else None, seconds, past, name)
