"""Stand-in for ``transformers``: only its import-time check of dependency versions, which is what breaks.

A StreamDiffusion venv that later gets a newer ``tokenizers`` (pulled in by another package) cannot import
transformers any more, and so cannot import diffusers or StreamDiffusion: the import stops inside
``transformers/utils/versions.py`` with "tokenizers>=0.21,<0.22 is required for a normal functioning of this
module, but found tokenizers==0.23.2.". The "installed" tokenizers version is STANDIN_TOKENIZERS_VERSION
(default 0.23.2, the broken case, when STANDIN_SD_BROKEN_DEP=transformers; else 0.21.4); set it inside the range and
the import works. The CLIP classes are the few the rehearsal's tiny model is made of (models_clip.py).
"""

from __future__ import annotations

from . import dependency_versions_check  # noqa: F401 - runs the check at import, like the real package
from .models_clip import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

__version__ = "4.55.4"  # a 4.5x release: those pin tokenizers below 0.22

__all__ = ["CLIPTextConfig", "CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer", "__version__"]
