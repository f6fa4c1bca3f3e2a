"""Build profiles: the named combinations of shapes, TensorRT optimisation level and FP8 that the newest fork documents.

forkni's wrapper docstring and configs/td_config.yaml.example describe four (forkni SDTD_040_beta_release): Flexible
(dynamic shapes, level 3: any batch 1-4 and step count at runtime), Fast build (static shapes, level 2; the fork
says "30-40 % faster build with minimal runtime loss"), Quality (static, level 3) and Performance (static, level 4,
FP8 UNet; RTX 40 and newer). A profile is only a name for three BakedParams fields (static_shapes, opt_level, fp8):
those are what the config, the variant and the engines' identity use, and any other combination is "custom".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from sdprep.params import BakedParams

ProfileName = Literal["flexible", "fast", "quality", "fp8"]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)
# The VAE is built at level 3 in every profile, as the fork's own default: profiles then share one VAE engine.
VAE_OPT_LEVEL = 3
# FP8 needs Ada Lovelace (RTX 40) or newer: TensorRT refuses FP8 kernels below compute capability 8.9, and the fork
# does not check it before a calibration of tens of minutes (profile_facts: forkni has no such guard).
FP8_MIN_COMPUTE_CAPABILITY = (8, 9)
# The fork's FP8 path quantises with NVIDIA ModelOpt (it pins nvidia-modelopt; imported as `modelopt`).
FP8_MODULE = "modelopt"


@dataclass(frozen=True)
class Profile:
    static_shapes: bool
    opt_level: int
    fp8: bool


PROFILES: dict[ProfileName, Profile] = {
    "flexible": Profile(static_shapes=False, opt_level=3, fp8=False),
    "fast": Profile(static_shapes=True, opt_level=2, fp8=False),
    "quality": Profile(static_shapes=True, opt_level=3, fp8=False),
    "fp8": Profile(static_shapes=True, opt_level=4, fp8=True),
}


PROFILE_FIELDS = ("static_shapes", "opt_level", "fp8")
# The value a profile's very name states: `--profile fp8 --no-fp8` or `--profile flexible --static-shapes` asks for
# two opposite things, so it is refused with the reason rather than guessed; any other typed flag wins over the
# profile (`--profile fast --opt-level 3` builds level 3, a custom variant).
NAMED_BY: dict[ProfileName, tuple[str, object]] = {"flexible": ("static_shapes", False), "fp8": ("fp8", True)}


def contradicted(name: ProfileName, typed: dict[str, object]) -> str | None:
    """The field among `typed` (the flags a person typed) that says the opposite of the profile's name, if any."""
    field_name, value = NAMED_BY.get(name, ("", None))
    return field_name if field_name in typed and typed[field_name] != value else None


def profile_of(params: BakedParams) -> ProfileName | Literal["custom"]:
    chosen = Profile(static_shapes=params.static_shapes, opt_level=params.opt_level, fp8=params.fp8)
    return next((name for name, profile in PROFILES.items() if profile == chosen), "custom")


def profile_values(name: ProfileName) -> dict[str, object]:
    """The BakedParams fields a profile sets."""
    profile = PROFILES[name]
    return {"static_shapes": profile.static_shapes, "opt_level": profile.opt_level, "fp8": profile.fp8}
