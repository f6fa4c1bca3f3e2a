"""Stand-in for ``streamdiffusion.acceleration.tensorrt``.

The real package imports the whole TensorRT/ONNX build stack; this one keeps the two imports that fail on real
machines: ``tensorrt`` (a machine without it fails with "No module named 'tensorrt'" when the wrapper reaches the
TRT path) and, through builder -> models -> export_wrappers -> unet_ipadapter_export, ``diffusers_ipadapter``
(docs/streamdiffusion-facts.md §13: every TensorRT build needs it, not only IP-Adapter ones).
"""

import tensorrt  # noqa: F401 - imported for its failure mode, like the real package

from .builder import LoadedEngine  # noqa: F401 - the fork's __init__ imports its builder, which imports the models
