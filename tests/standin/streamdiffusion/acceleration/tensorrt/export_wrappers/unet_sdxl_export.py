"""Stand-in for ``export_wrappers.unet_sdxl_export``."""


class SDXLExportWrapper:
    """A name only."""
