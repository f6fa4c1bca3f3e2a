"""Stand-in for ``acceleration.tensorrt.models.controlnet_models``: its L8 import starts the export wrappers."""

from ..export_wrappers.unet_sdxl_export import SDXLExportWrapper  # noqa: F401 - the fork's import chain
from .models import BaseModel


class ControlNetTRT(BaseModel):
    """A name only."""
