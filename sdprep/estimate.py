"""Before a build: the disk, GPU memory and time it will take, each figure with where it comes from.

The figures start from one reference table (REFERENCE, below) and are sharpened by this machine's own earlier
builds: build.json keeps, for every successful build, what it took (VariantRecord.actual: the build's seconds and,
per engine it built, its bytes and the seconds the fork's build_stats.json reports). Time comes from earlier builds
of the same engines on this GPU ("about 6 min, from 3 earlier builds"), else from the table scaled by how this GPU
did against the table before, else from the table alone (a stated rough range). Sizes come from earlier engines of
the same kind and family, else from the table. Every figure carries a Message saying which.

Where the table comes from (the project's research notes on the fork, profile_facts §3 and §5; nothing here was
measured on a GPU by this project):
- Engine sizes: parameter count x 2 bytes from the models' own files on Hugging Face (SD1.5 UNet 860 M, SD2.1
  865 M, SDXL 2.57 B, VAE 83.7 M, TAESD 2.45 M, ControlNet 361 M / SDXL 1.25 B, the safety checker 86.4 M), plus
  2-5 %: "the serialized engine is almost all weights" (NVIDIA/TensorRT#3749). FP8 ~0.55-0.6 x FP16 (derived:
  conv/linear weights 1 byte, the rest stays FP16).
- ONNX intermediates: the fork writes <engine>.onnx and <engine>.opt.onnx (FP16) beside each engine and deletes
  them after it (builder L131-189); SDXL's external weights.pb and onnx__* tensors reach ~10-14 GB (util comments,
  dotsimulate/StreamDiffusion PR #6). FP8 keeps its calibration data and FP8 ONNX (~2.5 GB for SDXL).
- FP8 disk: the fork refuses an FP8 UNet build with less than max(5 x ONNX, 28 GiB) free (builder L97-128).
- Build VRAM: the loaded pipeline + weights + TensorRT's workspace, which the fork caps at 8/12/16 GiB by GPU
  generation (util L1430-1445); reported ~12 GB for an SDXL conversion (dusty-nv/jetson-containers#390), ~12-15 GB
  for SD at batch 3-4 (cumulo-autumn/StreamDiffusion#161), 22+ GB for FP8 calibration (StreamDiffusion PR #47).
- Run VRAM: the engine's weights + activations at 512x512 and batch up to 4, plus CUDA/TensorRT (0.5-1 GB) and the
  text encoders (0.25 / 0.7 / 1.6 GB). Activations grow with the pixel count; a dynamic-shape (Flexible) VAE is
  sized for its largest resolution (1024x1024), as TensorRT sizes memory for the profile's maximum.
- Build minutes are rough figures for an RTX 4090 (derived); the published anchors are 2-10 min for SD1.5 engines
  (NVIDIA/Stable-Diffusion-WebUI-TensorRT README), 10-30 min for SDXL, ~40 min for the fork's FP8 pipeline
  (builder L103-104). Flexible +30 %, Fast build -30 % (the fork's "30-40 % faster build").

Everything here is pure except the two functions at the end that look at the machine: free_space (through the
`disk_usage` seam, which tests replace) and load_history (reads the build.json files under an engines folder).
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdprep import derive
from sdprep.messages import Message, Problem, Size, error, msg, to_json, warning

if TYPE_CHECKING:
    from sdprep.params import BakedParams

MIB = 1024**2
GIB = 1024**3
# Free space a build needs beyond the estimate's high end: 10 % of it, at least 1 GiB (logs, timing cache, the
# config, and an estimate that is only as good as the table).
MARGIN_SHARE = 0.10
MARGIN_MIN = 1 * GIB
# The fork's FP8 preflight (builder L97-128): free >= max(5 x (opt.onnx + weights.pb), 28 GiB).
FP8_FLOOR = 28 * GIB
FP8_ONNX_FACTOR = 5
REFERENCE_SIZE = 512 * 512  # the pixel count the table's run figures are for
DYNAMIC_VAE_MAX = 1024 * 1024  # a Flexible VAE engine is sized for 1024x1024 (FACTS §2: 384-1024 px)
TABLE_MAX_BATCH = 4  # the table's run figures are for batch up to 4


@dataclass(frozen=True)
class Row:
    """One engine's reference figures (ranges, low and high)."""

    engine_mb: tuple[float, float]  # the engine file
    onnx_mb: tuple[float, float]  # intermediates on disk while it builds (deleted after it)
    build_gb: tuple[float, float]  # GPU memory while it builds (the loaded pipeline included)
    run_gb: tuple[float, float]  # GPU memory it takes when running at 512x512, batch up to 4
    minutes: tuple[float, float]  # build time on an RTX 4090
    kept_mb: tuple[float, float] = (0.0, 0.0)  # files FP8 leaves beside the engine (calibration data, FP8 ONNX)


# (engine, family group, precision) -> figures. Family groups: sd1.5, sd2.1, sdxl; "sd" = sd1.5 or sd2.1; "any".
REFERENCE: dict[tuple[str, str, str], Row] = {
    ("unet", "sd1.5", "fp16"): Row((1750, 1810), (3440, 3600), (8, 12), (2.0, 2.6), (3, 6)),
    ("unet", "sd2.1", "fp16"): Row((1765, 1820), (3460, 3600), (8, 12), (2.0, 2.6), (3, 6)),
    ("unet", "sd1.5", "fp8"): Row((960, 1050), (3440, 3600), (10, 16), (1.3, 1.8), (20, 30), (900, 1100)),
    ("unet", "sd2.1", "fp8"): Row((960, 1050), (3460, 3600), (10, 16), (1.3, 1.8), (20, 30), (900, 1100)),
    ("unet", "sdxl", "fp16"): Row((5250, 5400), (10000, 14000), (14, 20), (6.0, 7.0), (8, 15)),
    ("unet", "sdxl", "fp8"): Row((2830, 3090), (10000, 14000), (22, 24), (3.5, 4.5), (30, 45), (2500, 2800)),
    ("vae_encoder", "any", "fp16"): Row((68, 75), (136, 150), (2, 4), (0.3, 1.0), (1, 2)),
    ("vae_decoder", "any", "fp16"): Row((99, 105), (198, 210), (2, 4), (0.3, 1.0), (1, 2)),
    ("tiny_vae", "any", "fp16"): Row((3, 5), (5, 6), (1, 2), (0.1, 0.3), (0.2, 1)),
    ("cnet", "sd", "fp16"): Row((740, 760), (1446, 1500), (5, 8), (0.9, 1.2), (2, 4)),
    ("cnet", "sd", "fp8"): Row((400, 440), (1446, 1500), (6, 10), (0.6, 0.9), (8, 15), (400, 450)),
    ("cnet", "sdxl", "fp16"): Row((2550, 2630), (5000, 5500), (8, 14), (2.8, 3.5), (4, 8)),
    ("cnet", "sdxl", "fp8"): Row((1400, 1550), (5000, 5500), (12, 20), (1.7, 2.2), (15, 25), (1400, 1500)),
    ("safety_checker", "any", "fp16"): Row((175, 185), (690, 720), (1, 2), (0.3, 0.5), (0.5, 1.5)),
}
# Loading the model before any engine (from the local cache; downloads are not counted): a rough figure.
LOAD_MINUTES = (0.5, 2.0)
# Outside the engines, a running pipeline holds CUDA and TensorRT (0.5-1 GB) and its text encoders.
BASE_RUN_GB = (0.5, 1.0)
TEXT_ENCODERS_GB = {"sd1.5": 0.25, "sd2.1": 0.7, "sdxl": 1.6}
# Build time by TensorRT optimisation level, relative to level 3 (the fork: level 2 "30-40 % faster build"; the
# other levels are guesses: lower levels try fewer tactics, 4 and 5 more) and by shapes (dynamic: +30 %).
LEVEL_TIME = {0: 0.5, 1: 0.6, 2: 0.7, 3: 1.0, 4: 1.3, 5: 2.0}
DYNAMIC_TIME = 1.3


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


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of the parameters (kept apart from BakedParams so history entries fit too)."""

    family: str
    fp8: bool
    static_shapes: bool
    opt_level: int
    tiny_vae: bool
    width: int
    height: int
    unet_batch: int
    controlnets: tuple[str, ...] = ()
    safety_checker: bool = False


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


# --- the table ---------------------------------------------------------------------------------------------------


def row_key(kind: str, family: str, fp8: bool, tiny_vae: bool = True) -> tuple[str, str, str]:
    """The REFERENCE row of one engine (kind: an engine_files.FILE_KINDS key)."""
    precision = "fp8" if fp8 else "fp16"
    if kind == "unet":
        return ("unet", family if family in TEXT_ENCODERS_GB else "sd1.5", precision)
    if kind in ("vae_encoder", "vae_decoder"):
        return ("tiny_vae", "any", "fp16") if tiny_vae else (kind, "any", "fp16")
    if kind == "cnet":
        return ("cnet", "sdxl" if family == "sdxl" else "sd", precision)
    return ("safety_checker", "any", "fp16")


def time_factor(kind: str, shape: Shape) -> float:
    """The table's minutes are for static shapes at level 3; the profile moves the UNet's and ControlNets' time."""
    if kind not in ("unet", "cnet") or shape.fp8:
        return 1.0
    factor = LEVEL_TIME.get(shape.opt_level, 1.0)
    # ControlNets are always built with static shapes (FACTS §1.5); only the UNet's batch follows the profile.
    return factor * (DYNAMIC_TIME if kind == "unet" and not shape.static_shapes else 1.0)


def table_seconds(kind: str, shape: Shape) -> tuple[float, float]:
    row = REFERENCE[row_key(kind, shape.family, shape.fp8, shape.tiny_vae)]
    factor = time_factor(kind, shape) * 60
    return row.minutes[0] * factor, row.minutes[1] * factor


def slots_of(shape: Shape) -> list[tuple[str, str, str | None]]:
    """(slot id, kind, ControlNet model id) of every engine a build of this shape makes."""
    slots: list[tuple[str, str, str | None]] = [
        ("unet", "unet", None),
        ("vae_encoder", "vae_encoder", None),
        ("vae_decoder", "vae_decoder", None),
    ]
    for model_id in dict.fromkeys(shape.controlnets):
        slots.append((f"cnet:{model_id}", "cnet", model_id))
    if shape.safety_checker:
        slots.append(("safety_checker", "safety_checker", None))
    return slots


# --- history -----------------------------------------------------------------------------------------------------


def _same_engine(past: PastEngine, kind: str, controlnet: str | None, shape: Shape) -> bool:
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


def _same_weights(past: PastEngine, kind: str, controlnet: str | None, shape: Shape) -> bool:
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


# --- the estimate ------------------------------------------------------------------------------------------------


def estimate(shape: Shape, history: Iterable[PastBuild] = (), gpu: str | None = None) -> Estimate:
    """Disk, VRAM and time for a build of `shape`; `history` sharpens sizes (any GPU) and times (`gpu` only)."""
    history = tuple(history)
    on_this_gpu = tuple(build for build in history if gpu is not None and build.gpu == gpu)
    speed = gpu_speed(on_this_gpu, gpu)
    parts: list[Part] = []
    timed_by: set[str] = set()
    sized_by: set[str] = set()
    for slot, kind, controlnet in slots_of(shape):
        key = row_key(kind, shape.family, shape.fp8, shape.tiny_vae)
        row = REFERENCE[key]
        sizes = [(b.name, p.bytes) for b in history for p in b.engines if _same_weights(p, kind, controlnet, shape)]
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
            if p.seconds is not None and p.seconds > 0 and _same_engine(p, kind, controlnet, shape)
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
        time=_time(parts, on_this_gpu, timed_by, speed),
    )


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


def at_table_size(shape: Shape) -> Shape:
    """The same shape at the table's own size (512x512, batch up to 4)."""
    return Shape(
        shape.family,
        shape.fp8,
        True,
        shape.opt_level,
        shape.tiny_vae,
        512,
        512,
        TABLE_MAX_BATCH,
        shape.controlnets,
        shape.safety_checker,
    )


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


# --- what cannot fit ---------------------------------------------------------------------------------------------


def disk_problem(est: Estimate, free: int | None, folder: Path) -> Problem | None:
    """An error on the engines folder when its free space is below what the build needs (with the margin)."""
    if free is None or free >= est.disk_needed:
        return None
    return error(
        "engines_dir",
        "disk_low",
        folder=folder,
        free=Size(free),
        need=Size(est.disk_needed),
        peak=Size(est.disk_peak.high),
        margin=Size(est.margin),
    )


def vram_problem(est: Estimate, free: int | None, fp8: bool) -> Problem | None:
    """A warning when the GPU's free memory is below the low end of what building needs."""
    if free is None or free >= est.vram_build.low:
        return None
    return warning("fp8" if fp8 else "width", "vram_low", free=Size(free), need=Size(est.vram_build.low))


# --- wording -----------------------------------------------------------------------------------------------------


def size_words(figure: Figure) -> Message:
    if figure.about is not None and figure.high - figure.low < 0.05 * max(figure.high, 1):
        return msg("est_about", value=Size(figure.about))
    return msg("est_range", low=Size(figure.low), high=Size(figure.high))


def time_words(figure: Figure) -> Message:
    """ "about 6 min" from earlier builds, else "5-7 min" (seconds below two minutes)."""
    if figure.about is not None and figure.source.code != "est_src_time_scaled":
        if figure.about < 120:
            return msg("est_about_seconds", value=max(1, round(figure.about)))
        return msg("est_about_minutes", value=round(figure.about / 60))
    if figure.high < 120:
        return msg("est_range_seconds", low=max(0, round(figure.low)), high=max(1, round(figure.high)))
    low, high = round(figure.low / 60), round(figure.high / 60)
    return msg("est_range_minutes", low=max(1, low), high=max(high, low + 1))


@dataclass(frozen=True)
class Line:
    """One row of the estimate for people: what, how much, from where."""

    label: str  # text key
    value: Message
    source: Message
    alarm: bool = False


def lines(est: Estimate, free_disk: int | None, free_vram: int | None, folder: Path) -> list[Line]:
    rows = [
        Line("est_row_disk_engines", size_words(est.disk_engines), est.disk_engines.source),
        Line("est_row_disk_peak", msg("est_needed", need=Size(est.disk_needed)), est.disk_peak.source),
    ]
    if free_disk is not None:
        short = free_disk < est.disk_needed
        rows.append(
            Line(
                "est_row_disk_free",
                msg("est_free_short" if short else "est_free_ok", free=Size(free_disk)),
                msg("est_src_folder", folder=folder),
                alarm=short,
            )
        )
    rows.append(Line("est_row_vram_build", size_words(est.vram_build), est.vram_build.source))
    if free_vram is not None:
        low = free_vram < est.vram_build.low
        rows.append(
            Line(
                "est_row_vram_free",
                msg("est_vram_short" if low else "est_free_ok", free=Size(free_vram)),
                msg("est_src_probe"),
                alarm=low,
            )
        )
    rows.append(Line("est_row_vram_run", size_words(est.vram_run), est.vram_run.source))
    rows.append(Line("est_row_time", time_words(est.time), est.time.source))
    return rows


# --- the machine (the only functions that look at it) ------------------------------------------------------------


# The seam tests replace to play a nearly full disk (the build and the preview ask through free_space only).
disk_usage = shutil.disk_usage


def free_space(folder: Path) -> int | None:
    """Free bytes on the filesystem that holds `folder` (or would: its nearest existing parent); None if unknown."""
    path = Path(folder)
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return int(disk_usage(path).free)
    except OSError:
        return None


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
