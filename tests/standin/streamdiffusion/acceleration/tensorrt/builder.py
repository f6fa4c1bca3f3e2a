"""A pretend TensorRT build: ONNX intermediates, an atomically written engine, stats.

The file-level behaviour copies what product code can observe from the real
builder: ``<engine>.onnx`` / ``<engine>.opt.onnx`` intermediates that are
removed in a ``finally`` (also on failure), the engine written through
``<engine>.tmp`` + ``os.replace`` so an existing ``.engine`` is always complete,
``build_stats.json`` beside the engine and a ``build_log.jsonl`` one folder up.
The engine itself is a small JSON document naming what it was built from.

build_stats.json has the real builder's fields (profile_facts §2): engine_dir,
engine_file, build_start, opt_resolution ("{W}x{H}", width first), dynamic_range
(resolution only: "static" or "384-1024"), batch_size, stages (onnx_export,
onnx_optimize, [fp8_calib_capture, fp8_onnx_quantize], trt_build; each status and
elapsed_s), for FP8 fp8_qdq_layers / mha_fused_kernels / total_engine_layers,
total_elapsed_s, build_end, engine_size_mb (MiB, 1 decimal). A livepeer-like fork
(STANDIN_SD_FORK=livepeer) writes none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _timing_cache
from .models.models import BaseModel  # noqa: F401 - the fork's builder imports its models (and so IP-Adapter's export)

logger = logging.getLogger("streamdiffusion.acceleration.tensorrt.builder")

ENGINE_FORMAT = "standin-trt-engine/1"
# Rough peak VRAM of each build, reported through the stand-in torch.cuda peak counter.
_PEAK_GIB = {"unet": 6.5, "vae_encoder": 1.5, "vae_decoder": 1.8, "controlnet": 3.0, "safety_checker": 0.8}


def _trt_version() -> str | None:
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:
        return None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = Path(str(path) + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def engine_document(
    kind: str, key: str, batch: dict[str, int], resolution: tuple[int, int] | None, extra: dict[str, Any]
) -> str:
    doc = {
        "format": ENGINE_FORMAT,
        "engine": kind,
        "key": key,
        "batch": batch,
        "resolution": list(resolution) if resolution else None,
        "tensorrt": _trt_version(),
        "build_id": uuid.uuid4().hex,
        "built_at": datetime.now(timezone.utc).isoformat(),
        **extra,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def rewrite_engine(engine_path: Path) -> None:
    """Write the engine again with a fresh build id (what a rebuild-at-load looks like on disk)."""
    try:
        doc = json.loads(engine_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {"engine": "unknown", "key": engine_path.parent.name, "batch": {}}
    extra = {
        k: v
        for k, v in doc.items()
        if k not in {"format", "engine", "key", "batch", "resolution", "tensorrt", "build_id", "built_at"}
    }
    res = doc.get("resolution")
    _atomic_write_text(
        engine_path,
        engine_document(
            doc.get("engine", "unknown"), doc.get("key", ""), doc.get("batch", {}), tuple(res) if res else None, extra
        ),
    )


def _write_stats(engine_path: Path, stats: dict[str, Any]) -> None:
    from ..._modes import fork

    if fork() == "livepeer":  # its builder has no stats code at all
        return
    try:
        (engine_path.parent / "build_stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
        with open(engine_path.parent.parent / "build_log.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(stats) + "\n")
    except OSError as exc:  # the real builder only warns here as well
        logger.warning(f"Failed to write build stats: {exc}")


def _fp8_qdq_layers() -> int | None:
    text = (os.environ.get("STANDIN_FP8_QDQ_LAYERS") or "1848").strip().lower()
    return None if text == "none" else int(text)


def build_engine(
    engine_path: Path,
    kind: str,
    *,
    key: str,
    batch: dict[str, int],
    resolution: tuple[int, int] | None,
    check: Callable[[], None] | None = None,
    on_stage: Callable[[str, str], None] | None = None,
    extra: dict[str, Any] | None = None,
    fp8: bool = False,
    dynamic_range: str = "static",
) -> None:
    stage = on_stage or (lambda _stage, _kind: None)
    onnx = Path(str(engine_path) + ".onnx")
    opt_onnx = Path(str(engine_path) + ".opt.onnx")
    started = time.monotonic()
    height, width = resolution or (448, 448)
    stats: dict[str, Any] = {
        "engine_dir": engine_path.parent.name,
        "engine_file": engine_path.name,
        "build_start": datetime.now(timezone.utc).isoformat(),
        "opt_resolution": f"{width}x{height}",
        "dynamic_range": dynamic_range,
        "batch_size": batch.get("opt"),
        "stages": {},
    }

    def timed(name: str, since: float, status: str = "built", **more: Any) -> None:
        stats["stages"][name] = {"status": status, "elapsed_s": round(time.monotonic() - since, 2), **more}

    try:
        since = time.monotonic()
        stage("export", kind)
        onnx.write_text(f"standin onnx export of {kind}\n{key}\n", encoding="utf-8")
        timed("onnx_export", since)
        logger.info(f"[BUILD] ONNX export ({engine_path.name}): {time.monotonic() - since:.1f}s")
        # The real build checks the profile (batch range, resolution) after export.
        if check is not None:
            check()
        since = time.monotonic()
        stage("optimize", kind)
        opt_onnx.write_text(f"standin optimized onnx of {kind}\n", encoding="utf-8")
        timed("onnx_optimize", since)
        logger.info(f"[BUILD] ONNX optimize ({engine_path.name}): {time.monotonic() - since:.1f}s")
        qdq = _fp8_qdq_layers() if fp8 else None
        if fp8:
            timed("fp8_calib_capture", time.monotonic())
            if qdq is None:  # what fp8_allow_fp16_fallback leaves: the stage failed, an FP16 engine follows
                timed("fp8_onnx_quantize", time.monotonic(), "failed", error="ImportError: No module named 'modelopt'")
            else:
                timed("fp8_onnx_quantize", time.monotonic())
        since = time.monotonic()
        stage("build", kind)
        _tensorrt_builder(engine_path.name, fp8)
        timing = _timing_cache.load(engine_path)
        layers = [f"{kind}/{width}x{height}/b{batch.get('opt')}/layer{index}" for index in range(16)]
        hits = _timing_cache.time_layers(timing, layers)
        _record_peak(kind)
        _atomic_write_text(engine_path, engine_document(kind, key, batch, resolution, extra or {}))
        _timing_cache.save(timing, engine_path)
        logger.info(f"[BUILD] timing cache hits ({engine_path.name}): {hits}/{len(layers)}")
        timed("trt_build", since)
        logger.info(f"[BUILD] TRT engine build ({engine_path.name}): {time.monotonic() - since:.1f}s")
        if qdq is not None:
            stats.update(fp8_qdq_layers=qdq, mha_fused_kernels=32 if qdq else 0, total_engine_layers=qdq * 3 + 400)
    finally:
        removed = 0
        for leftover in (onnx, opt_onnx):
            if leftover.exists():
                leftover.unlink()
                removed += 1
        if removed:
            logger.info(f"[BUILD] Cleaned {removed}/{removed} intermediate files")
    stats["total_elapsed_s"] = round(time.monotonic() - started, 2)
    stats["build_end"] = datetime.now(timezone.utc).isoformat()
    stats["engine_size_mb"] = round(engine_path.stat().st_size / (1024 * 1024), 1)
    _write_stats(engine_path, stats)


def _tensorrt_builder(engine_name: str, fp8: bool) -> None:
    """The real engine build runs TensorRT's builder (utilities.py, the fork's raw-API build): where a TensorRT that
    cannot start CUDA (tests/standin/README.md, field failures) fails, after the ONNX export and optimisation worked,
    and where a progress monitor on the builder configuration sees TensorRT's phases (and may cancel the build)."""
    from .utilities import build_plan

    build_plan(engine_name, fp8=fp8)


def _record_peak(kind: str) -> None:
    try:
        import torch

        torch.cuda._record_allocation(int(_PEAK_GIB.get(kind, 1.0) * 1024**3))
    except Exception:
        pass


class LoadedEngine:
    """What "loading" an engine yields: its path, its build document and its batch profile."""

    def __init__(self, engine_path: Path) -> None:
        self.path = Path(engine_path)
        try:
            self.meta: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # Not one of ours (e.g. a real engine copied in): no profile information.
            self.meta = {}

    def batch_bounds(self) -> tuple[int, int] | None:
        batch = self.meta.get("batch") or {}
        if "min" in batch and "max" in batch:
            return int(batch["min"]), int(batch["max"])
        return None

    def __repr__(self) -> str:
        return f"LoadedEngine({str(self.path)!r})"
