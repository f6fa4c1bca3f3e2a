"""Stand-in for ``acceleration.tensorrt.models``: the fork's import chain, nothing more."""

from .controlnet_models import ControlNetTRT
from .models import BaseModel

__all__ = ["BaseModel", "ControlNetTRT"]
