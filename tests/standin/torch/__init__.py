"""Stand-in for the ``torch`` package (stdlib only).

Only what an engine-preparation app touches is here: version strings, the
``torch.cuda`` device queries and streams, the dtype objects the StreamDiffusion
config loader maps strings to, and a small dense tensor (``_tensor.py``) whose
``data_ptr()`` the stand-in TensorRT can run a network on. The simulated machine
comes from STANDIN_* variables (see ``_machine.py``).
"""

from __future__ import annotations

from torch import _machine

# A CUDA wheel whose cuDNN cannot be loaded fails at the very first import, before any torch attribute exists.
_machine.check_cudnn(__file__)
# Real torch takes seconds to import (CUDA libraries); STANDIN_TORCH_IMPORT_SECONDS simulates that.
_machine.import_delay()

from torch import cuda, version  # noqa: E402 - after the load check above, like real torch's library loading
from torch._tensor import Tensor, arange, device, empty, tensor, zeros  # noqa: E402


class dtype:  # lowercase on purpose: same name as torch.dtype
    """A dtype sentinel; compares by identity like the real singletons."""

    def __init__(self, name: str, itemsize: int, is_floating_point: bool = True) -> None:
        self._name = name
        self.itemsize = itemsize
        self.is_floating_point = is_floating_point

    def __repr__(self) -> str:
        return f"torch.{self._name}"

    def __reduce__(self) -> str:
        # Pickle as the module-level singleton so identity survives a round trip.
        return self._name


float16 = dtype("float16", 2)
half = float16
float32 = dtype("float32", 4)
float = float32  # torch really exports a name that shadows the builtin
bfloat16 = dtype("bfloat16", 2)
float64 = dtype("float64", 8)
double = float64
uint8 = dtype("uint8", 1, is_floating_point=False)
int64 = dtype("int64", 8, is_floating_point=False)

__version__: str = _machine.torch_version()


def manual_seed(seed: int) -> None:
    """Seeds the (absent) generators; the stand-in has nothing random to seed."""
    int(seed)


__all__ = [
    "Tensor",
    "__version__",
    "arange",
    "bfloat16",
    "cuda",
    "device",
    "double",
    "dtype",
    "empty",
    "float",
    "float16",
    "float32",
    "float64",
    "half",
    "int64",
    "manual_seed",
    "tensor",
    "uint8",
    "version",
    "zeros",
]
