"""The reference table: each engine's size, intermediates, GPU memory and build time, and the shape it is for.

Where the figures come from (the project's research notes on the fork, profile_facts §3 and §5; nothing here was
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
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024**2


GIB = 1024**3


REFERENCE_SIZE = 512 * 512  # the pixel count the table's run figures are for


# A Flexible VAE engine is sized for 1024x1024 (docs/streamdiffusion-facts.md §2: 384-1024 px).
DYNAMIC_VAE_MAX = 1024 * 1024


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
    # ControlNets are always built with static shapes (docs/streamdiffusion-facts.md §1.5); only the UNet's batch
    # follows the profile.
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
