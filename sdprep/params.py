"""The parameters that TensorRT bakes into StreamDiffusion engines, each declared once.

Everything the user chooses in the form or on the command line is a field of `BakedParams`, and its `baked(...)`
declaration says the rest: the section of the form it belongs to, its CLI flag, its range (choices come from its
`Literal` type), the config key it is written to (when it maps one to one), which engines' identity it enters, and
how it names the variant. The CLI arguments, the checks of choices and ranges, the config written and read back,
the variant name, the manifest's engine keys and the test strategies are derived from these declarations, so a new
parameter is a field here, a widget in its section, and its label in sdprep/text.

Runtime values (prompt, guidance, seed, ...) are not here: they come from RUNTIME_DEFAULTS in gradio_prepare.py and
change later with StreamDiffusion's `update_stream_params()` without a rebuild.

Defaults are what a new user of SD-Turbo wants: stabilityai/sd-turbo, one denoising step, no consistency LoRA (the
model is already distilled), RCFG "self" (no extra UNet work), 512x512, the tiny VAE (TAESD), the Flexible profile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, get_args, get_type_hints

from sdprep.family import detect_family
from sdprep.paths import absolute_model, absolute_path

ConsistencyLora = Literal["lcm", "tcd", "none"]
Scheduler = Literal["lcm", "tcd"]
CfgType = Literal["none", "full", "self", "initialize"]
Family = Literal["auto", "sd1.5", "sd2.1", "sdxl"]
IPAdapterType = Literal["regular", "plus", "faceid"]
IPAdapterTokens = Literal[4, 16]
Section = Literal["checkpoint", "sampling", "resolution", "lora", "controlnet", "ipadapter", "profile", "output"]

# The engines a config needs (docs/streamdiffusion-facts.md §1.3); a parameter enters the identity of the ones it
# reaches.
EngineKind = Literal["unet", "vae", "cnet", "safety"]
ENGINE_KINDS: tuple[EngineKind, ...] = get_args(EngineKind)
ALL_ENGINES: frozenset[EngineKind] = frozenset(ENGINE_KINDS)

# Width and height: the UNet and a static-shape VAE take 256-1024 (Fast build, Quality, FP8), but the VAE engines of
# a dynamic-shape (Flexible) build only 384-1024 (the fork's wrapper sets min_image_resolution 384 when not static,
# docs/streamdiffusion-facts.md §2). SIZE_RANGE bounds the field; size_range() is the one rule for the slider, the
# CLI help and validate().
SIZE_RANGE = (256, 1024)
DYNAMIC_SIZE_MIN = 384
SIZE_STEP = 8
STEPS_RANGE = (1, 8)
FRAME_BUFFER_RANGE = (1, 4)
CACHE_MAXFRAMES_RANGE = (1, 4)
# TensorRT's builder optimisation levels; 5 is allowed but warned (the fork avoids it: tactic profiling OOMs).
OPT_LEVEL_RANGE = (0, 5)
MAX_CONTROLNETS = 3

POPULAR_MODELS: tuple[str, ...] = (
    "stabilityai/sd-turbo",
    "stabilityai/sdxl-turbo",
    "KBlueLeaf/kohaku-v2.1",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/stable-diffusion-xl-base-1.0",
)

# StreamDiffusion's registered preprocessors (forkni preprocessing/processors/__init__.py). Others (custom
# processors, *_tensorrt ones whose import fails) exist only on some installs, so an unknown name is a warning.
PREPROCESSORS: tuple[str, ...] = (
    "passthrough",
    "canny",
    "depth",
    "openpose",
    "lineart",
    "standard_lineart",
    "soft_edge",
    "hed",
    "scribble",
    "external",
    "feedback",
    "latent_feedback",
    "sharpen",
    "upscale",
    "blur",
    "realesrgan_trt",
    "depth_tensorrt",
    "pose_tensorrt",
    "temporal_net_tensorrt",
    "mediapipe_pose",
    "mediapipe_segmentation",
    "hed_tensorrt",
    "scribble_tensorrt",
    "normal_bae_tensorrt",
)

DEFAULT_IPADAPTER_MODEL = "h94/IP-Adapter/models/ip-adapter_sd15.bin"
DEFAULT_IPADAPTER_ENCODER = "h94/IP-Adapter/models/image_encoder"
CliKind = Literal["value", "switch", "custom"]

if TYPE_CHECKING:
    VariantPart = Callable[["BakedParams"], "str | None"]


@dataclass(frozen=True)
class Spec:
    """Everything about one parameter besides its type and default."""

    section: Section
    flag: str  # the CLI flag that sets it
    cli: CliKind = "value"  # "custom": the CLI builds it from other flags (e.g. --controlnet MODEL,...)
    config_key: str | None = None  # written and read one to one; None: config.py derives it
    engines: frozenset[EngineKind] = ALL_ENGINES  # whose identity it enters (the default: all, never too few)
    bounds: tuple[int, int] | None = None  # inclusive, for whole numbers
    variant: VariantPart | None = None  # its part of the variant name, or None when it adds none
    examples: tuple[Any, ...] = ()  # typical values for text fields (test strategies)


def baked(default: Any, spec: Spec) -> Any:
    """A BakedParams field with its declaration."""
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _engines(*kinds: EngineKind) -> frozenset[EngineKind]:
    return frozenset(kinds)


@dataclass(frozen=True)
class ControlNetSlot:
    """One ControlNet: its weights get their own engine; the UNet only gets residual inputs."""

    model_id: str = "lllyasviel/control_v11p_sd15_canny"
    preprocessor: str = "canny"
    # None lets StreamDiffusion use the ControlNet's own default (3); anything else must be a positive int.
    conditioning_channels: int | None = None
    enabled: bool = True


def _size_variant(params: BakedParams) -> str:
    return f"{params.width}x{params.height}"


def _lora_variant(params: BakedParams) -> str | None:
    if params.consistency_lora != "none":
        return params.consistency_lora
    return "tcdsched" if params.scheduler == "tcd" else None


def _profile_variant(params: BakedParams) -> str | None:
    from sdprep.profiles import profile_of  # profiles.py reads these very fields

    name = profile_of(params)
    if name == "flexible":
        return None
    if name == "custom":
        return f"{'static' if params.static_shapes else 'dynamic'}-o{params.opt_level}{'-fp8' if params.fp8 else ''}"
    return name


@dataclass(frozen=True)
class BakedParams:
    """Every value that changes the engines. Two equal BakedParams give the same engines and config."""

    model: str = baked(
        "stabilityai/sd-turbo",
        Spec("checkpoint", "--model", config_key="model_id", examples=POPULAR_MODELS),
    )
    # "auto" detects the family (SD1.5 / SD2.1 / SDXL) from the model; set it for a checkpoint with an odd name.
    model_family: Family = baked("auto", Spec("checkpoint", "--model-family"))
    denoise_steps: int = baked(
        1,
        Spec(
            "sampling",
            "--steps",
            engines=_engines("unet", "cnet"),
            bounds=STEPS_RANGE,
            variant=lambda p: f"{p.denoise_steps}step",
        ),
    )
    cfg_type: CfgType = baked(
        "self",
        Spec(
            "sampling",
            "--cfg-type",
            config_key="cfg_type",
            engines=_engines("unet", "cnet"),
            variant=lambda p: p.cfg_type,
        ),
    )
    width: int = baked(
        512,
        Spec(
            "resolution",
            "--width",
            config_key="width",
            engines=_engines("unet", "vae", "cnet"),
            bounds=SIZE_RANGE,
            variant=_size_variant,
        ),
    )
    height: int = baked(
        512,
        Spec("resolution", "--height", config_key="height", engines=_engines("unet", "vae", "cnet"), bounds=SIZE_RANGE),
    )
    consistency_lora: ConsistencyLora = baked(
        "none", Spec("sampling", "--consistency-lora", engines=_engines("unet", "cnet"), variant=_lora_variant)
    )
    # Used only when consistency_lora is "none"; otherwise the LoRA decides the scheduler.
    scheduler: Scheduler = baked("lcm", Spec("sampling", "--scheduler", engines=_engines("unet", "cnet")))
    frame_buffer_size: int = baked(
        1,
        Spec(
            "sampling",
            "--frame-buffer-size",
            config_key="frame_buffer_size",
            bounds=FRAME_BUFFER_RANGE,
            variant=lambda p: f"fbs{p.frame_buffer_size}" if p.frame_buffer_size > 1 else None,
        ),
    )
    use_tiny_vae: bool = baked(
        True,
        Spec(
            "resolution",
            "--tiny-vae",
            cli="switch",
            config_key="use_tiny_vae",
            engines=_engines("unet", "vae", "safety"),
            variant=lambda p: None if p.use_tiny_vae else "fullvae",
        ),
    )
    use_cached_attn: bool = baked(
        False,
        Spec(
            "resolution",
            "--cached-attn",
            cli="switch",
            engines=_engines("unet"),
            variant=lambda p: f"cache{p.cache_maxframes}" if p.use_cached_attn else None,
        ),
    )
    cache_maxframes: int = baked(
        1,
        Spec(
            "resolution",
            "--cache-maxframes",
            config_key="cache_maxframes",
            engines=_engines("unet"),
            bounds=CACHE_MAXFRAMES_RANGE,
        ),
    )
    use_safety_checker: bool = baked(
        False,
        Spec(
            "resolution",
            "--safety-checker",
            cli="switch",
            config_key="use_safety_checker",
            engines=_engines("safety"),
            variant=lambda p: "safety" if p.use_safety_checker else None,
        ),
    )
    # The user's own LoRAs as JSON text {"hf_id_or_path": scale}; kept as text so a typo can be reported.
    lora_json: str = baked(
        "{}", Spec("lora", "--lora", engines=_engines("unet"), examples=("{}", '{"owner/style-lora": 0.8}'))
    )
    use_controlnet: bool = baked(
        False,
        Spec(
            "controlnet",
            "--controlnet",
            cli="custom",
            config_key="use_controlnet",
            engines=_engines("unet", "cnet"),
            variant=lambda p: f"cn{len(p.controlnets)}" if p.use_controlnet else None,
        ),
    )
    controlnets: tuple[ControlNetSlot, ...] = baked(
        (), Spec("controlnet", "--controlnet", cli="custom", engines=_engines("cnet"))
    )
    use_ipadapter: bool = baked(
        False,
        Spec(
            "ipadapter",
            "--ipadapter",
            cli="custom",
            config_key="use_ipadapter",
            engines=_engines("unet", "vae"),
            variant=lambda p: f"ip{p.ipadapter_tokens}" if p.use_ipadapter else None,
        ),
    )
    ipadapter_model_path: str = baked(
        DEFAULT_IPADAPTER_MODEL,
        Spec(
            "ipadapter",
            "--ipadapter",
            cli="custom",
            engines=_engines("unet", "vae"),
            examples=(DEFAULT_IPADAPTER_MODEL,),
        ),
    )
    ipadapter_encoder_path: str = baked(
        DEFAULT_IPADAPTER_ENCODER,
        Spec(
            "ipadapter", "--ipadapter-encoder", engines=_engines("unet", "vae"), examples=(DEFAULT_IPADAPTER_ENCODER,)
        ),
    )
    ipadapter_tokens: IPAdapterTokens = baked(
        4, Spec("ipadapter", "--ipadapter-tokens", engines=_engines("unet", "vae"))
    )
    ipadapter_type: IPAdapterType = baked(
        "regular", Spec("ipadapter", "--ipadapter-type", engines=_engines("unet", "vae"))
    )
    # The build profile (sdprep/profiles.py names the combinations): shapes fixed to this exact batch and size or
    # a range, TensorRT's optimisation level, FP8 quantisation of the UNet (and ControlNets).
    static_shapes: bool = baked(
        False,
        Spec(
            "profile",
            "--static-shapes",
            cli="switch",
            config_key="static_shapes",
            engines=_engines("unet", "vae", "cnet"),
            variant=_profile_variant,
        ),
    )
    opt_level: int = baked(
        3,
        Spec(
            "profile",
            "--opt-level",
            config_key="builder_optimization_level",
            engines=_engines("unet", "cnet"),
            bounds=OPT_LEVEL_RANGE,
        ),
    )
    fp8: bool = baked(False, Spec("profile", "--fp8", cli="switch", config_key="fp8", engines=_engines("unet", "cnet")))
    engines_dir: str = baked("engines", Spec("output", "--engines-dir", engines=frozenset(), examples=("engines",)))


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(BakedParams))
SLOT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ControlNetSlot))
SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(BakedParams)}
TYPES: dict[str, Any] = get_type_hints(BakedParams)
DEFAULTS = BakedParams()


def size_range(static_shapes: bool) -> tuple[int, int]:
    """The width and height a build with these shapes accepts."""
    return SIZE_RANGE if static_shapes else (DYNAMIC_SIZE_MIN, SIZE_RANGE[1])


def choices_of(name: str) -> tuple[Any, ...] | None:
    """A field's allowed values when its type is a Literal, else None."""
    args = get_args(TYPES[name])
    return args if args and all(not isinstance(arg, type) for arg in args) else None


def config_key_engines() -> dict[str, frozenset[EngineKind]]:
    """The engines each one-to-one config key reaches, from the declarations."""
    return {spec.config_key: spec.engines for spec in SPECS.values() if spec.config_key}


def params_from_values(values: dict[str, Any]) -> BakedParams:
    """Build BakedParams from a mapping keyed by field name (form or CLI), ignoring unknown keys.

    `controlnets` may be a list of ControlNetSlot or of dicts keyed by ControlNetSlot field names. Paths are
    made absolute (see `absolute_path`) so the config works from any working directory.
    """
    known = {key: value for key, value in values.items() if key in PARAM_NAMES}
    for key in ("model", "engines_dir"):
        if isinstance(known.get(key), str):
            known[key] = known[key].strip()
    slots = known.get("controlnets", ())
    known["controlnets"] = tuple(
        slot
        if isinstance(slot, ControlNetSlot)
        else ControlNetSlot(**{k: v for k, v in slot.items() if k in SLOT_NAMES})
        for slot in slots
    )
    return normalized(replace(DEFAULTS, **known))


def normalized(params: BakedParams) -> BakedParams:
    """One spelling for equal engines, so equal choices compare equal and a config loads back exactly.

    Local paths become absolute (the config must work from any working directory); values hidden by a switch
    (ControlNet slots when ControlNet is off, ...) fall back to defaults; LoRA JSON is written canonically.
    """
    changes: dict[str, Any] = {
        "model": absolute_model(params.model),
        "engines_dir": absolute_path(params.engines_dir),
        "lora_json": _canonical_lora_json(params.lora_json),
        "controlnets": tuple(_normalized_slot(slot) for slot in params.controlnets),
    }
    if params.consistency_lora in ("lcm", "tcd"):
        changes["scheduler"] = params.consistency_lora
    if params.model_family != "auto" and params.model_family == _detected_family(params.model):
        changes["model_family"] = "auto"
    if not params.use_controlnet:
        changes["controlnets"] = ()
    if not params.use_cached_attn:
        changes["cache_maxframes"] = DEFAULTS.cache_maxframes
    if not params.use_ipadapter:
        for name in ("ipadapter_model_path", "ipadapter_encoder_path", "ipadapter_tokens", "ipadapter_type"):
            changes[name] = getattr(DEFAULTS, name)
    else:
        changes["ipadapter_model_path"] = _absolute_weights(params.ipadapter_model_path)
        changes["ipadapter_encoder_path"] = _absolute_weights(params.ipadapter_encoder_path)
    return replace(params, **changes)


def _normalized_slot(slot: ControlNetSlot) -> ControlNetSlot:
    return replace(slot, model_id=_absolute_weights(slot.model_id.strip()), preprocessor=slot.preprocessor.strip())


def _absolute_weights(path: str) -> str:
    """A LoRA / ControlNet / IP-Adapter reference: local paths absolute (the inference script runs elsewhere)."""
    return absolute_model(path, hub_subpaths=True) if isinstance(path, str) else path


def _canonical_lora_json(text: str) -> str:
    try:
        loaded = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return text  # validate() reports it with the position of the mistake
    if not isinstance(loaded, dict) or not all(_is_finite_number(v) for v in loaded.values()):
        return text
    return json.dumps({_absolute_weights(str(k).strip()): float(v) for k, v in loaded.items()})


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _detected_family(model: str) -> str:
    return detect_family(model).family
