"""Stand-in for ``export_wrappers.unet_unified_export``: the fork's wrapper imports it for every TensorRT UNet build."""


class UnifiedExportWrapper:
    """A name only."""
