"""Stand-in for the ``tensorrt`` Python package: only ``__version__``.

With STANDIN_NO_TRT=1 the import fails exactly like an uninstalled package, so
product code can be tested on a "machine without TensorRT".
"""

from __future__ import annotations

import os

if os.environ.get("STANDIN_NO_TRT", "") == "1":
    raise ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt")

__version__: str = os.environ.get("STANDIN_TRT_VERSION") or "10.16.1.11"
