"""Stand-in for the forkni ``streamdiffusion`` package (public surface only).

Importing it configures root logging at INFO, as the real package does
through ``streamdiffusion.pipeline``.

STANDIN_SD_BROKEN_DEP=<module> makes the import fail inside that dependency,
the way the real package fails when diffusers/transformers/controlnet_aux are
missing or mismatched (tests/standin/README.md).
"""

from . import _dependencies  # noqa: F401 - first, as the real package imports diffusers & co. before its own code
from .config import create_wrapper_from_config, load_config, save_config
from .pipeline import StreamDiffusion
from .preprocessing.processors import list_preprocessors
from .wrapper import StreamDiffusionWrapper

__version__ = "0.4.0"

__all__ = [
    "StreamDiffusion",
    "StreamDiffusionWrapper",
    "__version__",
    "create_wrapper_from_config",
    "list_preprocessors",
    "load_config",
    "save_config",
]
