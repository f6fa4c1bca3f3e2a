"""What earlier builds teach the estimate: build.json keeps, for every successful build, what it took.

VariantRecord.actual holds the build's seconds and, per engine it built, its bytes and the seconds the fork's
build_stats.json reports. Sizes are learnt from engines of the same weights on any GPU (an engine is almost all
weights), times only from the same engines on the same GPU, and how a GPU did against the table scales the rest.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.estimate.reference import Shape, table_seconds


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
    stamps: tuple[tuple[str, int, int], ...] = ()
    builds: tuple[PastBuild, ...] = field(default_factory=tuple)


_CACHE: dict[str, _HistoryCache] = {}


def load_history(root: Path) -> tuple[PastBuild, ...]:
    """Every earlier build recorded under an engines folder (each model folder's build.json), cached until one of
    those files changes (the preview asks on every change of the form)."""
    from sdprep.manifest import MANIFEST_NAME, read_manifest_or_empty

    root = Path(root)
    try:
        folders = sorted(entry.path for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False))
    except OSError:
        return ()
    stamps: list[tuple[str, int, int]] = []
    for folder in folders:
        try:
            stat = os.stat(os.path.join(folder, MANIFEST_NAME))
        except OSError:
            continue
        stamps.append((folder, stat.st_mtime_ns, stat.st_size))
    cached = _CACHE.get(str(root))
    if cached is not None and cached.stamps == tuple(stamps):
        return cached.builds
    builds: list[PastBuild] = []
    for path, _, _ in stamps:
        manifest = read_manifest_or_empty(Path(path))
        for name, record in manifest.variants.items():
            past = past_build(f"{Path(path).name}/{name}", record.environment.get("gpu"), record.actual)
            if past is not None:
                builds.append(past)
    _CACHE[str(root)] = _HistoryCache(tuple(stamps), tuple(builds))
    return tuple(builds)


def past_build(name: str, gpu: Any, actual: dict[str, Any] | None) -> PastBuild | None:
    """A VariantRecord.actual as a PastBuild; None for records without one or of another shape."""
    if not isinstance(actual, dict):
        return None
    try:
        engines = tuple(
            PastEngine(
                slot=str(item["slot"]),
                kind=str(item["kind"]),
                family=str(item["family"]),
                fp8=bool(item["fp8"]),
                static_shapes=bool(item["static_shapes"]),
                opt_level=int(item["opt_level"]),
                tiny_vae=bool(item["tiny_vae"]),
                width=int(item["width"]),
                height=int(item["height"]),
                batch=int(item["batch"]),
                bytes=int(item["bytes"]),
                seconds=float(item["seconds"]) if isinstance(item.get("seconds"), (int, float)) else None,
                controlnet=item.get("controlnet") if isinstance(item.get("controlnet"), str) else None,
            )
            for item in actual.get("engines") or []
        )
        return PastBuild(gpu if isinstance(gpu, str) else None, float(actual["seconds"]), engines, name)
    except (KeyError, TypeError, ValueError):
        return None
