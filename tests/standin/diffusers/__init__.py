"""Stand-in for ``diffusers``: the model and pipeline classes the rehearsal's tiny model is made of.

sdprep/child/rehearse_build.py makes a randomly initialised model of the user's family from configs
(UNet2DConditionModel, AutoencoderKL, AutoencoderTiny, ControlNetModel.from_unet, LCMScheduler) and saves it as a
diffusers folder with StableDiffusionPipeline / StableDiffusionXLPipeline.save_pretrained, which the fork then loads
like any local model. These classes keep their config and write the files the real ones write (config.json or
scheduler_config.json, a weights file, model_index.json); nothing is computed.
"""

import torch._dynamo  # noqa: F401  # as diffusers.utils.torch_utils does: its import looks TensorRT up

from ._models import (
    AutoencoderKL,
    AutoencoderTiny,
    ControlNetModel,
    LCMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

__version__ = "0.35.1"

__all__ = [
    "AutoencoderKL",
    "AutoencoderTiny",
    "ControlNetModel",
    "LCMScheduler",
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "UNet2DConditionModel",
    "__version__",
]
