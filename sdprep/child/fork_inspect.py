"""What the build Python's StreamDiffusion is, seen from inside it: shared by the probe and the self-test.

Imported by the child scripts beside it (run by path, this folder is sys.path[0]); standard library only. One place
decides whether StreamDiffusion is there at all, which module broke when an import fails, and what the fork can
build, so the Environment tab (probe) and the self-test (doctor) never tell a user two different stories.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable
from typing import Any

CHILD_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_SITE_PACKAGES = re.compile(r"[\\/](?:site|dist)-packages[\\/]([^\\/]+)")


# --------------------------------------------------------------------------------------------- is it there at all


def distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def presence(name: str) -> dict[str, Any]:
    """Whether a package is there without importing it: installed (a distribution) or importable (a source folder on
    the path, as --streamdiffusion-src gives), so a broken import says "installed but broken", not "not installed"."""
    distribution = distribution_version(name)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    found_at = (spec.origin or next(iter(spec.submodule_search_locations or []), None)) if spec else None
    return {"distribution": distribution, "found_at": found_at, "installed": bool(distribution or spec)}


def distribution_origin(name: str) -> dict[str, Any]:
    """Where an installed distribution came from, as its installer recorded it (PEP 610 direct_url.json): a git URL
    and commit, a local folder (editable or not), or nothing (an index, e.g. PyPI). Read, never imported."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return {"installed": False}
    info: dict[str, Any] = {"installed": True, "version": str(dist.version), "url": None, "commit": None}
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except (OSError, ValueError):
        direct = None
    if isinstance(direct, dict):
        vcs = direct.get("vcs_info")
        vcs = vcs if isinstance(vcs, dict) else {}
        folder = direct.get("dir_info")
        folder = folder if isinstance(folder, dict) else {}
        info.update(
            url=str(direct.get("url") or "") or None,
            commit=vcs.get("commit_id"),
            editable=bool(folder.get("editable")),
        )
    return info


def declared_requirement(package: str, dependency: str) -> str | None:
    """The requirement `package`'s installed metadata declares for `dependency` outside any extra, e.g.
    "diffusers @ git+https://github.com/varshith15/diffusers.git@3e3b72f5..."; None when it declares none."""
    try:
        requires = importlib.metadata.requires(package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = re.sub(r"[-_.]+", "-", dependency).lower()
    for requirement in requires:
        name = re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0]
        if re.sub(r"[-_.]+", "-", name).lower() == wanted and "extra ==" not in requirement.replace('"', "'"):
            return requirement.strip()
    return None


def diffusers_origin() -> dict[str, Any]:
    """The installed diffusers and the one the installed StreamDiffusion declares (the forkni fork pins a git build)."""
    return {**distribution_origin("diffusers"), "wanted": declared_requirement("streamdiffusion", "diffusers")}


def package_version(package: Any, distribution: str) -> str | None:
    version = getattr(package, "__version__", None)
    return str(version) if version else distribution_version(distribution)


# ------------------------------------------------------------------------------------------------ import failures


def _stdlib_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return [os.path.normcase(os.path.abspath(paths[key])) for key in ("stdlib", "platstdlib") if paths.get(key)]


def _top_name(component: str) -> str:
    # "foo.py" -> foo; "foo.cpython-311-x86_64-linux-gnu.so" / "foo.pyd" -> foo
    return component.split(".", 1)[0]


def _module_of_file(filename: str) -> str | None:
    """The top-level module a source file belongs to, or None for the standard library, frozen code and the child
    scripts themselves."""
    if not filename or filename.startswith("<"):
        return None
    match = _SITE_PACKAGES.search(filename)
    if match:
        return _top_name(match.group(1))
    path = os.path.normcase(os.path.abspath(filename))
    if os.path.dirname(path) == CHILD_DIR:
        return None
    # A path entry inside another (a src/ folder inside a checkout) must win: the longest match is the right one.
    entries = sorted((os.path.normcase(os.path.abspath(entry)) for entry in sys.path if entry), key=len, reverse=True)
    for entry in entries:
        if path.startswith(entry + os.sep):
            if entry in _stdlib_dirs():
                return None
            return _top_name(path[len(entry) + 1 :].split(os.sep, 1)[0])
    return None


def failed_module(error: BaseException) -> str | None:
    """The top-level module an import failure belongs to.

    A missing module names itself (ModuleNotFoundError.name: "controlnet_aux"); otherwise the innermost frame of the
    traceback that is neither the standard library nor a child script says where it broke (an ImportError raised in
    transformers/utils/versions.py -> "transformers").
    """
    name = getattr(error, "name", None)
    if isinstance(error, ModuleNotFoundError) and name:
        return str(name).split(".", 1)[0]
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        module = _module_of_file(frame.filename)
        if module:
            return module
    return str(name).split(".", 1)[0] if name else None


# ------------------------------------------------------------------------------------------- what it can build


def _passes_through(config_module: Any, config: dict[str, Any], check: Callable[[dict[str, Any]], bool]) -> bool | None:
    """Ask the fork's own config loader what it hands the wrapper (True/False), or None if it can't say."""
    extract = getattr(config_module, "_extract_wrapper_params", None)
    if extract is None:
        return None
    try:
        return bool(check(extract(dict(config))))
    except Exception:
        return None


def features(names: set[str], config_module: Any) -> dict[str, Any]:
    """What this fork can build, by feature detection (never version strings): the wrapper's parameter `names` and
    what the config loader actually passes on."""
    base: dict[str, Any] = {"model_id": "probe/model", "t_index_list": [32]}
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
