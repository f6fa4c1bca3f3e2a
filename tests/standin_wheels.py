"""Installable wheels of the stand-ins, and a git repository of the stand-in StreamDiffusion, made with the stdlib.

The `setup` command installs torch, TensorRT and a StreamDiffusion fork from git into a fresh venv with uv. Tests
of it need the same installs to really happen, offline and in seconds: this module makes a wheelhouse that uv can
install with `--no-index --find-links DIR --offline`, and a local git repository that uv can build and install as
`streamdiffusion[tensorrt] @ git+file:///...@<sha>` (its in-tree build backend, tests/standin_backend.py, needs
nothing from an index).

    wheels = build_wheelhouse(tmp / "wheels")            # torch 2.5.1+cu124, tensorrt-cu12, transformers, ...
    build_wheelhouse(tmp / "wheels", torch_versions=("2.9.0+cu130", "2.9.0+cpu"), tensorrt=(("10.14.1.48", 13),))
    spec = make_streamdiffusion_repo(tmp / "sd-repo")   # "streamdiffusion @ git+file:///.../sd-repo@<sha>"
    placeholder_wheel(tmp / "wheels", "colored", "2.2.4")  # one more pinned dependency

What each wheel holds:
- torch (any version; the CUDA of a `+cuNNN` local version is baked in: "+cu124" -> 12.4, "+cpu" -> no CUDA)
  and torchvision (requires `torch==<its base version>`, as the real pairs pin each other).
- tensorrt-cuNN (the stand-in `tensorrt` module with cuda_major NN baked in) requiring tensorrt-cuNN-libs (a
  `tensorrt_libs` module), and the `tensorrt` meta package requiring tensorrt-cuNN, like `pip install tensorrt`.
- transformers (the stand-in that checks its tokenizers pin at import; STANDIN_TOKENIZERS_VERSION).
- diffusers-ipadapter (the stand-in `diffusers_ipadapter`, which the stand-in StreamDiffusion's TensorRT path imports
  as the fork's does; setup installs it beside the fork).
- streamdiffusion (the stand-in package; requires torch and transformers, extras tensorrt/controlnet/ipadapter),
  also as the git repository.
- placeholders (protobuf, onnx, polygraphy, onnx-graphsurgeon, ... by name and version): an importable module
  with `__version__`, for pins that only have to resolve.
Local versions: uv and pip both accept `torch==2.5.1+cu124` in a requirement and as a file name, and a plain
`torch==2.5.1` matches every local variant (PEP 440); between +cpu and +cu124, the higher local label (cu124) wins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from testkit.processes import run as run_process
from tests.standin_backend import normalize, package_files, write_wheel

STANDIN = Path(__file__).resolve().parent / "standin"
BACKEND = Path(__file__).resolve().parent / "standin_backend.py"

DEFAULT_TORCH = "2.5.1+cu124"
DEFAULT_TENSORRT = "10.13.3.9"
STREAMDIFFUSION_VERSION = "0.4.0"
# Import name of each placeholder distribution, where it differs from the normalized name with "_".
MODULE_NAMES: dict[str, str] = {
    "protobuf": "google/protobuf",
    "onnx-graphsurgeon": "onnx_graphsurgeon",
    # What the fork's FP8 path imports from NVIDIA ModelOpt (its parents are namespace packages here).
    "nvidia-modelopt": "modelopt/onnx/quantization",
    "cupy-cuda12x": "cupy",
}
# What the stand-in setup pins beside torch/TensorRT: placeholders, as (distribution, version).
DEFAULT_PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    ("protobuf", "4.25.3"),
    ("onnx", "1.16.2"),
    ("polygraphy", "0.49.9"),
    ("onnx-graphsurgeon", "0.5.2"),
    ("controlnet-aux", "0.0.7"),
    ("insightface", "0.7.3"),
)
# The stand-in StreamDiffusion's extras; each name must be a wheel in the wheelhouse to install that extra.
STREAMDIFFUSION_EXTRAS: dict[str, list[str]] = {
    "tensorrt": ["protobuf", "onnx", "polygraphy", "onnx-graphsurgeon"],
    "controlnet": ["controlnet-aux"],
    "ipadapter": ["diffusers-ipadapter", "insightface"],
}
STREAMDIFFUSION_REQUIRES: list[str] = ["torch", "transformers"]


def cuda_of(torch_version: str) -> str | None:
    """The CUDA a torch version was built for, from its local label: 2.5.1+cu124 -> "12.4", +cu130 -> "13.0"."""
    match = re.search(r"\+cu(\d+)(\d)$", torch_version)
    if match:
        return f"{int(match.group(1))}.{match.group(2)}"
    if "+" in torch_version:
        return None  # +cpu, +rocm..., +xpu: no CUDA
    return "12.4"  # a plain PyPI version: Linux wheels on PyPI are CUDA builds


def _baked(values: Mapping[str, Any]) -> bytes:
    text = (
        '"""What this stand-in wheel was built as (tests/standin_wheels.py); STANDIN_* variables override it."""\n\n'
        f"BAKED = {dict(values)!r}\n"
    )
    return text.encode("utf-8")


def _module_file(text: str) -> bytes:
    return (text.strip() + "\n").encode("utf-8")


def torch_wheel(dest: Path, version: str = DEFAULT_TORCH, cuda: str | None = "auto") -> Path:
    """The stand-in torch as `torch==version`; `cuda` defaults to what the local version says."""
    baked_cuda = cuda_of(version) if cuda == "auto" else cuda
    files = package_files(STANDIN / "torch", "torch")
    files["torch/_baked.py"] = _baked({"version": version, "cuda": baked_cuda})
    return write_wheel(dest, "torch", version, files, summary="stand-in torch (tests/standin)")


def torchvision_for(torch_version: str) -> str:
    """The torchvision release paired with a torch release: 2.5.1+cu124 -> 0.20.1+cu124, 2.9.0 -> 0.24.0."""
    base, _, local = torch_version.partition("+")
    major, minor, patch = [*base.split("."), "0", "0"][:3]
    paired = f"0.{int(minor) + 15}.{patch}" if major == "2" else base
    return f"{paired}+{local}" if local else paired


def torchvision_wheel(dest: Path, version: str = "0.20.1+cu124", torch_version: str = DEFAULT_TORCH) -> Path:
    base = torch_version.split("+", 1)[0]
    module = _module_file(
        f'"""Stand-in torchvision: a version and an import of torch, as the real one does first."""\n\n'
        f"import torch  # noqa: F401\n\n__version__ = {version!r}"
    )
    return write_wheel(dest, "torchvision", version, {"torchvision/__init__.py": module}, requires=[f"torch=={base}"])


def tensorrt_wheels(dest: Path, version: str = DEFAULT_TENSORRT, cuda_major: int = 12) -> list[Path]:
    """tensorrt-cuNN (the stand-in module, its CUDA major baked in), tensorrt-cuNN-libs, and the meta package."""
    flavour = f"tensorrt-cu{cuda_major}"
    files = package_files(STANDIN / "tensorrt", "tensorrt")
    files["tensorrt/_baked.py"] = _baked({"version": version, "cuda_major": cuda_major})
    libs = {"tensorrt_libs/__init__.py": _module_file(f'"""Stand-in {flavour}-libs: no libraries."""')}
    return [
        write_wheel(
            dest, flavour, version, files, summary="stand-in TensorRT", requires=[f"{flavour}-libs=={version}"]
        ),
        write_wheel(dest, f"{flavour}-libs", version, libs, summary="stand-in TensorRT libraries"),
        # What `pip install tensorrt` gets: a meta package that pulls one CUDA flavour (cu13 in recent releases).
        write_wheel(dest, "tensorrt", version, {}, summary="stand-in meta package", requires=[f"{flavour}=={version}"]),
    ]


def transformers_wheel(dest: Path, version: str = "4.55.4") -> Path:
    files = package_files(STANDIN / "transformers", "transformers")
    return write_wheel(dest, "transformers", version, files, summary="stand-in transformers (tests/standin)")


def diffusers_ipadapter_wheel(dest: Path, version: str = "0.1.1") -> Path:
    """The stand-in diffusers_ipadapter: the attention processors the fork's TensorRT path imports."""
    files = package_files(STANDIN / "diffusers_ipadapter", "diffusers_ipadapter")
    return write_wheel(
        dest, "diffusers-ipadapter", version, files, summary="stand-in diffusers_ipadapter", requires=["torch"]
    )


def placeholder_wheel(dest: Path, name: str, version: str, module: str | None = None) -> Path:
    """A wheel that only has to exist for a pin to resolve: a module with `__version__`."""
    path = module or MODULE_NAMES.get(normalize(name), normalize(name).replace("-", "_"))
    text = _module_file(
        f'"""Placeholder for {name} {version} (tests/standin_wheels.py)."""\n\n__version__ = {version!r}'
    )
    # A dotted home such as google/protobuf needs no __init__ in its parent: "google" is a namespace package.
    return write_wheel(dest, name, version, {f"{path}/__init__.py": text}, summary=f"placeholder for {name}")


def streamdiffusion_metadata(version: str = STREAMDIFFUSION_VERSION) -> dict[str, Any]:
    return {
        "name": "streamdiffusion",
        "version": version,
        "summary": "stand-in StreamDiffusion (tests/standin)",
        "requires": list(STREAMDIFFUSION_REQUIRES),
        "extras": {extra: list(requirements) for extra, requirements in STREAMDIFFUSION_EXTRAS.items()},
        "requires_python": ">=3.10",
        "packages": {"streamdiffusion": "src/streamdiffusion"},
    }


def streamdiffusion_wheel(dest: Path, version: str = STREAMDIFFUSION_VERSION) -> Path:
    meta = streamdiffusion_metadata(version)
    return write_wheel(
        dest,
        meta["name"],
        version,
        package_files(STANDIN / "streamdiffusion", "streamdiffusion"),
        meta["summary"],
        meta["requires"],
        meta["extras"],
        meta["requires_python"],
    )


def build_wheelhouse(
    dest: Path,
    torch_versions: Sequence[str] = (DEFAULT_TORCH, "2.5.1+cpu"),
    tensorrt: Iterable[tuple[str, int]] = ((DEFAULT_TENSORRT, 12), (DEFAULT_TENSORRT, 13)),
    placeholders: Iterable[tuple[str, str]] = DEFAULT_PLACEHOLDERS,
    streamdiffusion: bool = False,
) -> Path:
    """Every stand-in wheel into `dest` (a --find-links folder); returns `dest`.

    The StreamDiffusion wheel is left out by default: the setup installs it from git (make_streamdiffusion_repo).
    Two TensorRT flavours of one version write one `tensorrt` meta wheel each; the last one wins (cu13 by default,
    as on the package index).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for version in torch_versions:
        torch_wheel(dest, version)
        torchvision_wheel(dest, torchvision_for(version), version)
    for trt_version, major in tensorrt:
        tensorrt_wheels(dest, trt_version, major)
    transformers_wheel(dest)
    diffusers_ipadapter_wheel(dest)
    for name, version in placeholders:
        placeholder_wheel(dest, name, version)
    if streamdiffusion:
        streamdiffusion_wheel(dest)
    return dest


def _pyproject(meta: Mapping[str, Any]) -> str:
    def toml_list(items: Iterable[str]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    lines = [
        "[build-system]",
        "requires = []",
        'build-backend = "standin_backend"',
        'backend-path = ["_backend"]',
        "",
        "[project]",
        f"name = {json.dumps(meta['name'])}",
        f"version = {json.dumps(meta['version'])}",
        f"description = {json.dumps(meta['summary'])}",
        f"requires-python = {json.dumps(meta['requires_python'])}",
        f"dependencies = {toml_list(meta['requires'])}",
        "",
        "[project.optional-dependencies]",
        *(f"{extra} = {toml_list(requirements)}" for extra, requirements in meta["extras"].items()),
    ]
    return "\n".join(lines) + "\n"


def _git(repo: Path, *args: str) -> str:
    # A fixed identity and no user/system config: the commit must not depend on who runs the tests.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "standin",
        "GIT_AUTHOR_EMAIL": "standin@example.invalid",
        "GIT_COMMITTER_NAME": "standin",
        "GIT_COMMITTER_EMAIL": "standin@example.invalid",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    }
    done = run_process(["git", *args], cwd=repo, env=env, check=True)
    return done.stdout.strip()


def make_streamdiffusion_repo(dest: Path, version: str = STREAMDIFFUSION_VERSION) -> str:
    """A git repository (one commit) of the stand-in StreamDiffusion, buildable offline; its PEP 508 spec.

    Returns `streamdiffusion @ git+file:///<dest>@<commit sha>`; put `[tensorrt]` after the name for the extra.
    """
    meta = streamdiffusion_metadata(version)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "_backend").mkdir(parents=True)
    shutil.copytree(
        STANDIN / "streamdiffusion", dest / "src" / "streamdiffusion", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copyfile(BACKEND, dest / "_backend" / "standin_backend.py")
    (dest / "_backend" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (dest / "pyproject.toml").write_text(_pyproject(meta), encoding="utf-8")
    (dest / "README.md").write_text("Stand-in StreamDiffusion for the setup tests (tests/standin_wheels.py).\n")
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"stand-in streamdiffusion {version}")
    sha = _git(dest, "rev-parse", "HEAD")
    return f"streamdiffusion @ {dest.resolve().as_uri().replace('file://', 'git+file://', 1)}@{sha}"
