"""The fork's timing cache around each engine build (forkni utilities.py: the path at L1447-1459, the load before
the build at L835-846, the save after the engine is written at L873-882; docs/streamdiffusion-facts.md §15).

One file per TensorRT version at `<parent of the engine's folder>/_timing_cache/timing_trt<version>.cache`, loaded
with ignore_mismatch=False (a cache of another GPU is refused by TensorRT and the build times everything) and
written back through a temp file and os.replace, as the fork's `_atomic_write_bytes` (L455-471) does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("streamdiffusion.acceleration.tensorrt.utilities")


def cache_path(engine_path: Path) -> Path:
    import tensorrt

    return engine_path.parent.parent / "_timing_cache" / f"timing_trt{tensorrt.__version__}.cache"


def load(engine_path: Path) -> Any:
    """A builder configuration with the cache attached, as the fork's Engine.build makes it."""
    import tensorrt

    config = tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.WARNING)).create_builder_config()
    path = cache_path(engine_path)
    data = b""
    if path.exists():
        try:
            data = path.read_bytes()
            logger.info(f"[TRT Build] Loaded timing cache: {path} ({len(data) // 1024} KB)")
        except Exception as exc:
            logger.warning(f"[TRT Build] Could not load timing cache {path}: {exc} — starting fresh")
            data = b""
    config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False)
    return config


def time_layers(config: Any, layers: list[str]) -> int:
    """What the builder's tactic timing does to the cache: each layer not in it is timed and added; the hits."""
    cache = config.get_timing_cache()
    return sum(1 for layer in layers if cache is not None and cache._time(layer))


def save(config: Any, engine_path: Path) -> None:
    path = cache_path(engine_path)
    try:
        updated = config.get_timing_cache()
        if updated is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(path) + ".tmp")
            try:
                tmp.write_bytes(bytes(updated.serialize()))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            logger.info(f"[TRT Build] Saved timing cache: {path}")
    except Exception as exc:
        logger.warning(f"[TRT Build] Could not save timing cache: {exc}")
