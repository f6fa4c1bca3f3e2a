"""The NVIDIA driver's version, read without torch: what decides which CUDA build of torch can run here.

The same places uv's `--torch-backend auto` reads, in the same order, so the two agree: UV_CUDA_DRIVER_VERSION (an
override, also for tests), /sys/module/nvidia/version, /proc/driver/nvidia/version, then `nvidia-smi`. The GPU's
compute capability (whether setup installs FP8's packages) comes from `nvidia-smi` too, before torch exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sdprep.jobs.process import run_command

OVERRIDE_ENV = "UV_CUDA_DRIVER_VERSION"
CAPABILITY_ENV = "SDPREP_GPU_COMPUTE_CAPABILITY"  # "8.9": an override, as UV_CUDA_DRIVER_VERSION is
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def driver_version() -> tuple[int, ...] | None:
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        return parse_version(override)
    for path in ("/sys/module/nvidia/version", "/proc/driver/nvidia/version"):
        text = _read(path)
        found = parse_version(text.split("Kernel Module", 1)[-1]) if text else None
        if found:
            return found
    return parse_version(_smi("driver_version") or "")


def compute_capability(gpu: int = 0) -> tuple[int, int] | None:
    """The GPU's compute capability (8, 9), or None when no NVIDIA GPU answers."""
    found = parse_version(os.environ.get(CAPABILITY_ENV) or _smi("compute_cap", gpu) or "")
    return (found[0], found[1]) if found else None


def _smi(query: str, gpu: int = 0) -> str | None:
    """One value from `nvidia-smi --query-gpu` for one GPU, or None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = run_command([smi, f"--query-gpu={query}", "--format=csv,noheader", "-i", str(gpu)], timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def version_text(version: tuple[int, ...] | None) -> str | None:
    """As NVIDIA writes it: 580.159.04 (the third part has two digits)."""
    if not version:
        return None
    return ".".join(f"{part:02d}" if index == 2 else str(part) for index, part in enumerate(version))
