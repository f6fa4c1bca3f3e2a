"""The estimate of one build: its disk, GPU memory and time, each a range with where it comes from.

Time comes from earlier builds of the same engines on this GPU ("about 6 min, from 3 earlier builds"), else from the
table scaled by how this GPU did against the table before, else from the table alone (a stated rough range). A build
with a TensorRT timing cache (warm) learns from warm builds, else from cold ones with a note saying so; a cold one
only from cold builds (a warm build's time would promise too little). Sizes come from earlier engines of the same
kind and family, else from the table. Every figure carries a Message saying which. Pure: the history is handed in.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdprep import derive
from sdprep.estimate.history import PastBuild, gpu_speed, same_engine, same_weights
from sdprep.estimate.reference import (
    BASE_RUN_GB,
    DYNAMIC_VAE_MAX,
    GIB,
    LOAD_MINUTES,
    MIB,
    REFERENCE,
    REFERENCE_SIZE,
    TABLE_MAX_BATCH,
    TEXT_ENCODERS_GB,
    Shape,
    at_table_size,
    row_key,
    slots_of,
    table_seconds,
)
from sdprep.messages import Message, msg, to_json

if TYPE_CHECKING:
    from sdprep.params import BakedParams

# Free space a build needs beyond the estimate's high end: 10 % of it, at least 1 GiB (logs, timing cache, the
# config, and an estimate that is only as good as the table).
MARGIN_SHARE = 0.10


MARGIN_MIN = 1 * GIB


# The fork's FP8 preflight (builder L97-128): free >= max(5 x (opt.onnx + weights.pb), 28 GiB).
FP8_FLOOR = 28 * GIB


FP8_ONNX_FACTOR = 5


@dataclass(frozen=True)
class Figure:
    """A range (bytes or seconds), its best single value when earlier builds give one, and where it comes from."""

    low: float
    high: float
    source: Message
    about: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "about": self.about, "source": to_json(self.source)}


@dataclass(frozen=True)
class Part:
    """One engine the build makes, as the estimate sees it."""

    slot: str  # engine_files slot id: unet, vae_encoder, vae_decoder, cnet:<model id>, safety_checker
    kind: str  # engine_files.FILE_KINDS key
    row_key: tuple[str, str, str]
    size: Figure
    seconds: Figure


@dataclass(frozen=True)
class Estimate:
    parts: tuple[Part, ...]
    disk_engines: Figure  # bytes left on disk by the build (engines, and FP8's kept files)
    disk_peak: Figure  # free bytes the build needs at its fullest (engines + the largest intermediates; FP8 floor)
    margin: int
    vram_build: Figure
    vram_run: Figure
    time: Figure

    @property
    def disk_needed(self) -> int:
        """Free bytes to ask of the engines folder: the high end of the peak plus the margin."""
        return int(self.disk_peak.high) + self.margin

    def as_json(self) -> dict[str, Any]:
        return {
            "disk_engines": self.disk_engines.as_json(),
            "disk_peak": self.disk_peak.as_json(),
            "disk_needed": self.disk_needed,
            "vram_build": self.vram_build.as_json(),
            "vram_run": self.vram_run.as_json(),
            "time": self.time.as_json(),
            "engines": {
                part.slot: {"bytes": part.size.as_json(), "seconds": part.seconds.as_json()} for part in self.parts
            },
        }


def shape_of(params: BakedParams, safety_engine: bool = True) -> Shape:
    """The parameters as the estimate sees them (`safety_engine`: whether this fork builds one; unknown: yes)."""
    return Shape(
        family=derive.family(params),
        fp8=params.fp8,
        static_shapes=params.static_shapes,
        opt_level=params.opt_level,
        tiny_vae=params.use_tiny_vae,
        width=params.width,
        height=params.height,
        unet_batch=derive.unet_batch(params),
        controlnets=tuple(slot.model_id for slot in params.controlnets) if params.use_controlnet else (),
        safety_checker=params.use_safety_checker and safety_engine,
    )


# The preview asks for an estimate on every form change, with the same history (load_history's cached tuple, until a
# build.json changes) and mostly the same shape (most fields are not part of it): answers for the last history are
# kept by shape and GPU. With a few hundred recorded builds an answer costs about a millisecond.
_MEMO_SIZE = 64
_memo: dict[tuple[Shape, str | None, bool], Estimate] = {}
_memo_of: list[tuple[PastBuild, ...]] = [()]  # the history the kept answers were computed from
_memo_lock = threading.Lock()


def estimate(shape: Shape, history: Iterable[PastBuild] = (), gpu: str | None = None, warm: bool = False) -> Estimate:
    """Disk, VRAM and time for a build of `shape`; `history` sharpens sizes (any GPU) and times (`gpu` only, and
    builds of the same timing-cache state: `warm` when this one starts with a cache)."""
    history = tuple(history)
    key = (shape, gpu, warm)
    with _memo_lock:
        known = _memo.get(key) if _memo_of[0] is history else None
    if known is not None:
        return known
    answer = _estimate(shape, history, gpu, warm)
    with _memo_lock:
        if _memo_of[0] is not history:
            _memo.clear()
            _memo_of[0] = history
        if len(_memo) >= _MEMO_SIZE:
            del _memo[next(iter(_memo))]
        _memo[key] = answer
    return answer


def _estimate(shape: Shape, history: tuple[PastBuild, ...], gpu: str | None, warm: bool) -> Estimate:
    on_this_gpu = tuple(build for build in history if gpu is not None and build.gpu == gpu)
    warm_from_cold = warm and not any(build.warm for build in on_this_gpu) and bool(on_this_gpu)
    on_this_gpu = tuple(build for build in on_this_gpu if build.warm == (warm and not warm_from_cold))
    speed = gpu_speed(on_this_gpu, gpu)
    parts: list[Part] = []
    timed_by: set[str] = set()
    sized_by: set[str] = set()
    for slot, kind, controlnet in slots_of(shape):
        key = row_key(kind, shape.family, shape.fp8, shape.tiny_vae)
        row = REFERENCE[key]
        sizes = [(b.name, p.bytes) for b in history for p in b.engines if same_weights(p, kind, controlnet, shape)]
        if sizes:
            sized_by.update(name for name, _ in sizes)
            values = [size for _, size in sizes]
            size = Figure(min(values), max(values), msg("est_part_history"), statistics.median(values))
        else:
            size = Figure(row.engine_mb[0] * MIB, row.engine_mb[1] * MIB, msg("est_part_table"))
        times = [
            (b.name, p.seconds)
            for b in on_this_gpu
            for p in b.engines
            if p.seconds is not None and p.seconds > 0 and same_engine(p, kind, controlnet, shape)
        ]
        low, high = table_seconds(kind, shape)
        if times:
            timed_by.update(name for name, _ in times)
            durations = [taken for _, taken in times if taken is not None]
            seconds = Figure(min(durations), max(durations), msg("est_part_history"), statistics.median(durations))
        elif speed is not None:
            factor = speed[0]
            seconds = Figure(low * factor, high * factor, msg("est_part_scaled"), (low + high) / 2 * factor)
        else:
            seconds = Figure(low, high, msg("est_part_table"))
        parts.append(Part(slot, kind, key, size, seconds))
    peak = _disk_peak(parts, sized_by)
    return Estimate(
        parts=tuple(parts),
        disk_engines=_disk_engines(parts, sized_by),
        disk_peak=peak,
        margin=int(max(MARGIN_MIN, peak.high * MARGIN_SHARE)),
        vram_build=_vram_build(parts, shape),
        vram_run=_vram_run(parts, shape),
        time=_warm_note(_time(parts, on_this_gpu, timed_by, speed), warm_from_cold),
    )


def _warm_note(time: Figure, warm_from_cold: bool) -> Figure:
    """A warm build timed from cold builds says so (it is likely shorter)."""
    if not warm_from_cold:
        return time
    return Figure(time.low, time.high, msg("est_src_time_warm_from_cold", source=time.source), time.about)


def _size_source(parts: list[Part], sized_by: set[str]) -> Message:
    from_history = sum(part.size.source.code == "est_part_history" for part in parts)
    if from_history == len(parts):
        return msg("est_src_size_history_all", count=len(sized_by))
    if from_history:
        return msg("est_src_size_mixed", count=len(sized_by))
    return msg("est_src_size_table")


def _kept(part: Part) -> tuple[float, float]:
    kept = REFERENCE[part.row_key].kept_mb
    return kept[0] * MIB, kept[1] * MIB


def _disk_engines(parts: list[Part], sized_by: set[str]) -> Figure:
    low = sum(part.size.low + _kept(part)[0] for part in parts)
    high = sum(part.size.high + _kept(part)[1] for part in parts)
    known = [part.size.about for part in parts if part.size.about is not None]
    about = sum(known) + sum(sum(_kept(part)) / 2 for part in parts) if len(known) == len(parts) else None
    return Figure(low, high, _size_source(parts, sized_by), about)


def _disk_peak(parts: list[Part], sized_by: set[str]) -> Figure:
    """Engines and kept files, plus the largest engine's intermediates (they are deleted after each engine); for
    FP8 the fork's own floor, which it checks before quantising."""
    engines = _disk_engines(parts, sized_by)
    onnx_low = max(REFERENCE[part.row_key].onnx_mb[0] for part in parts) * MIB
    onnx_high = max(REFERENCE[part.row_key].onnx_mb[1] for part in parts) * MIB
    low, high = engines.low + onnx_low, engines.high + onnx_high
    fp8 = [part for part in parts if part.row_key[2] == "fp8" and part.kind == "unet"]
    if fp8:
        # One ONNX (opt.onnx + weights.pb) is half of the export + optimised pair the table counts.
        floor = max(FP8_ONNX_FACTOR * REFERENCE[fp8[0].row_key].onnx_mb[1] * MIB / 2, FP8_FLOOR)
        if floor + engines.high > high:
            return Figure(max(low, floor + engines.low), floor + engines.high, msg("est_src_fp8_floor"))
    return Figure(low, high, msg("est_src_disk_peak", engines=_size_source(parts, sized_by)))


def _activation_scale(part: Part, shape: Shape) -> float:
    """How much larger than the table's (512x512, batch up to 4) this engine's working memory is."""
    pixels = shape.width * shape.height
    if part.kind in ("vae_encoder", "vae_decoder"):
        return (pixels if shape.static_shapes else DYNAMIC_VAE_MAX) / REFERENCE_SIZE
    if part.kind == "safety_checker":
        return 1.0  # a fixed 448x448 input
    batch = TABLE_MAX_BATCH if part.kind == "unet" and not shape.static_shapes else shape.unet_batch
    return pixels / REFERENCE_SIZE * batch / TABLE_MAX_BATCH


def _run_bytes(part: Part, shape: Shape) -> tuple[float, float]:
    row = REFERENCE[part.row_key]
    weights = (row.engine_mb[0] * MIB, row.engine_mb[1] * MIB)
    scale = _activation_scale(part, shape)
    low = weights[0] + max(0.05 * GIB, row.run_gb[0] * GIB - weights[0]) * scale
    high = weights[1] + max(0.1 * GIB, row.run_gb[1] * GIB - weights[1]) * scale
    return low, high


def _vram_build(parts: list[Part], shape: Shape) -> Figure:
    """The largest engine's build (engines are built one after another), its working memory grown with the size."""
    best = (0.0, 0.0)
    for part in parts:
        row = REFERENCE[part.row_key]
        run_low, run_high = _run_bytes(part, shape)
        base_low, base_high = _run_bytes(part, at_table_size(shape))
        low = row.build_gb[0] * GIB + max(0.0, run_low - base_low)
        high = row.build_gb[1] * GIB + max(0.0, run_high - base_high)
        best = max(best, (low, high), key=lambda pair: pair[1])
    return Figure(best[0], best[1], msg("est_src_vram_build"))


def _vram_run(parts: list[Part], shape: Shape) -> Figure:
    text = TEXT_ENCODERS_GB.get(shape.family, TEXT_ENCODERS_GB["sdxl"]) * GIB
    low = BASE_RUN_GB[0] * GIB + text + sum(_run_bytes(part, shape)[0] for part in parts)
    high = BASE_RUN_GB[1] * GIB + text + sum(_run_bytes(part, shape)[1] for part in parts)
    return Figure(low, high, msg("est_src_vram_run"))


def _time(
    parts: list[Part],
    on_this_gpu: tuple[PastBuild, ...],
    timed_by: set[str],
    speed: tuple[float, int] | None,
) -> Figure:
    """The engines one after another, plus loading the model (from earlier builds: what they took besides their
    engines)."""
    # What earlier builds took besides their engines, once this GPU has timed engines at all (else the table).
    overheads = [
        build.seconds - sum(past.seconds or 0.0 for past in build.engines)
        for build in on_this_gpu
        if speed is not None and build.engines and all(past.seconds is not None for past in build.engines)
    ]
    overheads = [value for value in overheads if value >= 0]
    if overheads:
        load = (min(overheads), max(overheads), statistics.median(overheads))
    else:
        factor = speed[0] if speed else 1.0
        low, high = LOAD_MINUTES[0] * 60 * factor, LOAD_MINUTES[1] * 60 * factor
        load = (low, high, (low + high) / 2)
    low = load[0] + sum(part.seconds.low for part in parts)
    high = load[1] + sum(part.seconds.high for part in parts)
    about = load[2] + sum(part.seconds.about or (part.seconds.low + part.seconds.high) / 2 for part in parts)
    codes = {part.seconds.source.code for part in parts}
    if codes == {"est_part_history"} and overheads:
        return Figure(low, high, msg("est_src_time_history", count=len(timed_by)), about)
    if "est_part_history" in codes:
        return Figure(low, high, msg("est_src_time_mixed", count=len(timed_by)), about)
    if speed is not None:
        factor = float(f"{speed[0]:.2g}")
        return Figure(low, high, msg("est_src_time_scaled", count=speed[1], factor=factor), about)
    return Figure(low, high, msg("est_src_time_table"))
