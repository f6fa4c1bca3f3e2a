"""The third-party imports the real package makes at import time, reduced to the one a test asks to break.

STANDIN_SD_BROKEN_DEP=<module>: ``import streamdiffusion`` imports that module first. A module that is not
installed raises ModuleNotFoundError naming it (``controlnet_aux``, ``mediapipe``, ...); the stand-in
``transformers`` (tests/standin/transformers) is installed but fails inside itself with transformers' own
dependency-version message. Either way the traceback ends in the dependency, not in streamdiffusion.
"""

from __future__ import annotations

import importlib
import os

_broken = os.environ.get("STANDIN_SD_BROKEN_DEP", "")
if _broken:
    importlib.import_module(_broken)
