"""Stand-in for ``acceleration.tensorrt.models.models``."""


class BaseModel:
    """The fork's base of every exported model (UNet, VAE, CLIP); a name only here."""
