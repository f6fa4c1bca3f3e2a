"""Child script: report what this Python can build. Run by path with the Python that will build; stdlib only.

It learns about the machine only through `torch`, `tensorrt` and `streamdiffusion`, and about StreamDiffusion's
abilities by introspection (feature detection, never version strings): the wrapper's signature and what the
config loader actually passes on.
"""

from __future__ import annotations

import importlib
import inspect
import platform
import sys
from typing import Any

from fork_inspect import diffusers_origin, distribution_origin, failed_module, features, package_version, presence
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


def _streamdiffusion() -> dict[str, Any]:
    try:
        package = importlib.import_module("streamdiffusion")
    except Exception as error:
        return {
            "error": f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}",
            "installed": presence("streamdiffusion")["installed"],
            "failed_module": failed_module(error),
        }
    info: dict[str, Any] = {
        "location": getattr(package, "__file__", None),
        "version": package_version(package, "streamdiffusion"),
        "origin": distribution_origin("streamdiffusion"),  # the fork's git URL and commit, when pip recorded them
    }
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
    info["features"] = features(set(names), config_module)
    return info


def _modules(names: list[str]) -> dict[str, Any]:
    """Import each module a feature of the form needs (the app passes them: sdprep/features.py), as the fork does."""
    found: dict[str, Any] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as error:  # a broken extension can raise anything, even SystemExit
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            found[name] = {
                "ok": False,
                "error": f"{type(error).__name__}: {first}"[:500],
                "installed": presence(name.split(".", 1)[0])["installed"],
                "failed_module": failed_module(error),
            }
        else:
            found[name] = {"ok": True}
    return found


def main() -> int:
    emit(
        "result",
        report={
            "python": {"version": platform.python_version(), "executable": sys.executable},
            "torch": _torch(),
            "tensorrt": _tensorrt(),
            "streamdiffusion": _streamdiffusion(),
            # Which diffusers build is installed: some cfg types fail with any but the one the fork pins.
            "diffusers": diffusers_origin(),
            "modules": _modules(sys.argv[1:]),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
