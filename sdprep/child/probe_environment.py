"""Child script: report what this Python can build. Run by path with the Python that will build; stdlib only.

It learns about the machine only through `torch`, `tensorrt` and `streamdiffusion`, and about StreamDiffusion's
abilities by introspection (feature detection, never version strings): the wrapper's signature and what the
config loader actually passes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import platform
import sys
import traceback
from typing import Any

from protocol import emit  # run by path: this folder is sys.path[0]


def _torch() -> dict[str, Any]:
    try:
        torch = importlib.import_module("torch")
    except Exception as error:  # an import can fail in many ways (DLLs, CUDA libs); report, never crash
        return {"error": f"{type(error).__name__}: {error}"}
    info: dict[str, Any] = {
        "location": getattr(torch, "__file__", None),
        "version": getattr(torch, "__version__", None),
        "cuda": getattr(getattr(torch, "version", None), "cuda", None),
        "cuda_available": False,
    }
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        if info["cuda_available"]:
            free, total = torch.cuda.mem_get_info(0)
            major, minor = torch.cuda.get_device_capability(0)
            info.update(
                gpu_name=torch.cuda.get_device_name(0),
                vram_total=int(total),
                vram_free=int(free),
                compute_capability=f"{major}.{minor}",
                device_count=int(torch.cuda.device_count()),
            )
    except Exception as error:
        info["cuda_error"] = f"{type(error).__name__}: {error}"
    return info


def _tensorrt() -> dict[str, Any]:
    try:
        tensorrt = importlib.import_module("tensorrt")
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"location": getattr(tensorrt, "__file__", None), "version": getattr(tensorrt, "__version__", None)}


def _installed(distribution: str) -> bool:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import distribution as find

        find(distribution)
    except PackageNotFoundError:
        return False
    except Exception:
        return False
    return True


def _failed_module(error: BaseException) -> str | None:
    """The top-level package whose import failed: ModuleNotFoundError's name, else the innermost frame's package.

    A broken dependency (transformers refusing its tokenizers, a missing controlnet_aux) must be named as such,
    not reported as "StreamDiffusion is not installed".
    """
    name = getattr(error, "name", None)
    if isinstance(error, ModuleNotFoundError) and name:
        return str(name).split(".")[0]
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        parts = frame.filename.replace("\\", "/").split("/")
        for marker in ("site-packages", "dist-packages"):
            if marker in parts and parts.index(marker) + 1 < len(parts):
                return parts[parts.index(marker) + 1].removesuffix(".py")
    return None


def _streamdiffusion() -> dict[str, Any]:
    try:
        package = importlib.import_module("streamdiffusion")
    except Exception as error:
        return {
            "error": f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}",
            "installed": _installed("streamdiffusion"),
            "failed_module": _failed_module(error),
        }
    info: dict[str, Any] = {"location": getattr(package, "__file__", None), "version": _version(package)}
    try:
        wrapper = (
            getattr(package, "StreamDiffusionWrapper", None)
            or importlib.import_module("streamdiffusion.wrapper").StreamDiffusionWrapper
        )
        names = list(inspect.signature(wrapper.__init__).parameters)
    except Exception as error:
        info["error"] = f"StreamDiffusionWrapper not usable: {type(error).__name__}: {error}"
        return info
    info["wrapper_params"] = names
    try:
        config_module = importlib.import_module("streamdiffusion.config")
        info["has_config_loader"] = hasattr(config_module, "create_wrapper_from_config")
    except Exception as error:
        config_module = None
        info["has_config_loader"] = False
        info["config_error"] = f"{type(error).__name__}: {error}"
    info["features"] = _features(set(names), config_module)
    return info


def _version(package: Any) -> str | None:
    version = getattr(package, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib.metadata import version as dist_version

        return dist_version("streamdiffusion")
    except Exception:
        return None


def _passes_through(config_module: Any, config: dict[str, Any], check: Any) -> bool | None:
    """Ask the fork's own config loader what it hands to the wrapper (True/False), or None if it can't say."""
    extract = getattr(config_module, "_extract_wrapper_params", None)
    if extract is None:
        return None
    try:
        return bool(check(extract(dict(config))))
    except Exception:
        return None


def _features(names: set[str], config_module: Any) -> dict[str, Any]:
    base = {"model_id": "probe/model", "t_index_list": [32]}
    raw_ipadapter = {
        **base,
        "use_ipadapter": True,
        "ipadapter_config": [
            {"ipadapter_model_path": "a/b/c.bin", "image_encoder_path": "a/b", "num_image_tokens": 16}
        ],
    }

    def tokens_kept(params: dict[str, Any]) -> bool:
        items = params.get("ipadapter_config") or []
        items = [items] if isinstance(items, dict) else items
        return bool(items) and items[0].get("num_image_tokens") == 16

    return {
        "compile_engines_only": "compile_engines_only" in names,
        "scheduler": "scheduler" in names,
        "sampler": "sampler" in names,
        "cached_attention": "use_cached_attn" in names,
        "controlnet": "use_controlnet" in names,
        "ipadapter": "use_ipadapter" in names,
        # Only forks with a TensorRT safety-checker engine have its fallback/threshold parameters.
        "safety_checker_engine": "safety_checker_fallback_type" in names,
        "min_max_batch": "max_batch_size" in names,
        "config_batch_bounds": _passes_through(
            config_module, {**base, "max_batch_size": 7}, lambda params: params.get("max_batch_size") == 7
        ),
        "config_ipadapter_tokens": _passes_through(config_module, raw_ipadapter, tokens_kept),
        # The build profile keys (static shapes, optimisation level) and FP8: only forks whose loader hands them on.
        "config_profile_keys": _passes_through(
            config_module,
            {**base, "static_shapes": True, "builder_optimization_level": 2},
            lambda params: params.get("static_shapes") is True and params.get("builder_optimization_level") == 2,
        ),
        "config_fp8": _passes_through(config_module, {**base, "fp8": True}, lambda params: params.get("fp8") is True),
    }


def main() -> int:
    emit(
        "result",
        report={
            "python": {"version": platform.python_version(), "executable": sys.executable},
            "torch": _torch(),
            "tensorrt": _tensorrt(),
            "streamdiffusion": _streamdiffusion(),
            # The fork's FP8 path quantises with NVIDIA ModelOpt; a spec lookup does not import it (seconds, CUDA).
            "modelopt": {"importable": importlib.util.find_spec("modelopt") is not None},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
