"""Stand-in for ``diffusers_ipadapter`` (livepeer/Diffusers_IPAdapter, pinned by the forkni fork's setup.py at 405f87da).

The fork's TensorRT path imports ``diffusers_ipadapter.ip_adapter.attention_processor`` for every build, so a build
Python without this package cannot import ``streamdiffusion.acceleration.tensorrt`` at all; modules/ipadapter_module.py
imports ``IPAdapter`` for every IP-Adapter build. Only the names the fork imports; nothing here computes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.1"


class IPAdapter:
    def __init__(self, pipe: Any, ipadapter_ckpt_path: str, image_encoder_path: str, **kwargs: Any) -> None:
        self.pipe = pipe
        self.ipadapter_ckpt_path = ipadapter_ckpt_path
        self.image_encoder_path = image_encoder_path
        self.kwargs = kwargs
