"""Stand-in for ``streamdiffusion.config`` (the forkni YAML/JSON config loader).

What matters for product code is *which* keys reach the wrapper and with which
defaults, because that decides the engines that get built. The table below
follows config_keys_forkni.json: notably ``min_batch_size``/``max_batch_size``
are NOT read (so config-built UNets are always 1..4), ``use_feature_injection``
defaults to True and ``vae_builder_optimization_level`` to 3 (unlike the
wrapper), ``ipadapters:`` items lose ``num_image_tokens``, and every value that
resolves to None is dropped so the wrapper default applies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._modes import fork
from .param_schema import DEFAULTS

logger = logging.getLogger(__name__)

# (config key, wrapper parameter, default when the key is absent).
# A callable default is called, so list defaults are never shared between configs.
_PLAIN_KEYS: tuple[tuple[str, str, Any], ...] = (
    ("model_id", "model_id_or_path", "stabilityai/sd-turbo"),
    ("t_index_list", "t_index_list", lambda: list(DEFAULTS["t_index_list"])),
    ("lora_dict", "lora_dict", None),
    ("mode", "mode", "img2img"),
    ("output_type", "output_type", "pil"),
    ("vae_id", "vae_id", None),
    ("device", "device", "cuda"),
    ("frame_buffer_size", "frame_buffer_size", 1),
    ("width", "width", 512),
    ("height", "height", 512),
    ("warmup", "warmup", 10),
    ("acceleration", "acceleration", "tensorrt"),
    ("do_add_noise", "do_add_noise", True),
    ("device_ids", "device_ids", None),
    ("use_lcm_lora", "use_lcm_lora", None),
    ("use_tiny_vae", "use_tiny_vae", True),
    ("enable_similar_image_filter", "enable_similar_image_filter", False),
    ("similar_image_filter_threshold", "similar_image_filter_threshold", 0.98),
    ("similar_image_filter_max_skip_frame", "similar_image_filter_max_skip_frame", 10),
    ("similar_filter_sleep_fraction", "similar_filter_sleep_fraction", 0.025),
    ("use_denoising_batch", "use_denoising_batch", True),
    ("cfg_type", "cfg_type", "self"),
    ("seed", "seed", DEFAULTS["seed"]),
    ("use_safety_checker", "use_safety_checker", DEFAULTS["use_safety_checker"]),
    ("skip_diffusion", "skip_diffusion", False),
    ("engine_dir", "engine_dir", "engines"),
    ("normalize_prompt_weights", "normalize_prompt_weights", DEFAULTS["normalize_prompt_weights"]),
    ("normalize_seed_weights", "normalize_seed_weights", DEFAULTS["normalize_seed_weights"]),
    ("scheduler", "scheduler", "lcm"),
    ("sampler", "sampler", "normal"),
    ("compile_engines_only", "compile_engines_only", False),
    ("static_shapes", "static_shapes", False),
    ("fp8", "fp8", False),
    ("builder_optimization_level", "builder_optimization_level", None),
    ("vae_builder_optimization_level", "vae_builder_optimization_level", 3),
    ("build_engines_if_missing", "build_engines_if_missing", True),
    ("fp8_allow_fp16_fallback", "fp8_allow_fp16_fallback", False),
    ("use_cached_attn", "use_cached_attn", False),
    ("cache_maxframes", "cache_maxframes", DEFAULTS["cache_maxframes"]),
    ("cache_interval", "cache_interval", DEFAULTS["cache_interval"]),
    ("cn_cache_interval", "cn_cache_interval", DEFAULTS["cn_cache_interval"]),
    ("use_feature_injection", "use_feature_injection", True),
    ("fi_strength", "fi_strength", DEFAULTS["fi_strength"]),
    ("fi_threshold", "fi_threshold", DEFAULTS["fi_threshold"]),
    ("max_cache_maxframes", "max_cache_maxframes", 4),
    ("pin_cache_frames", "pin_cache_frames", False),
    ("use_cuda_ipc_output", "use_cuda_ipc_output", False),
    ("cuda_ipc_shm_name", "cuda_ipc_shm_name", None),
    ("cuda_ipc_num_slots", "cuda_ipc_num_slots", 2),
    ("cuda_ipc_cn_processed_shm_name", "cuda_ipc_cn_processed_shm_name", None),
    ("send_controlnet_preview", "controlnet_preview_passthrough", False),
    ("debug_mode", "debug_mode", False),
    ("l2_persist", "l2_persist", None),
)

# The build-profile keys only forkni's loader reads; livepeer's fixed whitelist drops them (profile_facts §4).
PROFILE_KEYS = (
    "static_shapes",
    "fp8",
    "builder_optimization_level",
    "vae_builder_optimization_level",
    "fp8_allow_fp16_fallback",
)

_HOOK_SECTIONS = ("image_preprocessing", "image_postprocessing", "latent_preprocessing", "latent_postprocessing")


def load_config(config_path: str | Path) -> dict[str, Any]:
    path = Path(config_path)
    if not path.exists():
        raise FileNotFoundError(f"load_config: Configuration file not found: {path}")
    suffix = path.suffix.lower()
    # Imported when used, so the stand-in imports in a bare venv (tests/standin_wheels.py) that has no PyYAML.
    import yaml

    with open(path, encoding="utf-8") as handle:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(handle)
        elif suffix == ".json":
            data = json.load(handle)
        else:
            raise ValueError(f"load_config: Unsupported configuration file format: {path.suffix}")
    _validate_config(data)
    return data


def save_config(config: dict[str, Any], config_path: str | Path) -> None:
    path = Path(config_path)
    _validate_config(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"save_config: Unsupported configuration file format: {path.suffix}")
    import yaml

    with open(path, "w", encoding="utf-8") as handle:
        if suffix == ".json":
            json.dump(config, handle, indent=2)
        else:
            # yaml.dump's default sort_keys=True: the real save_config writes keys alphabetically.
            yaml.dump(config, handle, default_flow_style=False, indent=2)


def create_wrapper_from_config(config: dict[str, Any], **overrides: Any) -> Any:
    """Build a wrapper from a config dict; ``prepare()`` runs only for a truthy prompt or prompt_blending."""
    # Looked up on the package at call time, like the real loader.
    from streamdiffusion import StreamDiffusionWrapper

    merged = {**config, **overrides}
    wrapper = StreamDiffusionWrapper(**_extract_wrapper_params(merged))
    prepare = {
        k: v for k, v in _extract_prepare_params(merged).items() if k not in ("prompt_blending", "seed_blending")
    }

    if "prompt_blending" in merged:
        blend = merged["prompt_blending"]
        prepare["prompt"] = blend.get("prompt_list", [])
        prepare["prompt_interpolation_method"] = blend.get("interpolation_method", "slerp")
        if "seed_blending" in merged:
            seeds = merged["seed_blending"]
            prepare["seed_list"] = seeds.get("seed_list", [])
            prepare["seed_interpolation_method"] = seeds.get("interpolation_method", "linear")
        wrapper.prepare(**prepare)
    elif prepare.get("prompt"):
        wrapper.prepare(**prepare)

    if "seed_blending" in merged and "prompt_blending" not in merged:
        seeds = merged["seed_blending"]
        wrapper.update_stream_params(
            seed_list=seeds.get("seed_list", []),
            seed_interpolation_method=seeds.get("interpolation_method", "linear"),
        )
    return wrapper


def _resolve(default: Any | Callable[[], Any]) -> Any:
    return default() if callable(default) else default


def _extract_wrapper_params(config: dict[str, Any]) -> dict[str, Any]:
    keys = _PLAIN_KEYS
    if fork() == "livepeer":  # unknown keys are dropped, ControlNet items lose fp8
        config = {key: value for key, value in config.items() if key not in PROFILE_KEYS}
        if isinstance(config.get("controlnets"), list):
            config["controlnets"] = [
                {k: v for k, v in entry.items() if k != "fp8"} if isinstance(entry, dict) else entry
                for entry in config["controlnets"]
            ]
        keys = tuple(entry for entry in _PLAIN_KEYS if entry[0] not in PROFILE_KEYS)
    params: dict[str, Any] = {param: config.get(key, _resolve(default)) for key, param, default in keys}
    params["dtype"] = _parse_dtype(config.get("dtype", "float16"))

    # A non-empty `controlnets:` list wins over the raw use_controlnet/controlnet_config keys.
    if config.get("controlnets"):
        params["use_controlnet"] = True
        params["controlnet_config"] = _prepare_controlnet_configs(config)
    else:
        params["use_controlnet"] = config.get("use_controlnet", False)
        params["controlnet_config"] = config.get("controlnet_config")

    # Same for IP-Adapters; only the raw ipadapter_config keeps num_image_tokens.
    if config.get("ipadapters"):
        params["use_ipadapter"] = True
        params["ipadapter_config"] = _prepare_ipadapter_configs(config)
    else:
        params["use_ipadapter"] = config.get("use_ipadapter", False)
        params["ipadapter_config"] = config.get("ipadapter_config")

    if "use_feature_injection" not in config:
        logger.info(
            "use_feature_injection not in config; defaulting to True (fi_strength=0.75, fi_threshold=0.98). "
            "Add 'use_feature_injection: false' to your config to control it explicitly."
        )

    params.update(_prepare_pipeline_hook_configs(config))
    # None means "not set": let the wrapper's own default apply.
    return {name: value for name, value in params.items() if value is not None}


def _extract_prepare_params(config: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "prompt": config.get("prompt", ""),
        "negative_prompt": config.get("negative_prompt", DEFAULTS["negative_prompt"]),
        "num_inference_steps": config.get("num_inference_steps", DEFAULTS["num_inference_steps"]),
        "guidance_scale": config.get("guidance_scale", DEFAULTS["guidance_scale"]),
        "delta": config.get("delta", DEFAULTS["delta"]),
    }
    if "prompt_blending" in config:
        blend = config["prompt_blending"]
        params["prompt_blending"] = {
            "prompt_list": blend.get("prompt_list", []),
            "interpolation_method": blend.get("interpolation_method", "slerp"),
            "enable_caching": blend.get("enable_caching", True),
        }
    if "seed_blending" in config:
        seeds = config["seed_blending"]
        params["seed_blending"] = {
            "seed_list": seeds.get("seed_list", []),
            "interpolation_method": seeds.get("interpolation_method", "linear"),
            "enable_caching": seeds.get("enable_caching", True),
        }
    return params


def _prepare_controlnet_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    pipeline_type = config.get("pipeline_type", "sd1.5")  # copied into every item, never used
    global_optlvl = config.get("builder_optimization_level")
    items = []
    for entry in config["controlnets"]:
        item = {
            "model_id": entry["model_id"],
            "preprocessor": entry.get("preprocessor", "passthrough"),
            "conditioning_scale": entry.get("conditioning_scale", 1.0),
            "enabled": entry.get("enabled", True),
            "fp8": entry.get("fp8", False),
            "preprocessor_params": entry.get("preprocessor_params"),
            "conditioning_channels": entry.get("conditioning_channels"),
            "pipeline_type": pipeline_type,
            "control_guidance_start": entry.get("control_guidance_start", 0.0),
            "control_guidance_end": entry.get("control_guidance_end", 1.0),
        }
        # Top-level build knobs are injected so self-building preprocessors match the UNet build.
        extra = dict(item["preprocessor_params"] or {})
        if global_optlvl is not None:
            extra.setdefault("builder_optimization_level", global_optlvl)
        if config.get("fp8", False):
            extra.setdefault("build_fp8", True)
        if extra:
            item["preprocessor_params"] = extra
        items.append(item)
    return items


def _prepare_ipadapter_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    # num_image_tokens and style_image_key are deliberately not copied (the fork drops them).
    return [
        {
            "ipadapter_model_path": entry["ipadapter_model_path"],
            "image_encoder_path": entry["image_encoder_path"],
            "style_image": entry.get("style_image"),
            "scale": entry.get("scale", 1.0),
            "enabled": entry.get("enabled", True),
            "type": entry.get("type", "regular"),
            "insightface_model_name": entry.get("insightface_model_name"),
        }
        for entry in config["ipadapters"]
    ]


def _prepare_pipeline_hook_configs(config: dict[str, Any]) -> dict[str, Any]:
    hooks: dict[str, Any] = {}
    for section in _HOOK_SECTIONS:
        value = config.get(section)
        if value and value.get("enabled", True):
            hooks[f"{section}_config"] = {
                "enabled": value.get("enabled", True),
                "processors": value.get("processors", []),
                "hook_type": section,
            }
    return hooks


def _parse_dtype(dtype_str: Any) -> Any:
    import torch

    if not isinstance(dtype_str, str):
        return dtype_str  # already a dtype object
    known = {"float16": torch.float16, "half": torch.float16, "float32": torch.float32, "float": torch.float32}
    return known.get(dtype_str.lower(), torch.float16)


def _validate_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ValueError("_validate_config: Configuration must be a dictionary")
    if "model_id" not in config:
        raise ValueError("_validate_config: Missing required field: model_id")

    if "controlnets" in config:
        if not isinstance(config["controlnets"], list):
            raise ValueError("_validate_config: 'controlnets' must be a list")
        for i, item in enumerate(config["controlnets"]):
            if not isinstance(item, dict):
                raise ValueError(f"_validate_config: ControlNet {i} must be a dictionary")
            if "model_id" not in item:
                raise ValueError(f"_validate_config: ControlNet {i} missing required 'model_id'")
            if "conditioning_channels" in item:
                channels = item["conditioning_channels"]
                if not isinstance(channels, int) or channels <= 0:
                    raise ValueError(
                        f"_validate_config: ControlNet {i} 'conditioning_channels' must be a positive integer, "
                        f"got {channels}"
                    )

    if "ipadapters" in config:
        if not isinstance(config["ipadapters"], list):
            raise ValueError("_validate_config: 'ipadapters' must be a list")
        for i, item in enumerate(config["ipadapters"]):
            if not isinstance(item, dict):
                raise ValueError(f"_validate_config: IPAdapter {i} must be a dictionary")
            for required in ("ipadapter_model_path", "image_encoder_path"):
                if required not in item:
                    raise ValueError(f"_validate_config: IPAdapter {i} missing required '{required}'")

    if "prompt_blending" in config:
        _validate_blend(config["prompt_blending"], "prompt_blending", "prompt_list", "Prompt", _check_prompt_item)
        method = config["prompt_blending"].get("interpolation_method", "slerp")
        if method not in ("linear", "slerp", "cosine_weighted"):
            raise ValueError("_validate_config: interpolation_method must be 'linear', 'slerp', or 'cosine_weighted'")
    if "seed_blending" in config:
        _validate_blend(config["seed_blending"], "seed_blending", "seed_list", "Seed", _check_seed_item)


def _validate_blend(
    section: Any, name: str, list_key: str, label: str, check_item: Callable[[int, Any, Any], None]
) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"_validate_config: '{name}' must be a dictionary")
    if list_key not in section:
        return
    items = section[list_key]
    if not isinstance(items, list):
        raise ValueError(f"_validate_config: '{list_key}' must be a list")
    for i, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            pair = "[text, weight]" if label == "Prompt" else "[seed, weight]"
            raise ValueError(f"_validate_config: {label} item {i} must be {pair} pair")
        check_item(i, item[0], item[1])
        if not isinstance(item[1], (int, float)) or item[1] < 0:
            raise ValueError(f"_validate_config: {label} weight {i} must be a non-negative number")


def _check_prompt_item(i: int, text: Any, _weight: Any) -> None:
    if not isinstance(text, str):
        raise ValueError(f"_validate_config: Prompt text {i} must be a string")


def _check_seed_item(i: int, seed: Any, _weight: Any) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"_validate_config: Seed value {i} must be a non-negative integer")
