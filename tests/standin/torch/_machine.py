"""The simulated machine, read from STANDIN_* environment variables.

Tests launch a child Python with these variables set to pretend to be a given
PC (no GPU, a small GPU, an old GPU, ...). Values are read on every call, not
cached at import, so a test that changes os.environ in-process still works.
"""

from __future__ import annotations

import os

GIB = 1024**3


def _get(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def torch_version() -> str:
    return _get("STANDIN_TORCH_VERSION", "2.5.1+cu124")


def cuda_version() -> str | None:
    # "none" mimics a CPU-only wheel, where torch.version.cuda is None.
    value = _get("STANDIN_CUDA_VERSION", "12.4")
    return None if value.lower() in ("none", "cpu") else value


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
