"""Runtime-parameter defaults, mirroring the fork's ``streamdiffusion.param_schema``.

The forkni config loader falls back to ``DEFAULTS[...]`` for several keys
(seed, cache sizes, feature-injection knobs, prompt defaults), so the values
here must equal the fork's, or the stand-in would name and build engines for a
different configuration than the real library would.
"""

from __future__ import annotations

from typing import Any, Literal

PromptInterpolationMethod = Literal["linear", "slerp", "cosine_weighted"]
SeedInterpolationMethod = Literal["linear", "slerp"]

# Same order as StreamDiffusionWrapper.update_stream_params (25 parameters).
DEFAULTS: dict[str, Any] = {
    "num_inference_steps": 50,
    "guidance_scale": 1.2,
    "delta": 1.0,
    # A tuple so nobody can mutate the shared default; callers copy it with list().
    "t_index_list": (0, 16, 32, 45),
    "seed": 2,
    "prompt_list": None,
    "negative_prompt": "",
    "prompt_interpolation_method": "slerp",
    "normalize_prompt_weights": True,
    "seed_list": None,
    "seed_interpolation_method": "linear",
    "normalize_seed_weights": True,
    "controlnet_config": None,
    "ipadapter_config": None,
    "image_preprocessing_config": None,
    "image_postprocessing_config": None,
    "latent_preprocessing_config": None,
    "latent_postprocessing_config": None,
    "use_safety_checker": False,
    "safety_checker_threshold": 0.5,
    "cache_maxframes": 1,
    "cache_interval": 1,
    "cn_cache_interval": 1,
    "fi_strength": 0.75,
    "fi_threshold": 0.98,
}

PARAM_NAMES: tuple[str, ...] = tuple(DEFAULTS)


def floor_num_inference_steps(num_inference_steps: int, max_t_index: int) -> int:
    """Smallest step count that still contains index ``max_t_index`` (never lowers it)."""
    return max(num_inference_steps, max_t_index + 1)


def rescale_t_index_list(old_t_list: list[int], old_num_steps: int, new_num_steps: int) -> list[int]:
    """Map indices from one step grid to another proportionally, clamped to the new grid."""
    factor = 1.0 if old_num_steps <= 1 else (new_num_steps - 1) / (old_num_steps - 1)
    top = new_num_steps - 1
    return [min(round(index * factor), top) for index in old_t_list]
