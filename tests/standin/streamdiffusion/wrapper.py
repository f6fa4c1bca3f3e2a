# ruff: noqa: UP006, UP007, UP035, UP045
# The constructor signature is kept textually identical to the forkni fork's
# (typing.Optional/List/Dict), so code that introspects it sees the same thing.
"""Stand-in ``StreamDiffusionWrapper`` (forkni fork, SDTD_040_beta_release surface).

Construction walks the same observable steps as the real wrapper: validate the
mode, "load" the model, fuse LoRAs, compute the batch sizes and every engine
path with the fork's naming rules, build the missing engines (files on disk),
and, unless ``compile_engines_only``, "load" them so frames can be produced.
Nothing touches a GPU; behaviours for tests are chosen in ``_modes``.
"""

import logging
import os
import random
import re
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Union

import torch

from ._modes import Behaviour, select_mode
from .param_schema import PromptInterpolationMethod, SeedInterpolationMethod
from .pipeline import StreamDiffusion, unet_batch_for

logger = logging.getLogger(__name__)

SAFETY_CHECKER_MODEL_ID = "Freepik/nsfw_image_detector"

# Order in which missing engines are built. "unet-first" is what the test-suite
# brief specifies; "fork" is the real fork's order (VAE decoder, VAE encoder,
# UNet, safety checker, then ControlNets), where a UNet failure leaves the VAE
# engines already on disk. Pick with STANDIN_BUILD_ORDER.
BUILD_ORDERS: Dict[str, Tuple[str, ...]] = {
    "unet-first": ("unet", "vae_encoder", "vae_decoder", "controlnet", "safety_checker"),
    "fork": ("vae_decoder", "vae_encoder", "unet", "safety_checker", "controlnet"),
}

# An HF repo id ("owner/name"): loadable even when no such local path exists.
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _is_oom_error(exc: BaseException) -> bool:
    """The fork's OOM test: typed OOM or a message that looks like one (note: any "cuda error")."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in ("out of memory", "outofmemory", "oom", "cuda error"))


def _loadable(model_id_or_path: str) -> bool:
    return Path(model_id_or_path).exists() or bool(_HF_ID.match(model_id_or_path))


def _detect_family(model_id_or_path: str) -> Tuple[str, bool, bool, float]:
    """A name-based guess standing in for the fork's UNet-config detection."""
    lower = model_id_or_path.lower()
    is_sdxl = "xl" in lower
    if is_sdxl:
        return "SDXL", True, "turbo" in lower, 0.95
    if any(hint in lower for hint in ("sd-turbo", "2-1", "2.1", "sd21", "sd2")):
        return "SD2.1", False, "turbo" in lower, 0.95
    return "SD1.5", False, False, 0.95


class StreamDiffusionWrapper:
    def __init__(
        self,
        model_id_or_path: str,
        t_index_list: List[int],
        min_batch_size: int = 1,
        max_batch_size: int = 4,
        lora_dict: Optional[Dict[str, float]] = None,
        mode: Literal["img2img", "txt2img"] = "img2img",
        output_type: Literal["pil", "pt", "np", "latent"] = "pil",
        vae_id: Optional[str] = None,
        device: Literal["cpu", "cuda"] = "cuda",
        dtype: torch.dtype = torch.float16,
        frame_buffer_size: int = 1,
        width: int = 512,
        height: int = 512,
        warmup: int = 10,
        acceleration: Literal["none", "xformers", "tensorrt"] = "tensorrt",
        do_add_noise: bool = True,
        device_ids: Optional[List[int]] = None,
        use_lcm_lora: Optional[bool] = None,
        use_tiny_vae: bool = True,
        enable_similar_image_filter: bool = False,
        similar_image_filter_threshold: float = 0.98,
        similar_image_filter_max_skip_frame: int = 10,
        similar_filter_sleep_fraction: float = 0.025,
        use_denoising_batch: bool = True,
        cfg_type: Literal["none", "full", "self", "initialize"] = "self",
        seed: int = 2,
        use_safety_checker: bool = False,
        skip_diffusion: bool = False,
        engine_dir: Optional[Union[str, Path]] = "engines",
        compile_engines_only: bool = False,
        build_engines_if_missing: bool = True,
        normalize_prompt_weights: bool = True,
        normalize_seed_weights: bool = True,
        scheduler: Literal["lcm", "tcd"] = "lcm",
        sampler: Literal["simple", "sgm_uniform", "normal", "ddim", "beta", "karras"] = "normal",
        use_controlnet: bool = False,
        controlnet_config: Optional[Union[Dict[str, Any], List[Dict[str, Any]]]] = None,
        use_ipadapter: bool = False,
        ipadapter_config: Optional[Union[Dict[str, Any], List[Dict[str, Any]]]] = None,
        image_preprocessing_config: Optional[Dict[str, Any]] = None,
        image_postprocessing_config: Optional[Dict[str, Any]] = None,
        latent_preprocessing_config: Optional[Dict[str, Any]] = None,
        latent_postprocessing_config: Optional[Dict[str, Any]] = None,
        safety_checker_fallback_type: Literal["blank", "previous"] = "previous",
        safety_checker_threshold: float = 0.5,
        use_cached_attn: bool = False,
        cache_maxframes: int = 1,
        cache_interval: int = 1,
        min_cache_maxframes: int = 1,
        max_cache_maxframes: int = 4,
        pin_cache_frames: bool = False,
        cn_cache_interval: int = 1,
        use_feature_injection: bool = False,
        fi_strength: float = 0.75,
        fi_threshold: float = 0.98,
        fp8: bool = False,
        static_shapes: bool = False,
        fp8_allow_fp16_fallback: bool = False,
        builder_optimization_level: Optional[int] = None,
        use_cuda_ipc_output: bool = False,
        cuda_ipc_shm_name: Optional[str] = None,
        cuda_ipc_num_slots: int = 2,
        cuda_ipc_cn_processed_shm_name: Optional[str] = None,
        controlnet_preview_passthrough: bool = False,
        debug_mode: bool = False,
        vae_builder_optimization_level: Optional[int] = None,
        l2_persist: Optional[bool] = None,
    ) -> None:
        if compile_engines_only:
            logger.info("compile_engines_only is True, will only compile engines and not load the model")

        self.use_lcm_lora = use_lcm_lora
        self.sd_turbo = "turbo" in model_id_or_path
        self.use_controlnet = use_controlnet
        self.use_ipadapter = use_ipadapter
        self.ipadapter_config = ipadapter_config
        self.image_preprocessing_config = image_preprocessing_config
        self.image_postprocessing_config = image_postprocessing_config
        self.latent_preprocessing_config = latent_preprocessing_config
        self.latent_postprocessing_config = latent_postprocessing_config

        # Same constructor-time checks (and exception types) as the fork.
        if mode == "txt2img":
            if cfg_type != "none":
                raise ValueError(f"txt2img mode accepts only cfg_type = 'none', but got {cfg_type}")
            if use_denoising_batch and frame_buffer_size > 1 and not self.sd_turbo:
                raise ValueError("txt2img mode cannot use denoising batch with frame_buffer_size > 1.")
        if mode == "img2img" and not use_denoising_batch:
            raise NotImplementedError("img2img mode must use denoising batch for now.")

        self.model_id_or_path = model_id_or_path
        self.device = device
        self.dtype = dtype
        self.width = width
        self.height = height
        self.mode = mode
        self.output_type = output_type
        self.frame_buffer_size = frame_buffer_size
        # The wrapper's own batch ignores the TCD override (the VAE engines use it in txt2img).
        self.batch_size = len(t_index_list) * frame_buffer_size if use_denoising_batch else frame_buffer_size
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.use_denoising_batch = use_denoising_batch
        self.use_safety_checker = use_safety_checker and acceleration == "tensorrt"
        self.safety_checker_fallback_type = safety_checker_fallback_type
        self.safety_checker_threshold = safety_checker_threshold
        self.fp8 = fp8
        self.static_shapes = static_shapes
        self.fp8_allow_fp16_fallback = fp8_allow_fp16_fallback
        self.builder_optimization_level = builder_optimization_level
        self.vae_builder_optimization_level = vae_builder_optimization_level
        self.l2_persist = l2_persist
        self.use_cuda_ipc_output = use_cuda_ipc_output
        self.debug_mode = debug_mode
        self._behaviour = Behaviour(select_mode(model_id_or_path))
        # kind -> engine path, for anyone (tests) who wants to see what was planned.
        self._engine_paths: Dict[str, Path] = {}
        self._stream_params: Dict[str, Any] = {}

        self.stream: StreamDiffusion = self._load_model(
            model_id_or_path=model_id_or_path,
            lora_dict=lora_dict,
            t_index_list=t_index_list,
            acceleration=acceleration,
            do_add_noise=do_add_noise,
            use_tiny_vae=use_tiny_vae,
            cfg_type=cfg_type,
            engine_dir=engine_dir,
            build_engines_if_missing=build_engines_if_missing,
            scheduler=scheduler,
            sampler=sampler,
            controlnet_config=controlnet_config,
            compile_engines_only=compile_engines_only,
            use_cached_attn=use_cached_attn,
            cache_maxframes=cache_maxframes,
            max_cache_maxframes=max_cache_maxframes,
            pin_cache_frames=pin_cache_frames,
            use_feature_injection=use_feature_injection,
        )
        self.skip_diffusion = skip_diffusion
        if compile_engines_only:
            return

        if seed < 0:
            seed = random.randint(0, 999_999)
        self.stream.prepare(
            "",
            "",
            num_inference_steps=50,
            guidance_scale=1.1 if self.stream.cfg_type in ("full", "self", "initialize") else 1.0,
            seed=seed,
        )
        self._acceleration = acceleration
        self._engine_dir = engine_dir
        self.stream.similar_filter_sleep_fraction = similar_filter_sleep_fraction

    # ------------------------------------------------------------------ loading
    def _load_pipeline(self, model_id_or_path: str) -> None:
        """Log the fork's loader attempts; a non-existent local path fails every method."""
        if any(hint in model_id_or_path.lower() for hint in ("sdxl", "xl", "1024")):
            logger.info(f"_load_model: Path suggests SDXL model: {model_id_or_path}")
        methods = ["AutoPipeline from_pretrained", "SD from_single_file", "SDXL from_single_file"]
        if model_id_or_path.endswith(".safetensors") and "xl" in model_id_or_path.lower():
            methods = ["SDXL from_single_file", "AutoPipeline from_pretrained", "SD from_single_file"]
        if _loadable(model_id_or_path):
            logger.info(f"_load_model: Attempting to load with {methods[0]}...")
            logger.info(f"_load_model: Successfully loaded using {methods[0]}")
        else:
            error: Exception = OSError("no error")
            for method in methods:
                logger.info(f"_load_model: Attempting to load with {method}...")
                error = OSError(
                    f"Incorrect path_or_model_id: '{model_id_or_path}'. Please provide either the path to a "
                    "local folder or the repo_id of a model on the Hub."
                )
                logger.warning(f"_load_model: {method} failed: {error}")
            message = f"_load_model: All loading methods failed for model '{model_id_or_path}'. Last error: {error}"
            logger.error(message)
            raise RuntimeError(message)
        if self.device == "cuda":
            # The fork moves the text encoder to the GPU here; without one, torch raises.
            torch.cuda.current_device()
            # Text encoder(s) now sit in VRAM: make max_memory_allocated() show it.
            record = getattr(torch.cuda, "_record_allocation", None)
            if record is not None:
                record(int((2.5 if "xl" in model_id_or_path.lower() else 1.2) * 1024**3))
        logger.info("Model loading succeeded")

    def _fuse_loras(self, lora_dict: Optional[Dict[str, float]]) -> Optional[Dict[str, float]]:
        """Only LoRAs that load and have a non-zero scale end up in the UNet (and its cache key)."""
        if lora_dict is None:
            return None
        fused: Dict[str, float] = {}
        adapters: List[Tuple[str, float]] = []
        for index, (name, scale) in enumerate(lora_dict.items()):
            adapter = f"custom_lora_{index}"
            logger.info(f"_load_model: Loading LoRA '{name}' with scale {scale}")
            if scale == 0:
                logger.info(
                    f"_load_model: Skipping zero-scale LoRA '{name}' — no effect on weights; "
                    "engine will match baseline cache"
                )
                continue
            if not _loadable(name):
                logger.error(f"Failed to load LoRA {name}: file or repository not found")
                continue
            logger.info(f"Successfully loaded LoRA adapter: {adapter}")
            adapters.append((adapter, scale))
            fused[name] = scale
        for adapter, scale in adapters:
            logger.info(f"Merging individual LoRA: {adapter} with scale {scale}")
        if adapters:
            logger.info("Successfully merged LoRAs individually")
        return fused or None

    def _load_model(
        self,
        model_id_or_path: str,
        lora_dict: Optional[Dict[str, float]],
        t_index_list: List[int],
        acceleration: str,
        do_add_noise: bool,
        use_tiny_vae: bool,
        cfg_type: str,
        engine_dir: Optional[Union[str, Path]],
        build_engines_if_missing: bool,
        scheduler: str,
        sampler: str,
        controlnet_config: Any,
        compile_engines_only: bool,
        use_cached_attn: bool,
        cache_maxframes: int,
        max_cache_maxframes: int,
        pin_cache_frames: bool,
        use_feature_injection: bool,
    ) -> StreamDiffusion:
        if pin_cache_frames:
            # Pinning bakes the ceiling, so the key carries max_cache_maxframes.
            cache_maxframes = max_cache_maxframes
            logger.info(
                f"_load_model: pin_cache_frames=True — cache frames pinned at ceiling "
                f"max_cache_maxframes={max_cache_maxframes}"
            )
        self._load_pipeline(model_id_or_path)
        self._behaviour.after_model_load()

        model_type, is_sdxl, _is_turbo, confidence = _detect_family(model_id_or_path)
        self._detected_model_type = model_type
        self._is_sdxl = is_sdxl
        logger.info(f"_load_model: Detected model type: {model_type} (confidence: {confidence:.2f})")

        if self.use_lcm_lora and not self.sd_turbo:
            # Deprecated switch: adds the family's LCM LoRA, which then joins the engine key.
            lora_dict = dict(lora_dict or {})
            lcm = "latent-consistency/lcm-lora-sdxl" if is_sdxl else "latent-consistency/lcm-lora-sdv1-5"
            if lcm not in lora_dict:
                lora_dict[lcm] = 1.0
                logger.info(f"Added {lcm} with scale 1.0 to lora_dict")

        stream = StreamDiffusion(
            None,
            t_index_list,
            device=self.device,
            torch_dtype=self.dtype,
            width=self.width,
            height=self.height,
            do_add_noise=do_add_noise,
            use_denoising_batch=self.use_denoising_batch,
            frame_buffer_size=self.frame_buffer_size,
            cfg_type=cfg_type,
            scheduler=scheduler,
            sampler=sampler,
        )
        fused_loras = self._fuse_loras(lora_dict)

        try:
            if acceleration == "tensorrt":
                self._accelerate_with_tensorrt(
                    stream,
                    model_id_or_path=model_id_or_path,
                    lora_dict=fused_loras,
                    use_tiny_vae=use_tiny_vae,
                    engine_dir=engine_dir,
                    build_engines_if_missing=build_engines_if_missing,
                    controlnet_config=controlnet_config,
                    load_engine=not compile_engines_only,
                    use_cached_attn=use_cached_attn,
                    use_feature_injection=use_feature_injection,
                    pin_cache_frames=pin_cache_frames,
                    cache_maxframes=cache_maxframes,
                )
            elif not compile_engines_only:
                stream.unet = "pytorch"
        except Exception as exc:
            traceback.print_exc()
            raise Exception(f"Acceleration has failed: {exc}") from exc
        return stream

    def _accelerate_with_tensorrt(
        self,
        stream: StreamDiffusion,
        *,
        model_id_or_path: str,
        lora_dict: Optional[Dict[str, float]],
        use_tiny_vae: bool,
        engine_dir: Optional[Union[str, Path]],
        build_engines_if_missing: bool,
        controlnet_config: Any,
        load_engine: bool,
        use_cached_attn: bool,
        use_feature_injection: bool,
        pin_cache_frames: bool,
        cache_maxframes: int,
    ) -> None:
        # Importing the TRT layer is what fails on a machine without TensorRT.
        from .acceleration.tensorrt import builder
        from .acceleration.tensorrt.engine_manager import EngineManager, EngineType

        manager = EngineManager(str(engine_dir) if engine_dir else "engines")
        on_stage = self._behaviour.on_stage
        model_type = self._detected_model_type
        logger.info(f"Building TensorRT engines for {model_type}")
        use_controlnet_trt = bool(self.use_controlnet)
        if use_controlnet_trt:
            logger.info(f"   Including ControlNet support for {model_type}")
        else:
            logger.info("ControlNet not enabled, building engines without ControlNet support")

        # IP-Adapter identity: only the first entry counts; "type" is indexed, not .get()
        # (a raw ipadapter_config without "type" fails here in the fork too).
        tokens: Optional[int] = None
        is_faceid: Optional[bool] = None
        if self.use_ipadapter and self.ipadapter_config:
            cfg0 = self.ipadapter_config[0] if isinstance(self.ipadapter_config, list) else self.ipadapter_config
            tokens = cfg0.get("num_image_tokens", 4)
            is_faceid = cfg0["type"] == "faceid"
            # As the fork's UNet IP-Adapter export wrapper does for every IP-Adapter build.
            from diffusers_ipadapter.ip_adapter.attention_processor import TRTIPAttnProcessor  # noqa: F401

        unet_batch = stream.trt_unet_batch_size
        resolution = (self.height, self.width)
        unet_path = manager.get_engine_path(
            EngineType.UNET,
            model_id_or_path=model_id_or_path,
            max_batch_size=self.max_batch_size,
            min_batch_size=self.min_batch_size,
            mode=self.mode,
            use_tiny_vae=use_tiny_vae,
            lora_dict=lora_dict,
            ipadapter_tokens=tokens,
            is_faceid=is_faceid,
            use_cached_attn=use_cached_attn,
            use_feature_injection=use_feature_injection,
            use_controlnet=use_controlnet_trt,
            fp8=self.fp8,
            resolution=resolution,
            builder_optimization_level=self.builder_optimization_level,
            build_static_batch=self.static_shapes,
            static_batch_size=unet_batch if self.static_shapes else None,
            pin_cache_frames=pin_cache_frames,
            cache_maxframes=cache_maxframes if pin_cache_frames else None,
        )
        vae_batch = self.batch_size if self.mode == "txt2img" else stream.frame_bff_size
        vae_optlvl = (
            self.vae_builder_optimization_level
            if self.vae_builder_optimization_level is not None
            else self.builder_optimization_level
        )
        vae_paths = {
            kind: manager.get_engine_path(
                kind,
                model_id_or_path=model_id_or_path,
                max_batch_size=vae_batch,
                min_batch_size=vae_batch,
                mode=self.mode,
                use_tiny_vae=use_tiny_vae,
                lora_dict=lora_dict,
                ipadapter_tokens=tokens,
                is_faceid=is_faceid,
                resolution=resolution,
                builder_optimization_level=vae_optlvl,
            )
            for kind in (EngineType.VAE_ENCODER, EngineType.VAE_DECODER)
        }
        safety_path = manager.get_engine_path(
            EngineType.SAFETY_CHECKER,
            model_id_or_path=SAFETY_CHECKER_MODEL_ID,
            max_batch_size=vae_batch,
            min_batch_size=vae_batch,
            mode=self.mode,
            use_tiny_vae=use_tiny_vae,
        )
        self._engine_paths = {
            "unet": unet_path,
            "vae_encoder": vae_paths[EngineType.VAE_ENCODER],
            "vae_decoder": vae_paths[EngineType.VAE_DECODER],
            "safety_checker": safety_path,
        }

        # Only UNet + VAE count as "required" (ControlNet/safety are checked separately).
        missing = [
            f"{label}: {path}"
            for label, path in (
                ("UNet engine", unet_path),
                ("VAE decoder engine", vae_paths[EngineType.VAE_DECODER]),
                ("VAE encoder engine", vae_paths[EngineType.VAE_ENCODER]),
            )
            if not path.exists()
        ]
        if missing:
            if not build_engines_if_missing:
                lines = ["Required TensorRT engines are missing and build_engines_if_missing=False:"]
                lines += [f"  - {item}" for item in missing]
                lines.append("\nTo build engines, set build_engines_if_missing=True or run the build script manually.")
                raise RuntimeError("\n".join(lines))
            logger.info("Missing TensorRT engines, building them...")
            for item in missing:
                logger.info(f"  - {item}")

        def unet_check() -> None:
            # What the fork's check_dims asserts while building the UNet profile.
            lo, hi = (unet_batch, unet_batch) if self.static_shapes else (self.min_batch_size, self.max_batch_size)
            if not lo <= unet_batch <= hi:
                raise AssertionError(
                    f"UNet batch {unet_batch} outside engine profile [{lo}, {hi}]: "
                    f"Batch size {unet_batch} not in range [{lo}, {hi}]"
                )
            _check_resolution(self.height, self.width, 256, 1024, "UNet")

        def vae_check() -> None:
            if not self.static_shapes:
                _check_resolution(self.height, self.width, 384, 1024, "VAE (dynamic)")

        def build_unet() -> None:
            logger.info(f"compile_and_load_engine: Compiling UNet engine for image size: {self.width}x{self.height}")
            try:
                engine = manager.compile_and_load_engine(
                    EngineType.UNET,
                    unet_path,
                    load_engine=load_engine,
                    batch_size=unet_batch,
                    min_batch_size=self.min_batch_size,
                    max_batch_size=self.max_batch_size,
                    resolution=resolution,
                    static_batch=self.static_shapes,
                    check=unet_check,
                    on_stage=on_stage,
                    extra={"model_id": model_id_or_path, "model_type": model_type},
                    fp8=self.fp8,
                )
                if engine is None:
                    return
                if self._behaviour.mode == "rebuild_on_load":
                    builder.rewrite_engine(unet_path)
                    engine = builder.LoadedEngine(unet_path)
                logger.info("TensorRT UNet engine loaded successfully")
                bounds = engine.batch_bounds()
                forced = self._behaviour.mode == "loadfail"
                if forced or (bounds is not None and not bounds[0] <= unet_batch <= bounds[1]):
                    lo, hi = bounds or (self.min_batch_size, self.max_batch_size)
                    span = f"{lo}-{hi}" if hi != lo else f"{lo} only"
                    raise RuntimeError(
                        f"UNet engine batch mismatch: engine supports batch {span}, config needs {unet_batch} "
                        "(steps x frame_buffer x cfg factor). Change the step count to match the engine, "
                        f"or delete the engine dir to rebuild for the new batch: {unet_path.parent}"
                    )
                stream.unet = engine
            except Exception as exc:
                if not _is_oom_error(exc):
                    logger.error(f"TensorRT UNet engine loading failed (non-OOM): {exc}")
                    raise
                # The fork swallows a UNet OOM and carries on with PyTorch: no engine, no error.
                logger.error(f"TensorRT UNet engine OOM: {exc}")
                logger.info("Falling back to PyTorch UNet (no TensorRT acceleration)")
                logger.info("This will be slower but should work with less memory")
                logger.info("Loading PyTorch UNet as fallback...")
                logger.info("PyTorch UNet fallback successful")
                stream.unet = "pytorch"

        def build_vae(kind: EngineType) -> Callable[[], None]:
            def run() -> None:
                manager.compile_and_load_engine(
                    kind,
                    vae_paths[kind],
                    load_engine=False,  # the fork builds VAEs without loading, then loads both later
                    batch_size=vae_batch,
                    min_batch_size=vae_batch,
                    max_batch_size=vae_batch,
                    resolution=resolution,
                    static_batch=True,
                    check=vae_check,
                    on_stage=on_stage,
                    extra={"model_id": model_id_or_path},
                    # The resolution range of a dynamic-shape VAE build (the UNet's is always static).
                    dynamic_range="static" if self.static_shapes else "384-1024",
                )

            return run

        def build_safety_checker() -> None:
            if self.use_safety_checker and not safety_path.exists():
                manager.compile_and_load_engine(
                    EngineType.SAFETY_CHECKER,
                    safety_path,
                    load_engine=False,
                    batch_size=vae_batch,
                    min_batch_size=vae_batch,
                    max_batch_size=vae_batch,
                    static_batch=True,
                    on_stage=on_stage,
                    extra={"model_id": SAFETY_CHECKER_MODEL_ID},
                    dynamic_range="256-1024",  # what the fork's stats say, although its profile is a fixed 448
                )

        def build_controlnets() -> None:
            if not self.use_controlnet:
                return
            if isinstance(controlnet_config, list):
                configs = controlnet_config
            elif isinstance(controlnet_config, dict):
                configs = [controlnet_config]
            else:
                configs = []
            engines = []
            for cfg in configs:
                if not cfg or not cfg.get("model_id"):
                    continue
                try:
                    engine = manager.get_or_load_controlnet_engine(
                        model_id=cfg["model_id"],
                        load_engine=load_engine,
                        model_type=model_type,
                        batch_size=unet_batch,
                        max_batch_size=self.max_batch_size,
                        min_batch_size=self.min_batch_size,
                        conditioning_channels=cfg.get("conditioning_channels", 3),
                        opt_image_height=self.height,
                        opt_image_width=self.width,
                        builder_optimization_level=self.builder_optimization_level,
                        fp8=self.fp8 or bool(cfg.get("fp8", False)),
                        on_stage=on_stage,
                    )
                    self._engine_paths[f"controlnet:{cfg['model_id']}"] = manager.get_engine_path(
                        EngineType.CONTROLNET,
                        model_id_or_path="",
                        max_batch_size=self.max_batch_size,
                        min_batch_size=self.min_batch_size,
                        mode="",
                        use_tiny_vae=False,
                        controlnet_model_id=cfg["model_id"],
                        resolution=resolution,
                        builder_optimization_level=self.builder_optimization_level,
                        fp8=self.fp8 or bool(cfg.get("fp8", False)),
                    )
                    if engine is not None:
                        engines.append(engine)
                except Exception as exc:
                    # ControlNet engine failures never stop the fork: PyTorch ControlNet is used.
                    logger.warning(f"Failed to compile/load ControlNet engine for {cfg.get('model_id')}: {exc}")
            if engines:
                stream.controlnet_engines = engines
                logger.info(f"Compiled/loaded {len(engines)} ControlNet TensorRT engine(s)")

        steps: Dict[str, Callable[[], None]] = {
            "unet": build_unet,
            "vae_encoder": build_vae(EngineType.VAE_ENCODER),
            "vae_decoder": build_vae(EngineType.VAE_DECODER),
            "controlnet": build_controlnets,
            "safety_checker": build_safety_checker,
        }
        order = BUILD_ORDERS.get(_build_order(), BUILD_ORDERS["unet-first"])
        for name in order:
            steps[name]()

        if load_engine:
            stream.vae_engines = {k.value: builder.LoadedEngine(p) for k, p in vae_paths.items()}
            logger.info("TensorRT VAE engines loaded successfully")
            if self.use_safety_checker or safety_path.exists():
                logger.info("Safety Checker engine loaded successfully")

    # ------------------------------------------------------------------ runtime
    def prepare(
        self,
        prompt: Union[str, List[Tuple[str, float]]],
        negative_prompt: str = "",
        num_inference_steps: int = 50,
        guidance_scale: float = 1.2,
        delta: float = 1.0,
        prompt_interpolation_method: Literal["linear", "slerp", "cosine_weighted"] = "slerp",
        seed_list: Optional[List[Tuple[int, float]]] = None,
        seed_interpolation_method: Literal["linear", "slerp"] = "linear",
    ) -> None:
        if isinstance(prompt, str):
            first = prompt
        elif isinstance(prompt, list):
            if not prompt:
                raise ValueError("prepare: prompt list cannot be empty")
            first = prompt[0][0]
        else:
            raise TypeError(f"prepare: prompt must be str or List[Tuple[str, float]], got {type(prompt)}")
        self.stream.prepare(
            first,
            negative_prompt,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            delta=delta,
            seed=self.stream.current_seed,
        )
        if isinstance(prompt, list):
            self.update_stream_params(
                prompt_list=prompt,
                negative_prompt=negative_prompt,
                prompt_interpolation_method=prompt_interpolation_method,
                seed_list=seed_list,
                seed_interpolation_method=seed_interpolation_method,
            )
        elif seed_list is not None:
            self.update_stream_params(seed_list=seed_list, seed_interpolation_method=seed_interpolation_method)

    def update_prompt(
        self,
        prompt: Union[str, List[Tuple[str, float]]],
        negative_prompt: str = "",
        prompt_interpolation_method: Literal["linear", "slerp", "cosine_weighted"] = "slerp",
        clear_blending: bool = True,
        warn_about_conflicts: bool = True,
    ) -> None:
        if isinstance(prompt, str):
            if clear_blending:
                self._stream_params.pop("prompt_list", None)
            self.stream.prompt = prompt
        elif isinstance(prompt, list):
            if not prompt:
                raise ValueError("update_prompt: prompt list cannot be empty")
            self.update_stream_params(
                prompt_list=prompt,
                negative_prompt=negative_prompt,
                prompt_interpolation_method=prompt_interpolation_method,
            )
        else:
            raise TypeError(f"update_prompt: prompt must be str or List[Tuple[str, float]], got {type(prompt)}")

    def update_stream_params(
        self,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        delta: Optional[float] = None,
        t_index_list: Optional[List[int]] = None,
        seed: Optional[int] = None,
        prompt_list: Optional[List[Tuple[str, float]]] = None,
        negative_prompt: Optional[str] = None,
        prompt_interpolation_method: PromptInterpolationMethod = "slerp",
        normalize_prompt_weights: Optional[bool] = None,
        seed_list: Optional[List[Tuple[int, float]]] = None,
        seed_interpolation_method: SeedInterpolationMethod = "linear",
        normalize_seed_weights: Optional[bool] = None,
        controlnet_config: Optional[List[Dict[str, Any]]] = None,
        ipadapter_config: Optional[Dict[str, Any]] = None,
        image_preprocessing_config: Optional[List[Dict[str, Any]]] = None,
        image_postprocessing_config: Optional[List[Dict[str, Any]]] = None,
        latent_preprocessing_config: Optional[List[Dict[str, Any]]] = None,
        latent_postprocessing_config: Optional[List[Dict[str, Any]]] = None,
        use_safety_checker: Optional[bool] = None,
        safety_checker_threshold: Optional[float] = None,
        cache_maxframes: Optional[int] = None,
        cache_interval: Optional[int] = None,
        cn_cache_interval: Optional[int] = None,
        fi_strength: Optional[float] = None,
        fi_threshold: Optional[float] = None,
    ) -> None:
        stream = self.stream
        if t_index_list is not None and len(t_index_list) != len(stream.t_list):
            # A TRT engine only takes batches inside its profile: the fork ignores such a step change.
            bounds = stream.unet.batch_bounds() if hasattr(stream.unet, "batch_bounds") else None
            new_batch = unet_batch_for(
                len(t_index_list), stream.frame_bff_size, stream.use_denoising_batch, stream.cfg_type
            )
            if bounds is not None and not bounds[0] <= new_batch <= bounds[1]:
                span = f"{bounds[0]}-{bounds[1]}" if bounds[1] != bounds[0] else f"{bounds[0]} only"
                logger.warning(
                    f"update_stream_params: step count change {len(stream.t_list)} -> {len(t_index_list)} needs "
                    f"UNet batch {new_batch}, but the loaded TRT engine supports batch {span}. Ignoring the step "
                    "change — restart the stream with the new step count to build/load a matching engine "
                    "(or use the Flexible TRT profile for runtime step changes)."
                )
                t_index_list = None
        if num_inference_steps is not None:
            top = max(t_index_list or stream.t_list, default=0)
            stream.num_inference_steps = max(num_inference_steps, top + 1)
        if t_index_list is not None:
            stream.t_list = list(t_index_list)
            stream.denoising_steps_num = len(t_index_list)
        if guidance_scale is not None:
            stream.guidance_scale = guidance_scale
        if delta is not None:
            stream.delta = delta
        if seed is not None:
            stream.current_seed = seed
        if negative_prompt is not None:
            stream.negative_prompt = negative_prompt
        if use_safety_checker is not None:
            self.use_safety_checker = use_safety_checker and getattr(self, "_acceleration", "") == "tensorrt"
        if safety_checker_threshold is not None:
            self.safety_checker_threshold = safety_checker_threshold
        given = {
            "prompt_list": prompt_list,
            "prompt_interpolation_method": prompt_interpolation_method,
            "normalize_prompt_weights": normalize_prompt_weights,
            "seed_list": seed_list,
            "seed_interpolation_method": seed_interpolation_method,
            "normalize_seed_weights": normalize_seed_weights,
            "controlnet_config": controlnet_config,
            "ipadapter_config": ipadapter_config,
            "image_preprocessing_config": image_preprocessing_config,
            "image_postprocessing_config": image_postprocessing_config,
            "latent_preprocessing_config": latent_preprocessing_config,
            "latent_postprocessing_config": latent_postprocessing_config,
            "cache_maxframes": cache_maxframes,
            "cache_interval": cache_interval,
            "cn_cache_interval": cn_cache_interval,
            "fi_strength": fi_strength,
            "fi_threshold": fi_threshold,
        }
        self._stream_params.update({k: v for k, v in given.items() if v is not None})

    def __call__(self, image: Any = None, prompt: Optional[str] = None) -> Any:
        if self.skip_diffusion:
            return self._frame(image, passthrough=True)
        if self.mode == "img2img":
            return self.img2img(image, prompt)
        return self.txt2img(prompt)

    def txt2img(self, prompt: Optional[str] = None) -> Any:
        if prompt is not None:
            self.update_prompt(prompt, warn_about_conflicts=True)
        return self._frame(None)

    def img2img(self, image: Any, prompt: Optional[str] = None) -> Any:
        if prompt is not None:
            self.update_prompt(prompt, warn_about_conflicts=True)
        return self._frame(image)

    def _frame(self, image: Any, passthrough: bool = False) -> Any:
        """A cheap deterministic picture: the input resized and tinted by prompt/seed/frame number."""
        if self.stream.unet is None:
            # compile-only wrapper: the fork's stream.unet is None here as well.
            raise TypeError("'NoneType' object is not callable")
        from PIL import Image

        self._behaviour.frame_delay()
        size = (self.width, self.height)
        if isinstance(image, (str, Path)):
            source = Image.open(image).convert("RGB").resize(size)
        elif isinstance(image, Image.Image):
            source = image.convert("RGB").resize(size)
        else:
            source = Image.new("RGB", size, (128, 128, 128))
        if passthrough:
            return source
        self.stream.frames_generated += 1
        text = f"{self.stream.prompt}|{self.stream.current_seed}|{self.stream.frames_generated}"
        seed = zlib.crc32(text.encode("utf-8"))
        tint = Image.new("RGB", size, (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF))
        return Image.blend(source, tint, 0.35)


def _check_resolution(height: int, width: int, low: int, high: int, what: str) -> None:
    if height % 8 or width % 8:
        raise AssertionError(f"image_height ({height}) and image_width ({width}) must both be divisible by 8")
    if not (low <= height <= high and low <= width <= high):
        raise AssertionError(f"{what} resolution {height}x{width} outside engine profile {low}..{high} px")


def _build_order() -> str:
    return (os.environ.get("STANDIN_BUILD_ORDER") or "unet-first").strip().lower()
