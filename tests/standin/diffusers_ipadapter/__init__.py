"""Stand-in for livepeer/Diffusers_IPAdapter (`diffusers-ipadapter`, the package the fork pins at 405f87da): the fork
imports `IPAdapter` in modules/ipadapter_module.py and the attention processors in the UNet's IP-Adapter export
wrapper, for every IP-Adapter build. Only the names the fork imports; nothing here computes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


class IPAdapter:
    def __init__(self, pipe: Any, ipadapter_ckpt_path: str, image_encoder_path: str, **kwargs: Any) -> None:
        self.pipe = pipe
        self.ipadapter_ckpt_path = ipadapter_ckpt_path
        self.image_encoder_path = image_encoder_path
        self.kwargs = kwargs
