"""Stand-in for ``acceleration.tensorrt.export_wrappers``: like the fork, it imports every wrapper, IP-Adapter's too."""

from .unet_ipadapter_export import IPAdapterUNetExportWrapper
from .unet_sdxl_export import SDXLExportWrapper
from .unet_unified_export import UnifiedExportWrapper

__all__ = ["IPAdapterUNetExportWrapper", "SDXLExportWrapper", "UnifiedExportWrapper"]
