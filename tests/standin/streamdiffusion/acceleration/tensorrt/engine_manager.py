"""Engine naming and the build/load dispatch, following the forkni ``EngineManager``.

The naming rules are the part product code must predict, so they follow
docs/streamdiffusion-facts.md §1.4 exactly (including the quirks: stem-of-existing-path, raw
``use_feature_injection``, a TRT/cc part that silently disappears, and the
SHA-1 folder name for the UNet). ``get_engine_path`` keeps the real signature so
code that calls it through ``EngineManager.__new__`` (as the fork's own tests
do) works against the stand-in too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from . import builder

logger = logging.getLogger(__name__)


class EngineType(Enum):
    UNET = "unet"
    VAE_ENCODER = "vae_encoder"
    VAE_DECODER = "vae_decoder"
    CONTROLNET = "controlnet"
    SAFETY_CHECKER = "safety_checker"


FILENAMES: dict[EngineType, str] = {
    EngineType.UNET: "unet.engine",
    EngineType.VAE_ENCODER: "vae_encoder.engine",
    EngineType.VAE_DECODER: "vae_decoder.engine",
    EngineType.CONTROLNET: "cnet.engine",
    EngineType.SAFETY_CHECKER: "safety_checker.engine",
}

# Windows MAX_PATH guard: the fork warns when the longest derived file would not fit.
_LONGEST_SUFFIX = ".opt.onnx"
_PATH_WARN_AT = 250


def trt_cc_suffix() -> str:
    """``--trt<ver>--cc<MM>`` or "" when tensorrt/torch/the GPU query fails (the fork ignores the error)."""
    try:
        import tensorrt
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        return f"--trt{tensorrt.__version__}--cc{major}{minor}"
    except Exception:
        return ""


class EngineManager:
    def __init__(self, engine_dir: str | Path) -> None:
        self.engine_dir = Path(engine_dir)
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        # Same shape as the real _configs so callers that build the manager via
        # __new__ and fill _configs themselves keep working.
        self._configs: dict[EngineType, dict[str, Any]] = {kind: {"filename": name} for kind, name in FILENAMES.items()}
        # canonical key of every path handed out, so the build can record what it baked
        self.cache_keys: dict[Path, str] = {}

    def _lora_signature(self, lora_dict: dict[str, float]) -> str:
        # Only basenames and str() of the weights take part, sorted by key text.
        items = sorted(lora_dict.items(), key=lambda kv: str(kv[0]))
        text = "|".join(f"{Path(str(name)).name}:{weight}" for name, weight in items)
        return f"{len(lora_dict)}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"

    def get_engine_path(
        self,
        engine_type: EngineType,
        model_id_or_path: str,
        max_batch_size: int,
        min_batch_size: int,
        mode: str,
        use_tiny_vae: bool,
        lora_dict: dict[str, float] | None = None,
        ipadapter_scale: float | None = None,
        ipadapter_tokens: int | None = None,
        controlnet_model_id: str | None = None,
        is_faceid: bool | None = None,
        use_cached_attn: bool = False,
        use_feature_injection: bool = False,
        use_controlnet: bool = False,
        fp8: bool = False,
        resolution: tuple[int, int] | None = None,
        builder_optimization_level: int | None = None,
        build_static_batch: bool | None = None,
        static_batch_size: int | None = None,
        pin_cache_frames: bool = False,
        cache_maxframes: int | None = None,
    ) -> Path:
        filename = str(self._configs[engine_type]["filename"])
        optlvl = "" if builder_optimization_level is None else f"--optlvl{builder_optimization_level}"
        res = "" if resolution is None else f"--res-{resolution[0]}x{resolution[1]}"

        if engine_type == EngineType.CONTROLNET:
            if controlnet_model_id is None:
                raise ValueError("get_engine_path: controlnet_model_id required for CONTROLNET engines")
            # No TRT version, mode or batch in this name: a different step count reuses the engine.
            shape = res or "--dyn-256-1024"
            folder = (
                f"controlnet_{controlnet_model_id.replace('/', '_')}"
                f"--min_batch-{min_batch_size}--max_batch-{max_batch_size}{shape}{optlvl}"
                f"{'--fp8' if fp8 else ''}"
            )
            path = self.engine_dir / folder / filename
            self.cache_keys[path] = folder
            return path

        as_path = Path(model_id_or_path)
        # An existing local file/folder contributes only its stem ("kohaku-v2.1" -> "kohaku-v2").
        base_name = as_path.stem if as_path.exists() else model_id_or_path

        key = f"{base_name}--tiny_vae-{use_tiny_vae}--min_batch-{min_batch_size}--max_batch-{max_batch_size}"
        if is_faceid:
            key += "--fid"
        if ipadapter_tokens is not None:
            key += f"--tokens{ipadapter_tokens}"
        if engine_type == EngineType.UNET:
            if lora_dict:
                key += f"--lora-{self._lora_signature(lora_dict)}"
            key += f"--use_cached_attn-{use_cached_attn}--fi-{use_feature_injection}"
            if use_controlnet:
                key += "--controlnet"
            if fp8:
                key += "--fp8v3"
            if build_static_batch is not None:
                key += f"--sbatch{int(build_static_batch)}"
            if build_static_batch and static_batch_size is not None:
                key += f"--batch-{static_batch_size}"
            if pin_cache_frames and cache_maxframes is not None:
                key += f"--cachef{cache_maxframes}"
        key += f"{optlvl}--mode-{mode}{trt_cc_suffix()}{res}"

        if engine_type == EngineType.UNET:
            # The UNet folder is a short hash of the full key (keeps Windows paths short).
            digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
            folder = f"{base_name}{'--fp8v3' if fp8 else ''}--h{digest}{res}"
            logger.debug(f"EngineManager: UNet cache key h{digest} = {key}")
        else:
            folder = key

        path = self.engine_dir / folder / filename
        if len(str(path)) + len(_LONGEST_SUFFIX) >= _PATH_WARN_AT:
            logger.warning(
                f"EngineManager: engine path is {len(str(path)) + len(_LONGEST_SUFFIX)} chars once "
                f".opt.onnx is appended (Windows MAX_PATH=260). Move engine_dir closer to the drive root "
                f"if TensorRT export fails with FileNotFoundError: {path}"
            )
        self.cache_keys[path] = key
        return path

    def compile_and_load_engine(
        self,
        engine_type: EngineType,
        engine_path: Path,
        load_engine: bool = True,
        *,
        batch_size: int = 1,
        min_batch_size: int = 1,
        max_batch_size: int = 1,
        resolution: tuple[int, int] | None = None,
        static_batch: bool = False,
        check: Callable[[], None] | None = None,
        on_stage: Callable[[str, str], None] | None = None,
        extra: dict[str, Any] | None = None,
        fp8: bool = False,
        dynamic_range: str = "static",
    ) -> builder.LoadedEngine | None:
        """Build ``engine_path`` unless it exists (existence is the only "done" marker), then maybe load it."""
        if not engine_path.exists():
            engine_path.parent.mkdir(parents=True, exist_ok=True)
            lo, hi = (batch_size, batch_size) if static_batch else (min_batch_size, max_batch_size)
            builder.build_engine(
                engine_path,
                engine_type.value,
                key=self.cache_keys.get(engine_path, engine_path.parent.name),
                batch={"min": lo, "opt": batch_size, "max": hi},
                resolution=resolution,
                check=check,
                on_stage=on_stage,
                extra=extra or {},
                fp8=fp8,
                dynamic_range=dynamic_range,
            )
        else:
            logger.info("EngineManager: engine_path already exists, skipping compile")
        if not load_engine:
            logger.info("EngineManager: load_engine is False, skipping load engine")
            return None
        return builder.LoadedEngine(engine_path)

    def get_or_load_controlnet_engine(
        self,
        model_id: str,
        pytorch_model: Any = None,
        load_engine: bool = True,
        model_type: str = "sd15",
        batch_size: int = 1,
        min_batch_size: int = 1,
        max_batch_size: int = 4,
        cuda_stream: Any = None,
        use_cuda_graph: bool = False,
        unet: Any = None,
        model_path: str = "",
        conditioning_channels: int = 3,
        opt_image_height: int = 704,
        opt_image_width: int = 704,
        builder_optimization_level: int | None = None,
        fp8: bool = False,
        on_stage: Callable[[str, str], None] | None = None,
    ) -> builder.LoadedEngine | None:
        path = self.get_engine_path(
            EngineType.CONTROLNET,
            model_id_or_path="",
            max_batch_size=max_batch_size,
            min_batch_size=min_batch_size,
            mode="",
            use_tiny_vae=False,
            controlnet_model_id=model_id,
            resolution=(opt_image_height, opt_image_width),
            builder_optimization_level=builder_optimization_level,
            fp8=fp8,
        )
        # ControlNet engines are built with a static batch (the UNet batch) whatever the name says.
        return self.compile_and_load_engine(
            EngineType.CONTROLNET,
            path,
            load_engine=load_engine,
            batch_size=batch_size,
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            resolution=(opt_image_height, opt_image_width),
            static_batch=True,
            on_stage=on_stage,
            extra={"model_id": model_id, "model_type": model_type, "conditioning_channels": conditioning_channels},
            fp8=fp8,
        )
