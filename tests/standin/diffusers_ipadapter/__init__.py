"""Stand-in for ``diffusers_ipadapter`` (livepeer/Diffusers_IPAdapter, pinned by the forkni fork's setup.py).

The fork's TensorRT path imports ``diffusers_ipadapter.ip_adapter.attention_processor`` for every build, so a build
Python without this package cannot import ``streamdiffusion.acceleration.tensorrt`` at all. Only the names that
import needs are here.
"""

__version__ = "0.1.1"
