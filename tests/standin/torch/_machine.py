"""The simulated machine, read from STANDIN_* environment variables.

Tests launch a child Python with these variables set to pretend to be a given
PC (no GPU, a small GPU, an old GPU, ...). Values are read on every call, not
cached at import, so a test that changes os.environ in-process still works.

A stand-in torch installed from a wheel (tests/standin_wheels.py) carries a
``_baked.py`` beside this file with the version it was built as (e.g.
``2.9.0+cu130`` / ``13.0``, or ``+cpu`` / None); those replace the defaults,
and STANDIN_* variables still override both.
"""

from __future__ import annotations

import os
from typing import Any

GIB = 1024**3

try:  # only present in a wheel built by tests/standin_wheels.py
    from torch import _baked

    _BAKED: dict[str, Any] = dict(_baked.BAKED)
except ImportError:
    _BAKED = {}


def _get(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def torch_version() -> str:
    return _get("STANDIN_TORCH_VERSION", _BAKED.get("version", "2.5.1+cu124"))


def cuda_version() -> str | None:
    # "none" mimics a CPU-only wheel, where torch.version.cuda is None.
    baked = _BAKED.get("cuda", "12.4")  # a baked None is a CPU wheel
    value = _get("STANDIN_CUDA_VERSION", baked if baked is not None else "none")
    return None if value.lower() in ("none", "cpu") else value


def import_delay() -> None:
    """Sleep STANDIN_TORCH_IMPORT_SECONDS (default 0): the seconds a real torch import takes, for a probe or a
    build child as slow to start as on a real machine."""
    try:
        seconds = float(_get("STANDIN_TORCH_IMPORT_SECONDS", "0"))
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        import time

        time.sleep(seconds)


def check_cudnn(torch_init: str) -> None:
    """Fail the import of torch the way a CUDA wheel does when its cuDNN library cannot be loaded.

    STANDIN_CUDNN_BROKEN=1 gives the Linux text (pytorch/pytorch#165812), =windows the Windows one
    (AUTOMATIC1111/stable-diffusion-webui#7198, githubcto/FramePack-ZLUDA#5). A CPU-only wheel has no cuDNN to
    miss, so it imports fine.
    """
    mode = os.environ.get("STANDIN_CUDNN_BROKEN", "")
    if mode in ("", "0") or cuda_version() is None:
        return
    if mode == "windows":
        library = os.path.join(os.path.dirname(torch_init), "lib", "cudnn64_9.dll")
        raise OSError(
            f'[WinError 126] The specified module could not be found. Error loading "{library}" '
            "or one of its dependencies."
        )
    raise ImportError("libcudnn.so.9: cannot open shared object file: No such file or directory")


def cuda_on() -> bool:
    return _get("STANDIN_CUDA", "1") != "0" and cuda_version() is not None


def gpu_count() -> int:
    return max(0, int(_get("STANDIN_GPU_COUNT", "1"))) if cuda_on() else 0


def gpu_name() -> str:
    return _get("STANDIN_GPU_NAME", "NVIDIA GeForce RTX 4090")


def capability() -> tuple[int, int]:
    major, _, minor = _get("STANDIN_CC", "8.9").partition(".")
    return int(major), int(minor or 0)


def vram_total() -> int:
    return int(float(_get("STANDIN_VRAM_GB", "24")) * GIB)


def vram_free() -> int:
    override = os.environ.get("STANDIN_VRAM_FREE_GB")
    if override:
        return min(int(float(override) * GIB), vram_total())
    return int(vram_total() * 0.9)
