"""Stand-in for ``streamdiffusion.acceleration.tensorrt.utilities``: the raw-API engine build of forkni's fork.

As in the fork (docs/streamdiffusion-facts.md §14), the FP16 and the FP8 build each create a builder configuration,
pass it through the module-global ``_apply_gpu_profile_to_config(config, …)`` (looked up by name at the call, so a
replacement of that name is what runs) and call ``build_serialized_network``; a build that returns None raises
``RuntimeError`` before any engine is written. livepeer's fork (STANDIN_SD_FORK=livepeer) builds through Polygraphy
and has no such function: its build here passes no hook.
"""

from __future__ import annotations

import logging
from typing import Any

import tensorrt as trt

from ..._modes import fork

logger = logging.getLogger("streamdiffusion.acceleration.tensorrt.utilities")


def _apply_forkni_profile(
    config: Any, gpu_profile: Any, dynamic_shapes: bool = True, max_num_tactics: int = 64
) -> None:
    """Hardware-aware builder settings (the stand-in has none to set); nothing without a profile, like the fork."""
    if gpu_profile is None:
        return


if fork() != "livepeer":
    _apply_gpu_profile_to_config = _apply_forkni_profile


def build_plan(engine_name: str, fp8: bool = False, gpu_profile: Any = None, dynamic_shapes: bool = True) -> bytes:
    """Build one engine's plan as the fork's Engine.build / _build_fp8 do; raises when TensorRT returns None."""
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if fp8 else 0
    network = builder.create_network(flags)
    sample = network.add_input("sample", trt.float32, (1, 4, 8, 8))
    network.mark_output(network.add_activation(sample, trt.ActivationType.RELU).get_output(0))
    config = builder.create_builder_config()
    if fork() != "livepeer":
        _apply_gpu_profile_to_config(config, gpu_profile, dynamic_shapes=dynamic_shapes, max_num_tactics=64)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        precision = "FP8" if fp8 else "FP16"
        raise RuntimeError(f"TRT {precision} engine build failed for {engine_name}. Check TRT logs above for details.")
    return bytes(serialized)
