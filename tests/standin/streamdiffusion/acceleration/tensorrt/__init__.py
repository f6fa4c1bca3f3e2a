"""Stand-in for ``streamdiffusion.acceleration.tensorrt``.

The real package imports the whole TensorRT/ONNX build stack; this one only
makes ``tensorrt`` a hard requirement, so a machine without it fails the same
way ("No module named 'tensorrt'") when the wrapper reaches the TRT path.
"""

import tensorrt  # noqa: F401 - imported for its failure mode, like the real package
