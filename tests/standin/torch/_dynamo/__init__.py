"""Stand-in for ``torch._dynamo``: only what it does at import that others meet.

torch 2.11's ``torch/_dynamo/trace_rules.py`` looks optional libraries up with ``importlib.util.find_spec`` while it
is imported (diffusers imports it through ``diffusers.utils.torch_utils``), TensorRT among them: a ``tensorrt``
module in ``sys.modules`` without a module spec makes that raise ValueError (seen on an H100).
"""

from __future__ import annotations

import importlib.util

for _name in ("tensorrt",):
    importlib.util.find_spec(_name)
