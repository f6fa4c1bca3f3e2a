"""What each feature the form offers needs in the build Python, in one table: setup installs it, the probe imports it,
the form locks a choice whose modules are missing, and a build with such a choice is refused before any child work.

A feature's `modules` are what the fork imports for it (forkni 76879287526e): `diffusers_ipadapter` in
modules/ipadapter_module.py and export_wrappers/unet_ipadapter_export.py; `insightface` for FaceID (the fork's
`ipadapter` extra); `modelopt.onnx.quantization` in acceleration/tensorrt/fp8_quantize.py; `controlnet_aux` and
`mediapipe` in the preprocessors that use them (preprocessing/processors/*.py). How setup installs each (`install`):
- "always": in every setup (the fork's extras or a pin in sdprep/setup/pins.py);
- "gpu": when the GPU can use it (FP8: compute capability 8.9 or newer, CUDA 12), or `--with NAME` / `--without NAME`;
- "request": only with `--with NAME` (the reason is written beside its pin in pins.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sdprep.params import BakedParams
from sdprep.profiles import FP8_MIN_COMPUTE_CAPABILITY
from sdprep.setup.pins import FACEID_PACKAGES, FP8_PACKAGES, MEDIAPIPE_PACKAGES

Install = Literal["always", "gpu", "request"]

# The fork's preprocessors that import controlnet_aux (hed, lineart, openpose, normal_bae_tensorrt, and scribble*
# through hed*) or mediapipe; the others need nothing beyond the fork's own requirements.
CONTROLNET_AUX_PREPROCESSORS = frozenset(
    {"hed", "hed_tensorrt", "lineart", "openpose", "normal_bae_tensorrt", "scribble", "scribble_tensorrt"}
)
MEDIAPIPE_PREPROCESSORS = frozenset({"mediapipe_pose", "mediapipe_segmentation"})


@dataclass(frozen=True)
class Feature:
    """One feature: the fork's imports for it, how setup installs it, and the form fields whose choice needs it."""

    name: str  # its label is feat_<name>; `--with NAME` where setup installs it on request
    modules: tuple[str, ...]
    install: Install
    fields: Callable[[BakedParams], tuple[str, ...]]  # the fields whose current choice needs it; () when none does
    packages: tuple[str, ...] = ()  # beyond the fork's extras and the always-installed pins
    before: str | None = None  # a message said before setup installs it (what it needs on this machine)


def _slots_using(preprocessors: frozenset[str]) -> Callable[[BakedParams], tuple[str, ...]]:
    def fields(params: BakedParams) -> tuple[str, ...]:
        if not params.use_controlnet:
            return ()
        return tuple(
            f"controlnets[{index}].preprocessor"
            for index, slot in enumerate(params.controlnets)
            if slot.enabled and slot.preprocessor in preprocessors
        )

    return fields


FEATURES: tuple[Feature, ...] = (
    Feature("ipadapter", ("diffusers_ipadapter",), "always", lambda p: ("use_ipadapter",) if p.use_ipadapter else ()),
    Feature(
        "faceid",
        ("diffusers_ipadapter", "insightface"),
        "request",
        lambda p: ("ipadapter_type",) if p.use_ipadapter and p.ipadapter_type == "faceid" else (),
        FACEID_PACKAGES,
        before="setup_faceid_toolchain",
    ),
    Feature("fp8", ("modelopt.onnx.quantization",), "gpu", lambda p: ("fp8",) if p.fp8 else (), FP8_PACKAGES),
    Feature("controlnet_aux", ("controlnet_aux",), "always", _slots_using(CONTROLNET_AUX_PREPROCESSORS)),
    Feature("mediapipe", ("mediapipe",), "request", _slots_using(MEDIAPIPE_PREPROCESSORS), MEDIAPIPE_PACKAGES),
)
BY_NAME: dict[str, Feature] = {feature.name: feature for feature in FEATURES}
# What `setup --with` / `--without` accept: the features setup does not always install.
OPTIONAL: tuple[str, ...] = tuple(feature.name for feature in FEATURES if feature.install != "always")


def probe_modules() -> list[str]:
    """Every module the probe imports, once each, in table order."""
    return list(dict.fromkeys(module for feature in FEATURES for module in feature.modules))


def chosen_for_setup(
    with_: tuple[str, ...], without: tuple[str, ...], cuda_major: int, capability: tuple[int, int] | None
) -> tuple[Feature, ...]:
    """The optional features this setup installs: asked for, or FP8 where the GPU can run it (CUDA 12 only: the
    fork's installer has no FP8 set for other CUDA versions)."""
    chosen: list[Feature] = []
    for feature in FEATURES:
        if feature.install == "always" or feature.name in without:
            continue
        automatic = (
            feature.install == "gpu"
            and cuda_major == 12
            and capability is not None
            and capability >= FP8_MIN_COMPUTE_CAPABILITY
        )
        if feature.name in with_ or automatic:
            chosen.append(feature)
    return tuple(chosen)


def fix_argument(feature: Feature) -> str:
    """The setup arguments that install a missing feature."""
    return "setup --upgrade" if feature.install == "always" else f"setup --with {feature.name}"
