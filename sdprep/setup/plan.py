"""From what a person asked (`setup --cuda ... --fork ...`) to the exact uv commands, as pure functions.

Each step installs into the partial environment with `python -m uv`; later steps pass a constraints file with the
torch build chosen first, so no dependency (controlnet-aux, modelopt: both want "torch") can replace it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from sdprep.features import Feature, chosen_for_setup
from sdprep.jobs.process import venv_python
from sdprep.messages import Message, msg
from sdprep.setup.driver import compute_capability, version_text
from sdprep.setup.pins import (
    CUDA_VARIANTS,
    DEFAULT_FORK,
    FORKS,
    IPADAPTER_PACKAGE,
    NVIDIA_INDEX,
    PYTHON_VERSION,
    TENSORRT_COMPANIONS,
    WINDOWS_PACKAGES,
    CudaVariant,
    Fork,
)

StepId = Literal["venv", "torch", "fork", "tensorrt", "features"]
_GIT_SPEC = re.compile(r"^(?P<url>(?:git\+)?(?:https?|ssh|file|git)://.+?|git@.+?)(?:@(?P<ref>[^@/]+))?$")


@dataclass(frozen=True)
class SetupRequest:
    """What was asked; recorded, and compared with the record to answer "up to date"."""

    target: str
    cuda: str = "auto"
    fork: str = DEFAULT_FORK
    python: str = PYTHON_VERSION
    upgrade: bool = False
    replace: bool = False
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    gpu: int = 0
    with_features: tuple[str, ...] = ()  # --with NAME: optional features (sdprep/features.py) installed as well
    without_features: tuple[str, ...] = ()  # --without NAME: left out although the GPU could use them

    def identity(self) -> dict[str, object]:
        """The parts that decide what gets installed (not how: upgrade/replace are about this run)."""
        data = asdict(self)
        for name in ("upgrade", "replace", "gpu"):
            data.pop(name)
        data["find_links"] = list(self.find_links)
        data["with_features"] = sorted(self.with_features)
        data["without_features"] = sorted(self.without_features)
        return data


@dataclass(frozen=True)
class Step:
    id: StepId
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def resolve_fork(spec: str) -> Fork | Message:
    """forkni | livepeer | <git URL>[@<ref>] -> the fork, or why it cannot be one."""
    if spec in FORKS:
        return FORKS[spec]
    match = _GIT_SPEC.match(spec.strip())
    if match is None:
        return msg("setup_bad_fork", spec=spec, names=list(FORKS))
    url = match.group("url").removeprefix("git+")
    return Fork(url, match.group("ref") or "HEAD", ("tensorrt",))


def choose_variant(cuda: str, driver: tuple[int, ...] | None, windows: bool = os.name == "nt") -> CudaVariant | Message:
    """--cuda auto: the newest CUDA build whose minimum driver this machine meets; or the one asked for."""
    if cuda != "auto":
        chosen = next((variant for variant in CUDA_VARIANTS if variant.name == cuda), None)
        return chosen or msg("setup_bad_cuda", cuda=cuda, choices=[v.name for v in CUDA_VARIANTS])
    if driver is None:
        return msg("setup_no_driver")
    for variant in CUDA_VARIANTS:
        if driver >= (variant.min_driver_windows if windows else variant.min_driver_linux):
            return variant
    oldest = CUDA_VARIANTS[-1]
    needed = oldest.min_driver_windows if windows else oldest.min_driver_linux
    return msg("setup_driver_too_old", driver=version_text(driver), needed=version_text(needed))


def uv() -> list[str]:
    """uv, run by the app's own Python (`uv` is in requirements.txt): no separate install, no PATH lookup."""
    return [sys.executable, "-m", "uv"]


def _sources(request: SetupRequest) -> list[str]:
    """Where packages come from: the indexes, or (offline installs, tests) local folders of wheels."""
    flags = [item for folder in request.find_links for item in ("--find-links", folder)]
    return [*flags, "--no-index"] if request.no_index else flags


def features_for(request: SetupRequest, variant: CudaVariant) -> tuple[Feature, ...]:
    """The optional features this setup installs: asked for with --with, or FP8 on a GPU that runs it."""
    return chosen_for_setup(
        request.with_features, request.without_features, int(variant.name[2:4]), compute_capability(request.gpu)
    )


def steps(
    request: SetupRequest,
    variant: CudaVariant,
    fork: Fork,
    partial: Path,
    constraints: Path,
    features: tuple[Feature, ...] = (),
) -> list[Step]:
    python = str(venv_python(partial))
    base = [*uv(), "pip", "install", "--python", python, *_sources(request)]
    if request.upgrade:
        base.append("--upgrade")
    cuda_version = f"{variant.name[2:4]}.{variant.name[4:]}"  # cu128 -> 12.8
    extras = [package for feature in features for package in feature.packages]
    planned = [
        # --clear: a leftover of an earlier try (a file a virus scanner held while it was removed) never blocks this.
        Step("venv", [*uv(), "venv", str(partial), "--clear", "--python", request.python, "--relocatable"]),
        Step(
            "torch",
            [*base, "--torch-backend", variant.name, f"torch=={variant.torch}", f"torchvision=={variant.torchvision}"],
        ),
        # The fork's setup.py pins cuda-python from this variable (torch is not visible in uv's build isolation).
        # The IP-Adapter package goes with the fork: its TensorRT path imports it for every build (pins.py).
        Step(
            "fork",
            [
                *base,
                "--constraint",
                str(constraints),
                fork.requirement(),
                IPADAPTER_PACKAGE.requirement(offline=request.no_index),
            ],
            {"STREAMDIFFUSION_CUDA_VERSION": cuda_version},
        ),
        Step(
            "tensorrt",
            [
                *base,
                "--constraint",
                str(constraints),
                *(
                    []
                    if request.no_index
                    else ["--extra-index-url", NVIDIA_INDEX, "--index-strategy", "unsafe-best-match"]
                ),
                variant.tensorrt,
                *TENSORRT_COMPANIONS,
                *WINDOWS_PACKAGES,
            ],
        ),
    ]
    if extras:
        # After TensorRT, as the fork's installer does (numpy 1.26.4 for FP8 replaces what the fork resolved).
        planned.append(Step("features", [*base, "--constraint", str(constraints), *extras]))
    return planned


def constraints_text(variant: CudaVariant) -> str:
    return f"torch=={variant.torch}\ntorchvision=={variant.torchvision}\n"


def request_json(request: SetupRequest) -> str:
    return json.dumps(request.identity(), sort_keys=True)
