"""Stand-in for ``streamdiffusion.pipeline``: the stream's batch arithmetic, no tensors.

Importing the real module calls ``logging.basicConfig(level=logging.INFO)`` as a
side effect (and the package imports it), which is why the fork's INFO logs show
up on stderr without the caller configuring logging. The stand-in does the
same so log-scraping code sees the same stream.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)


def unet_batch_for(steps: int, frame_buffer_size: int, use_denoising_batch: bool, cfg_type: str) -> int:
    """UNet engine batch for a step count (docs/streamdiffusion-facts.md §2); TCD callers pass use_denoising_batch=False."""
    if not use_denoising_batch:
        return frame_buffer_size
    if cfg_type == "initialize":
        return (steps + 1) * frame_buffer_size
    if cfg_type == "full":
        return 2 * steps * frame_buffer_size
    return steps * frame_buffer_size


class StreamDiffusion:
    """Holds what the wrapper needs from the real stream: batch sizes and prepared state."""

    vae_engines: dict[str, Any]  # set by the wrapper once the VAE engines are loaded

    def __init__(
        self,
        pipe: Any,
        t_index_list: list[int],
        device: str = "cuda",
        torch_dtype: Any = None,
        width: int = 512,
        height: int = 512,
        do_add_noise: bool = True,
        use_denoising_batch: bool = True,
        frame_buffer_size: int = 1,
        cfg_type: str = "self",
        lora_dict: dict[str, float] | None = None,
        normalize_prompt_weights: bool = True,
        normalize_seed_weights: bool = True,
        scheduler: str = "lcm",
        sampler: str = "normal",
        **_ignored: Any,
    ) -> None:
        self.pipe = pipe
        self.device = device
        self.dtype = torch_dtype
        self.width = width
        self.height = height
        self.frame_bff_size = frame_buffer_size
        self.denoising_steps_num = len(t_index_list)
        self.cfg_type = cfg_type
        self.scheduler_type = scheduler
        self.sampler_type = sampler
        self.do_add_noise = do_add_noise
        self.t_list = list(t_index_list)
        if scheduler == "tcd":
            # TCD's stochastic sampling cannot share a denoising batch.
            logger.info("TCD scheduler detected: Disabling denoising batch optimization for compatibility")
            use_denoising_batch = False
        self.use_denoising_batch = use_denoising_batch
        self.batch_size = self.denoising_steps_num * frame_buffer_size if use_denoising_batch else frame_buffer_size
        self.trt_unet_batch_size = unet_batch_for(
            self.denoising_steps_num, frame_buffer_size, use_denoising_batch, cfg_type
        )
        # Filled in by the wrapper: an engine handle, "pytorch" after a fallback, or None (compile-only).
        self.unet: Any = None
        self.controlnet_engines: list[Any] = []
        self.prompt: str = ""
        self.negative_prompt: str = ""
        self.num_inference_steps = 50
        self.guidance_scale = 1.2
        self.delta = 1.0
        self.current_seed = 2
        self.prepared = False
        self.similar_filter_sleep_fraction = 0.025
        self.frames_generated = 0
        self.created_at = time.time()

    def prepare(
        self,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = 50,
        guidance_scale: float = 1.2,
        delta: float = 1.0,
        generator: Any = None,
        seed: int = 2,
    ) -> None:
        # The real prepare indexes scheduler.timesteps with t_list, so an index
        # outside 0..num_inference_steps-1 fails here with torch's IndexError.
        for index in self.t_list:
            if not 0 <= index < num_inference_steps:
                raise IndexError(f"index {index} is out of bounds for dimension 0 with size {num_inference_steps}")
        if self.cfg_type == "none":
            guidance_scale = 1.0
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.delta = delta
        self.current_seed = seed
        self.prepared = True
