"""Stand-in for ``export_wrappers.unet_ipadapter_export``: its unconditional import of diffusers_ipadapter (L5)."""

from diffusers_ipadapter.ip_adapter.attention_processor import TRTIPAttnProcessor, TRTIPAttnProcessor2_0


class IPAdapterUNetExportWrapper:
    """A name only; it keeps the processors the real wrapper installs."""

    processors = (TRTIPAttnProcessor, TRTIPAttnProcessor2_0)
