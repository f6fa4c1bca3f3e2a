"""What `setup` installs, written in one place, each pin with where it comes from.

Sources (read from the public repositories and package indexes; see the README's "Set up the build Python"):
- forkni/StreamDiffusion, branch SDTD_040_beta_release, head 76879287526e (2026-07-19): setup.py L51-136 (package
  `streamdiffusion`, extras), src/streamdiffusion/tools/install-tensorrt.py L16-58 (TensorRT 10.16.1.11 for CUDA 12,
  polygraphy 0.49.26, onnx-graphsurgeon 0.6.1, onnx 1.19.1), tests/quality/manifest.json L3-8 (the fork's tested
  torch 2.8.0+cu128). The fork has no CUDA 13 path (install-tensorrt.py accepts CUDA 11 or 12 only).
- PyPI: `tensorrt` (the meta package) maps to tensorrt_cu13 from 10.13.2.6 on, so a CUDA 12 torch needs
  `tensorrt-cu12` by name; its libraries come from pypi.nvidia.com (the PyPI package is a stub that downloads them).
- download.pytorch.org: torch 2.8.0 / torchvision 0.23.0 exist for cu126, cu128 and cu129.
- NVIDIA CUDA Toolkit release notes, table 3: minimum Linux / Windows drivers per CUDA version.
- livepeer/StreamDiffusion main 8bafafddaef0 (2025-08-20): extras tensorrt only; TensorRT 9 in its own installer.
- forkni setup.py L75 (deps `diffusers-ipadapter`), L105 (extra `ipadapter` = diffusers-ipadapter, mediapipe,
  insightface); livepeer/Diffusers_IPAdapter setup.py: version 0.1.1, requires torch, Pillow, numpy (pure Python).
"""

from __future__ import annotations

from dataclasses import dataclass

PYTHON_VERSION = "3.11"  # the fork's wheels: onnxruntime-gpu 1.24.4 has no cp310, mediapipe 0.10.21 no cp313
# When 3.11 cannot be had (no such interpreter and uv may not download one), the fork also installs on 3.12.
PYTHON_FALLBACK = "3.12"
NVIDIA_INDEX = "https://pypi.nvidia.com"


@dataclass(frozen=True)
class CudaVariant:
    """One CUDA build of torch, and the driver it needs (Linux, Windows)."""

    name: str  # uv's --torch-backend value
    torch: str
    torchvision: str
    min_driver_linux: tuple[int, ...]
    min_driver_windows: tuple[int, ...]
    tensorrt: str  # the TensorRT distribution for this CUDA major, with its pinned version


# Newest first: `--cuda auto` takes the first whose driver minimum the machine meets. CUDA 13 is left out on purpose:
# the fork's TensorRT path, onnxruntime-gpu 1.24.4 and FP8 (modelopt) are CUDA 12 only.
CUDA_VARIANTS: tuple[CudaVariant, ...] = (
    CudaVariant("cu128", "2.8.0+cu128", "0.23.0+cu128", (570, 26), (570, 65), "tensorrt-cu12==10.16.1.11"),
    CudaVariant("cu126", "2.8.0+cu126", "0.23.0+cu126", (560, 28, 3), (560, 76), "tensorrt-cu12==10.16.1.11"),
)
CUDA_CHOICES = ("auto", *(variant.name for variant in CUDA_VARIANTS))


@dataclass(frozen=True)
class Fork:
    """A StreamDiffusion fork: its git URL and the commit setup installs, and the extras a build needs."""

    url: str
    ref: str
    extras: tuple[str, ...]

    def requirement(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"streamdiffusion{extras} @ git+{self.url}@{self.ref}"


# No `ipadapter` extra (insightface has no wheels: it needs a C++ compiler; FaceID and MediaPipe come on request, see
# FACEID_PACKAGES), no `cuda_ipc` (one Windows cp311 wheel without a platform marker), no `xformers`/`dev` (xformers
# 0.0.30 forces torch 2.7.0).
FORKS: dict[str, Fork] = {
    "forkni": Fork(
        "https://github.com/forkni/StreamDiffusion",
        "76879287526e8c336e68d297530b9324315a386b",
        ("tensorrt", "controlnet"),
    ),
    "livepeer": Fork(
        "https://github.com/livepeer/StreamDiffusion", "8bafafddaef0254298d171ca083333d0c6f20364", ("tensorrt",)
    ),
}
DEFAULT_FORK = "forkni"

# Installed with TensorRT, the versions the fork's own installer and setup.py pin for a TensorRT build.
TENSORRT_COMPANIONS: tuple[str, ...] = (
    "protobuf>=4.25.8,<5",
    "onnx==1.19.1",
    "onnx-graphsurgeon==0.6.1",
    "polygraphy==0.49.26",
)


# --- IP-Adapter package: needed by every TensorRT build of the forkni fork, not only IP-Adapter ones ------------
# `import streamdiffusion.acceleration.tensorrt` reaches export_wrappers/unet_ipadapter_export.py, which imports
# `diffusers_ipadapter` unconditionally; the fork lists it only in its `ipadapter` extra (left out above for
# insightface). Pure Python, so it installs on every platform without a compiler. TRTIPAttnProcessor, which the
# import needs, is on the repository's feat/trt-weight-types line (the pinned commit), not on its main.


@dataclass(frozen=True)
class GitPackage:
    """A package the fork pins at a git commit, and the version its setup.py declares at that commit."""

    name: str
    url: str
    ref: str
    version: str

    def requirement(self, offline: bool = False) -> str:
        # An offline install (--no-index) cannot clone; it takes the wheel built from that commit, by name and version.
        return f"{self.name}=={self.version}" if offline else f"{self.name} @ git+{self.url}@{self.ref}"


IPADAPTER_PACKAGE = GitPackage(
    "diffusers-ipadapter",
    "https://github.com/livepeer/Diffusers_IPAdapter.git",
    "405f87da42932e30bd55ee8dca3ce502d7834a99",
    "0.1.1",
)


# --- The diffusers build the forkni fork pins (setup.py L54); setup gets it through the fork's own dependencies -----
# With PyPI's diffusers (0.35.1 seen on an H100), cfg_type full and initialize fail in the fork's
# _patches/diffusers_kvo_patch.py ("The size of tensor a (8192) must match the size of tensor b (4096)"); the other
# cfg types rendered. A --python of the user's own may have any diffusers: the probe says which.
FORK_DIFFUSERS_URL = "https://github.com/varshith15/diffusers.git"
FORK_DIFFUSERS_COMMIT = "3e3b72f557e91546894340edabc845e894f00922"
CFG_TYPES_NEEDING_FORK_DIFFUSERS: tuple[str, ...] = ("full", "initialize")


# Installed with TensorRT on Windows only, as the fork's installer does (install-tensorrt.py L22-35). cuDNN: the
# installer pins nvidia-cudnn-cu12==9.7.1.26 on every system, but on Linux torch 2.8.0 depends on its own
# (nvidia-cudnn-cu12==9.10.2.21: the two do not resolve together); Windows torch wheels carry their cuDNN inside and
# depend on no such package, so the fork's pin applies there only.
WINDOWS_PACKAGES: tuple[str, ...] = (
    "nvidia-cudnn-cu12==9.7.1.26; sys_platform == 'win32'",
    "pywin32==311; sys_platform == 'win32'",
    "triton-windows==3.4.0.post21; sys_platform == 'win32'",
)

# The optional features' packages (which feature needs what, and when setup installs it: sdprep/features.py).
# FP8, CUDA 12 only: the fork's installer (install-tensorrt.py L48-58) pins modelopt 0.43.0 without its [onnx] extra
# (0.45 moves onnx to 1.21, which breaks FP8 quantisation; the extra moves onnxruntime-gpu off the fork's pin), lists
# the extra's other needs itself, and pins numpy 1.26.4 (without it numpy resolves to 2.4.x).
FP8_PACKAGES: tuple[str, ...] = (
    "nvidia-modelopt==0.43.0",
    "cppimport",
    "lief",
    "ml_dtypes",
    "onnxconverter-common~=1.16.0",
    "cupy-cuda12x==13.6.0",
    "numpy==1.26.4",
)
# FaceID, on request only: the fork's `ipadapter` extra pins insightface 0.7.3, which has no wheels (a source
# package with C++ extensions): it needs a C++ compiler (on Windows, Visual Studio's Build Tools).
FACEID_PACKAGES: tuple[str, ...] = ("insightface==0.7.3",)
# The MediaPipe preprocessors, on request only: the fork's `ipadapter` extra pins mediapipe 0.10.21, which brings
# opencv-contrib-python beside controlnet-aux's opencv-python-headless, and both install the one `cv2` module.
MEDIAPIPE_PACKAGES: tuple[str, ...] = ("mediapipe==0.10.21",)
