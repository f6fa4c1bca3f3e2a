"""What the stand-in TensorRT knows about the machine: its own build, the GPU, and the memory behind an address.

Read from STANDIN_* variables on every call (like the stand-in torch), so one test process can describe many PCs.
A stand-in installed from a wheel (tests/standin_wheels.py) carries ``_baked.py`` with the CUDA major its
distribution name says (tensorrt-cu12 / tensorrt-cu13); STANDIN_TRT_CUDA_MAJOR overrides it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

try:  # only present in a wheel built by tests/standin_wheels.py
    from tensorrt import _baked

    _BAKED: dict[str, Any] = dict(_baked.BAKED)
except ImportError:
    _BAKED = {}

# Where TensorRT points people when CUDA cannot start (the Linux guide; the real text names it on every OS).
CUDA_GUIDE = "http://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html"
# cudaError_t values TensorRT prints: 35 cudaErrorInsufficientDriver, 100 cudaErrorNoDevice.
CUDA_ERROR_INSUFFICIENT_DRIVER = 35
CUDA_ERROR_NO_DEVICE = 100


def _get(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def trt_version() -> str:
    return _get("STANDIN_TRT_VERSION", str(_BAKED.get("version", "10.16.1.11")))


def cuda_major() -> int:
    """The CUDA major this TensorRT was built for (the cuNN in its distribution's name)."""
    return int(_get("STANDIN_TRT_CUDA_MAJOR", str(_BAKED.get("cuda_major", 12))))


def gpu_present() -> bool:
    # Machine-level, like the driver: a CPU-only torch wheel (STANDIN_CUDA_VERSION=none) does not hide the GPU.
    return _get("STANDIN_CUDA", "1") != "0" and int(_get("STANDIN_GPU_COUNT", "1")) > 0


def driver_cuda_major() -> int | None:
    """The CUDA major the driver serves, as far as the simulation knows it.

    The simulated driver is the one torch's wheel was chosen for: the CUDA major of the torch loaded in this
    process (torch.version.cuda), else STANDIN_CUDA_VERSION, else unknown (no mismatch is simulated). This is how
    the field gets it wrong: torch cu12 matches the driver, a later `pip install tensorrt` pulls tensorrt-cu13.
    """
    torch = sys.modules.get("torch")
    text = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    if text is None:
        text = os.environ.get("STANDIN_CUDA_VERSION") or None
    if text is None or text.lower() in ("none", "cpu"):
        return None
    try:
        return int(str(text).split(".", 1)[0])
    except ValueError:
        return None


def cuda_init_error() -> int | None:
    """The cudaError_t that creating a Builder or Runtime would hit now, or None when CUDA starts."""
    if not gpu_present():
        return CUDA_ERROR_NO_DEVICE
    driver = driver_cuda_major()
    if driver is not None and driver != cuda_major():
        return CUDA_ERROR_INSUFFICIENT_DRIVER
    return None


def gpu_name() -> str:
    return _get("STANDIN_GPU_NAME", "NVIDIA GeForce RTX 4090")  # as the stand-in torch names it


def compute_capability() -> tuple[int, int]:
    major, _, minor = _get("STANDIN_CC", "8.9").partition(".")
    return int(major), int(minor or 0)


def read_floats(address: int, count: int) -> list[float]:
    """The `count` float32 values at a device address (here: host memory a stand-in torch tensor owns)."""
    return list((ctypes.c_float * count).from_address(address))


def write_floats(address: int, values: list[float]) -> None:
    target = (ctypes.c_float * len(values)).from_address(address)
    for index, value in enumerate(values):
        target[index] = value
