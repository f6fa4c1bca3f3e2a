"""BakedParams + runtime defaults -> the config dict StreamDiffusion's `create_wrapper_from_config()` reads, and back.

The dict built here is the dict the build child builds from and the dict written to config.yaml, so the
inference script asks StreamDiffusion for exactly the engines that were built.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, TypedDict

import yaml

from sdprep import derive
from sdprep.params import DEFAULTS, BakedParams, ControlNetSlot, params_from_values
from sdprep.paths import atomic_write_text


class RuntimeDefaults(TypedDict):
    """Values an inference script may change at any time with update_stream_params(); not baked."""

    sampler: str
    guidance_scale: float
    delta: float
    prompt: str
    negative_prompt: str
    seed: int
    controlnet_conditioning_scale: float
    ipadapter_scale: float


# Keys whose change needs new engines, and keys the inference script may change at runtime. Shown in the
# header of every config.yaml so a person editing it knows which edits need a rebuild.
BAKED_KEYS = (
    "model_id",
    "pipeline_type",
    "width",
    "height",
    "t_index_list",
    "frame_buffer_size",
    "cfg_type",
    "scheduler",
    "use_denoising_batch",
    "min_batch_size",
    "max_batch_size",
    "use_tiny_vae",
    "lora_dict",
    "use_lcm_lora",
    "use_cached_attn",
    "use_feature_injection",
    "cache_maxframes",
    "max_cache_maxframes",
    "use_safety_checker",
    "use_controlnet",
    "controlnets (model_id, conditioning_channels)",
    "use_ipadapter",
    "ipadapter_config (model paths, type, num_image_tokens)",
    "mode",
    "acceleration",
    "engine_dir",
)
# Top-level keys an inference script may change without a rebuild (update_stream_params / prepare).
RUNTIME_CONFIG_KEYS = ("prompt", "negative_prompt", "guidance_scale", "delta", "seed", "num_inference_steps", "sampler")
# Keys inside controlnets[] / ipadapter_config[] items that are runtime too.
RUNTIME_ITEM_KEYS = ("conditioning_scale", "enabled", "preprocessor", "preprocessor_params", "scale")
RUNTIME_KEYS = (
    *RUNTIME_CONFIG_KEYS,
    "t_index_list values (same length)",
    "controlnets[].conditioning_scale / enabled / preprocessor",
    "ipadapter_config[].scale / enabled",
)

# cache_maxframes may be raised at runtime up to this; it is also the cache buffer the engine is built for.
MAX_CACHE_MAXFRAMES = 4


def make_config(params: BakedParams, runtime: RuntimeDefaults) -> dict[str, Any]:
    """The StreamDiffusion config for these parameters (forkni config schema; livepeer reads the same keys)."""
    batch = derive.unet_batch(params)
    config: dict[str, Any] = {
        "model_id": params.model,
        # Dead key in every fork (FACTS §6); it records the family so the config loads back exactly.
        "pipeline_type": derive.family(params),
        "engine_dir": derive.engine_dir(params).as_posix(),
        "acceleration": "tensorrt",
        "mode": "img2img",
        "dtype": "float16",
        "device": "cuda",
        "width": params.width,
        "height": params.height,
        "t_index_list": derive.t_index_list(params),
        "frame_buffer_size": params.frame_buffer_size,
        "cfg_type": params.cfg_type,
        "scheduler": derive.scheduler(params),
        "sampler": runtime["sampler"],
        "use_denoising_batch": True,
        # Read by forks whose loader passes them; the newest ignores them and builds 1..4 (FACTS §0.7).
        "min_batch_size": batch,
        "max_batch_size": batch,
        "use_tiny_vae": params.use_tiny_vae,
        # Explicitly off: livepeer's default True would silently add an LCM LoRA the user did not choose.
        "use_lcm_lora": False,
        "lora_dict": derive.lora_dict(params) or None,
        "use_cached_attn": params.use_cached_attn,
        # Feature injection only works with cached attention; its flag is in the UNet engine name either way.
        "use_feature_injection": params.use_cached_attn,
        "cache_maxframes": params.cache_maxframes,
        "max_cache_maxframes": MAX_CACHE_MAXFRAMES,
        "use_safety_checker": params.use_safety_checker,
        "use_controlnet": params.use_controlnet,
        "use_ipadapter": params.use_ipadapter,
        "build_engines_if_missing": True,
        "compile_engines_only": False,
        "prompt": runtime["prompt"],
        "negative_prompt": runtime["negative_prompt"],
        "guidance_scale": runtime["guidance_scale"],
        "delta": runtime["delta"],
        "seed": runtime["seed"],
        "num_inference_steps": derive.NUM_INFERENCE_STEPS,
    }
    if params.use_controlnet:
        config["controlnets"] = [_controlnet_item(slot, runtime) for slot in params.controlnets]
    if params.use_ipadapter:
        # The raw list, not `ipadapters:`: the newest loaders drop num_image_tokens from `ipadapters:` items
        # (a Plus adapter would be built with 4 tokens and fail); every fork passes this list through (FACTS §7).
        config["ipadapter_config"] = [
            {
                "ipadapter_model_path": params.ipadapter_model_path,
                "image_encoder_path": params.ipadapter_encoder_path,
                "scale": runtime["ipadapter_scale"],
                "enabled": True,
                "type": params.ipadapter_type,
                "num_image_tokens": params.ipadapter_tokens,
            }
        ]
    if config["lora_dict"] is None:
        del config["lora_dict"]
    return config


def _controlnet_item(slot: ControlNetSlot, runtime: RuntimeDefaults) -> dict[str, Any]:
    item: dict[str, Any] = {
        "model_id": slot.model_id,
        "preprocessor": slot.preprocessor,
        "conditioning_scale": runtime["controlnet_conditioning_scale"],
        "enabled": slot.enabled,
    }
    # Omitted when unset: StreamDiffusion's loader rejects anything but a positive int.
    if slot.conditioning_channels is not None:
        item["conditioning_channels"] = slot.conditioning_channels
    return item


class ConfigError(ValueError):
    """A config file that cannot be read back into parameters; the message says what and where."""


def params_from_config(config: dict[str, Any], engines_dir: str | None = None) -> tuple[BakedParams, list[str]]:
    """Read a StreamDiffusion config back into BakedParams, with notes on anything the form cannot show.

    Accepts configs written by this app (exact round trip) and hand-written ones: `ipadapters:` or raw
    `ipadapter_config:`, any t_index_list (its length becomes the step count).
    """
    if not isinstance(config, dict) or not config.get("model_id"):
        raise ConfigError("The config has no model_id, so it is not a StreamDiffusion config.")
    notes: list[str] = []
    model = str(config["model_id"])
    t_index = config.get("t_index_list") or [0, 16, 32, 45]
    steps = derive.steps_for_t_index_list(list(t_index))
    if steps in derive.T_INDEX_PRESETS and list(derive.T_INDEX_PRESETS[steps]) != list(t_index):
        notes.append(
            f"t_index_list {list(t_index)} has {steps} step(s); the form uses the preset "
            f"{list(derive.T_INDEX_PRESETS[steps])} (the values can still be changed at runtime)."
        )

    values: dict[str, Any] = {
        "model": model,
        "denoise_steps": steps,
        "cfg_type": config.get("cfg_type", "self"),
        "width": config.get("width", 512),
        "height": config.get("height", 512),
        "frame_buffer_size": config.get("frame_buffer_size", 1),
        "use_tiny_vae": bool(config.get("use_tiny_vae", True)),
        "use_cached_attn": bool(config.get("use_cached_attn", False)),
        "cache_maxframes": config.get("cache_maxframes", 1),
        "use_safety_checker": bool(config.get("use_safety_checker", False)),
        "engines_dir": engines_dir if engines_dir is not None else _engines_dir_of(config),
    }
    family = config.get("pipeline_type")
    detected = derive.detect_family(model).family
    values["model_family"] = "auto" if family in (None, detected) else family

    scheduler = config.get("scheduler", "lcm")
    loras = {str(k): float(v) for k, v in (config.get("lora_dict") or {}).items()}
    consistency = "none"
    for kind, by_family in derive.CONSISTENCY_LORAS.items():
        for lora_family, lora_id in by_family.items():
            if lora_id in loras and kind == scheduler:
                consistency = kind
                del loras[lora_id]
                if values["model_family"] == "auto" and lora_family != detected:
                    values["model_family"] = lora_family
    values["consistency_lora"] = consistency
    values["scheduler"] = scheduler if consistency == "none" else DEFAULTS.scheduler
    values["lora_json"] = json.dumps(loras) if loras else DEFAULTS.lora_json

    controlnets = config.get("controlnets") or []
    values["use_controlnet"] = bool(controlnets) or bool(config.get("use_controlnet", False))
    values["controlnets"] = [
        ControlNetSlot(
            model_id=str(item.get("model_id", "")),
            preprocessor=str(item.get("preprocessor", "passthrough")),
            conditioning_channels=item.get("conditioning_channels"),
            enabled=bool(item.get("enabled", True)),
        )
        for item in controlnets
    ]

    adapters = config.get("ipadapters") or config.get("ipadapter_config") or []
    if isinstance(adapters, dict):
        adapters = [adapters]
    values["use_ipadapter"] = bool(adapters) and bool(config.get("use_ipadapter", True) or config.get("ipadapters"))
    if adapters:
        first = adapters[0]
        if len(adapters) > 1:
            notes.append("Only the first IP-Adapter is used by StreamDiffusion; the others were left out.")
        values["ipadapter_model_path"] = str(first.get("ipadapter_model_path", ""))
        values["ipadapter_encoder_path"] = str(first.get("image_encoder_path", ""))
        values["ipadapter_tokens"] = int(first.get("num_image_tokens", 16 if first.get("type") == "plus" else 4))
        values["ipadapter_type"] = first.get("type", "regular")
    return params_from_values(values), notes


def _engines_dir_of(config: dict[str, Any]) -> str:
    engine_dir = config.get("engine_dir")
    return str(Path(engine_dir).parent) if engine_dir else DEFAULTS.engines_dir


def config_header(params: BakedParams) -> str:
    lines = [
        "StreamDiffusion config written by gradio_prepare.py for the engines in",
        f"  {derive.engine_dir(params).as_posix()}",
        "Load it with: create_wrapper_from_config(load_config(<this file>))",
        "",
        "BAKED into the TensorRT engines - changing any of these needs a rebuild:",
        *textwrap.wrap(", ".join(BAKED_KEYS), 110, initial_indent="  ", subsequent_indent="  "),
        "RUNTIME - change any time with update_stream_params():",
        *textwrap.wrap(", ".join(RUNTIME_KEYS), 110, initial_indent="  ", subsequent_indent="  "),
    ]
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


class _ConfigDumper(yaml.SafeDumper):
    """Block style, except short lists of numbers or words (t_index_list) stay on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(item, (int, float, str, bool)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_ConfigDumper.add_representer(list, _represent_list)


def dump_yaml(config: dict[str, Any], header: str = "") -> str:
    """UTF-8 YAML with the keys in the order make_config() wrote them."""
    body = yaml.dump(config, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return header + body


def render_config(params: BakedParams, runtime: RuntimeDefaults) -> str:
    return dump_yaml(make_config(params, runtime), config_header(params))


def write_config(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror or error}.") from None
    try:
        loaded = yaml.safe_load(text) if path.suffix.lower() != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} does not hold a config (expected key: value pairs).")
    return loaded


def load_params(path: Path) -> tuple[BakedParams, list[str]]:
    return params_from_config(read_config(path))
