"""BakedParams + runtime defaults -> the config dict StreamDiffusion's `create_wrapper_from_config()` reads.

The dict built here is the dict the build child builds from and the dict written to config.yaml, so the inference
script asks StreamDiffusion for exactly the engines that were built. Parameters declared with a `config_key`
(params.py) are written one to one; the keys below are derived from several parameters or fixed. Reading a
config back into parameters is config_load.py.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Any, TypedDict

import yaml

from sdprep import derive
from sdprep.params import ALL_ENGINES, SPECS, BakedParams, ControlNetSlot, EngineKind, config_key_engines
from sdprep.paths import atomic_write_text
from sdprep.profiles import VAE_OPT_LEVEL
from sdprep.validate import CONFIG_ROUTE_MAX_BATCH


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


# Top-level keys no engine bakes: the values an inference script passes to prepare() / update_stream_params(), and
# the fork's other loader keys that only steer the running pipeline (config_keys_forkni.json lists what the loader
# reads). A config carries them from build to build unchanged (sdprep/runtime.py); the app models the first seven.
MODELLED_RUNTIME_KEYS = (
    "prompt",
    "negative_prompt",
    "guidance_scale",
    "delta",
    "seed",
    "num_inference_steps",
    "sampler",
)
RUNTIME_CONFIG_KEYS = (
    *MODELLED_RUNTIME_KEYS,
    "prompt_blending",
    "seed_blending",
    "normalize_prompt_weights",
    "normalize_seed_weights",
    "warmup",
    "do_add_noise",
    "skip_diffusion",
    "output_type",
    "debug_mode",
    "cache_interval",
    "cn_cache_interval",
    "fi_strength",
    "fi_threshold",
    "enable_similar_image_filter",
    "similar_image_filter_threshold",
    "similar_image_filter_max_skip_frame",
    "similar_filter_sleep_fraction",
    "image_preprocessing",
    "image_postprocessing",
    "latent_preprocessing",
    "latent_postprocessing",
    "send_controlnet_preview",
    "use_cuda_ipc_output",
    "cuda_ipc_shm_name",
    "cuda_ipc_cn_processed_shm_name",
    "cuda_ipc_num_slots",
    "l2_persist",
)
# Keys inside controlnets[] / ipadapter_config[] items that no engine bakes; enabled and preprocessor are written from
# the form's ControlNet slots, the others are carried like the top-level runtime keys.
RUNTIME_ITEM_KEYS = ("conditioning_scale", "enabled", "preprocessor", "preprocessor_params", "scale", "style_image")
CARRIED_ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "controlnets": ("conditioning_scale", "preprocessor_params"),
    "ipadapter_config": ("scale", "style_image"),
}
RUNTIME_KEYS = (
    *MODELLED_RUNTIME_KEYS,
    "t_index_list values (same length)",
    "controlnets[].conditioning_scale / enabled / preprocessor",
    "ipadapter_config[].scale / enabled",
    "the loader's pipeline keys (warmup, do_add_noise, similar_image_filter ...)",
)
# Keys that never change an engine: a runtime edit of config.yaml (a new prompt) or a moved engines folder is still
# the same build.
NOT_BAKED_KEYS = frozenset(
    {
        *RUNTIME_CONFIG_KEYS,
        "build_engines_if_missing",
        "compile_engines_only",
        "engine_dir",
    }
)

# The engines each derived key reaches (one-to-one keys say it in their declaration). A key in neither table
# reaches every engine: an unknown key can only make the app rebuild too much, never reuse a wrong engine.
_UNET_CNET: frozenset[EngineKind] = frozenset({"unet", "cnet"})
DERIVED_KEY_ENGINES: dict[str, frozenset[EngineKind]] = {
    "t_index_list": _UNET_CNET,
    "scheduler": _UNET_CNET,
    "use_denoising_batch": _UNET_CNET,
    "min_batch_size": _UNET_CNET,
    "max_batch_size": _UNET_CNET,
    "lora_dict": frozenset({"unet"}),
    "use_lcm_lora": frozenset({"unet"}),
    "use_cached_attn": frozenset({"unet"}),
    "use_feature_injection": frozenset({"unet"}),
    "max_cache_maxframes": frozenset({"unet"}),
    "controlnets": frozenset({"cnet"}),
    "ipadapter_config": frozenset({"unet", "vae"}),
    "vae_builder_optimization_level": frozenset({"vae"}),
    "fp8_allow_fp16_fallback": _UNET_CNET,
}


def key_engines(key: str) -> frozenset[EngineKind]:
    """The engines whose identity a top-level config key enters."""
    return DERIVED_KEY_ENGINES.get(key) or config_key_engines().get(key) or ALL_ENGINES


# cache_maxframes may be raised at runtime up to this; it is also the cache buffer the engine is built for.
MAX_CACHE_MAXFRAMES = 4


def make_config(params: BakedParams, runtime: RuntimeDefaults) -> dict[str, Any]:
    """The StreamDiffusion config for these parameters (forkni config schema; livepeer reads the same keys and
    ignores the profile keys it does not know)."""
    batch = derive.unet_batch(params)
    config: dict[str, Any] = {
        "model_id": params.model,
        # Dead key in every fork (docs/streamdiffusion-facts.md §6); it records the family so the config loads back
        # exactly.
        "pipeline_type": derive.family(params),
        "engine_dir": derive.engine_dir(params).as_posix(),
        "acceleration": "tensorrt",
        "mode": "img2img",
        "dtype": "float16",
        "device": "cuda",
    }
    for name, spec in SPECS.items():
        if spec.config_key and spec.config_key not in config:
            config[spec.config_key] = getattr(params, name)
    config.update(
        {
            "t_index_list": derive.t_index_list(params),
            "scheduler": derive.scheduler(params),
            "sampler": runtime["sampler"],
            "use_denoising_batch": True,
            # Read by forks whose loader passes them; the newest ignores them and builds 1..4
            # (docs/streamdiffusion-facts.md §0.7). What the page promises: dynamic shapes take any batch 1..4 at
            # runtime, static shapes exactly this one.
            "min_batch_size": batch if params.static_shapes else 1,
            "max_batch_size": batch if params.static_shapes else max(CONFIG_ROUTE_MAX_BATCH, batch),
            # Explicitly off: livepeer's default True would silently add an LCM LoRA the user did not choose.
            "use_lcm_lora": False,
            "lora_dict": derive.lora_dict(params) or None,
            "use_cached_attn": params.use_cached_attn,
            # Feature injection only works with cached attention; its flag is in the UNet engine name either way.
            "use_feature_injection": params.use_cached_attn,
            "max_cache_maxframes": MAX_CACHE_MAXFRAMES,
            # Written, not left to the loader: an absent key and an explicit null name different VAE folders.
            "vae_builder_optimization_level": VAE_OPT_LEVEL,
            # Off: the fork's fallback cannot catch a TensorRT-stage failure and would leave an FP16 engine in an
            # FP8-named folder.
            "fp8_allow_fp16_fallback": False,
            "build_engines_if_missing": True,
            "compile_engines_only": False,
            "prompt": runtime["prompt"],
            "negative_prompt": runtime["negative_prompt"],
            "guidance_scale": runtime["guidance_scale"],
            "delta": runtime["delta"],
            "seed": runtime["seed"],
            "num_inference_steps": derive.NUM_INFERENCE_STEPS,
        }
    )
    if params.use_controlnet:
        config["controlnets"] = [_controlnet_item(slot, runtime) for slot in params.controlnets]
    if params.use_ipadapter:
        # The raw list, not `ipadapters:`: the newest loaders drop num_image_tokens from `ipadapters:` items
        # (a Plus adapter would be built with 4 tokens and fail); every fork passes this list through
        # (docs/streamdiffusion-facts.md §7).
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


def baked_keys() -> list[str]:
    """The top-level keys whose change needs new engines, for the header of every config.yaml."""
    keys = ["model_id", "pipeline_type"]
    keys += [spec.config_key for spec in SPECS.values() if spec.config_key and spec.config_key not in keys]
    keys += [key for key in DERIVED_KEY_ENGINES if key not in keys]
    return [*keys, "mode", "acceleration", "engine_dir"]


def config_header(params: BakedParams, runtime_line: str = "") -> str:
    """The comment block of every config.yaml: what is baked, what is runtime, and where its runtime values are from."""
    lines = [
        "StreamDiffusion config written by gradio_prepare.py for the engines in",
        f"  {derive.engine_dir(params).as_posix()}",
        "Load it with: create_wrapper_from_config(load_config(<this file>))",
        "",
        *_key_lines(),
        *([runtime_line] if runtime_line else []),
    ]
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


@functools.cache
def _key_lines() -> tuple[str, ...]:
    """The header's lists of baked and runtime keys, wrapped once (the preview writes a header per form change)."""
    return (
        "BAKED into the TensorRT engines - changing any of these needs a rebuild:",
        *textwrap.wrap(", ".join(baked_keys()), 110, initial_indent="  ", subsequent_indent="  "),
        "RUNTIME - change any time with update_stream_params():",
        *textwrap.wrap(", ".join(RUNTIME_KEYS), 110, initial_indent="  ", subsequent_indent="  "),
    )


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
    """The config with RUNTIME_DEFAULTS' values (config_write.py carries a person's own)."""
    return dump_yaml(make_config(params, runtime), config_header(params))


def write_config(path: Path, text: str) -> None:
    atomic_write_text(path, text)
