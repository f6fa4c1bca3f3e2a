"""TensorRT timing caches: where they live. One owner of the layout, for the build (seed and keep), the library
(sizes) and `clean`.

    <engines>/<model>/_timing_cache/timing_trt<version>.cache      the fork's own, one per model folder
                                                                   (docs/streamdiffusion-facts.md, utilities.py)
    <engines>/.timing_cache/<gpu key>/timing_trt<version>.cache    the app's shared one, per GPU model and TensorRT
                                                                   version (a dot folder: never taken for a model)

A cache is only valid for the GPU model and TensorRT version that wrote it (the fork loads it with
ignore_mismatch=False), so the shared one is keyed by both and never given to a build on another GPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_CACHE_DIR = "_timing_cache"  # the fork's name, one level above each engine's folder
SHARED_CACHE_DIR = ".timing_cache"
_CACHE_FILE = re.compile(r"^timing_trt(?P<version>[0-9][0-9A-Za-z.+_-]{0,40})\.cache$")
_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z.+-]+")


@dataclass(frozen=True)
class TimingCache:
    path: Path
    trt_version: str
    gpu_key: str | None  # None: a model folder's own cache (the fork's), whose GPU the file does not say
    size: int


def gpu_key(gpu_name: str, compute_capability: str) -> str:
    """A folder name for one GPU model: its name and compute capability ("NVIDIA GeForce RTX 4090", "8.9" ->
    "NVIDIA-GeForce-RTX-4090-cc89"). Bounded, and safe on every file system."""
    name = _KEY_UNSAFE.sub("-", gpu_name).strip("-.")[:64] or "gpu"
    return f"{name}-cc{compute_capability.replace('.', '')[:4]}"


def cache_file_name(trt_version: str) -> str:
    return f"timing_trt{trt_version}.cache"


def shared_cache(engines_root: Path, key: str, trt_version: str) -> Path:
    return engines_root / SHARED_CACHE_DIR / key / cache_file_name(trt_version)


def model_cache(model_folder: Path, trt_version: str) -> Path:
    return model_folder / MODEL_CACHE_DIR / cache_file_name(trt_version)


def _caches_in(folder: Path, key: str | None) -> list[TimingCache]:
    found = []
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return []
    for entry in entries:
        match = _CACHE_FILE.match(entry.name)
        if not match:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:  # gone since the listing
            continue
        found.append(TimingCache(Path(entry.path), match["version"], key, size))
    return found


def shared_caches(engines_root: Path) -> list[TimingCache]:
    """Every shared cache under the engines folder, by GPU key."""
    shared = engines_root / SHARED_CACHE_DIR
    try:
        with os.scandir(shared) as listing:
            keys = sorted(entry.name for entry in listing if entry.is_dir(follow_symlinks=False))
    except OSError:
        return []
    return [cache for key in keys for cache in _caches_in(shared / key, key)]


def model_caches(model_folder: Path) -> list[TimingCache]:
    """The fork's own caches in one model folder."""
    return _caches_in(model_folder / MODEL_CACHE_DIR, None)
