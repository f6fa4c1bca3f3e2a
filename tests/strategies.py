"""Hypothesis strategies for BakedParams, derived from the declarations in sdprep/params.py.

A choice draws from its Literal, a switch from booleans, a bounded number from its bounds, text from the
declaration's `examples`; only the two composite fields (the LoRA JSON and the ControlNet slots) are spelled out.
A new declared parameter is drawn without touching this file.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from sdprep.derive import consistency_lora_id
from sdprep.params import (
    PREPROCESSORS,
    SIZE_STEP,
    SPECS,
    TYPES,
    BakedParams,
    ControlNetSlot,
    choices_of,
    params_from_values,
)

LORA_IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8).map(lambda s: f"me/{s}")
CONTROLNET_IDS = ("lllyasviel/control_v11p_sd15_canny", "a/b", "thibaud/controlnet-sd21-depth-diffusers")
# Beyond the declared examples, for what quotes values for a shell: local paths with a space and a quote, what
# cmd.exe reads itself (%VAR%, !VAR!, ^ & | < > ( ) "), backslashes before a quote and at the end (the C runtime's
# quoting trap), and a value that starts with "-" (once read as a flag).
ODD_PATHS = ("/tmp/my models/it's.safetensors", '/tmp/%PATH%& "x" ^!y! (z)<a>|b\\"c\\', "-h94/IP-Adapter")
ODD_CONTROLNETS = ("/tmp/my cn", "-lllyasviel/control_v11p_sd15_canny", "C:\\cn dir\\")


def slots(odd_paths: bool = False) -> st.SearchStrategy[ControlNetSlot]:
    return st.builds(
        ControlNetSlot,
        model_id=st.sampled_from((*CONTROLNET_IDS, *(ODD_CONTROLNETS if odd_paths else ()))),
        preprocessor=st.sampled_from(PREPROCESSORS),
        conditioning_channels=st.one_of(st.none(), st.integers(1, 8)),
        enabled=st.booleans(),
    )


def field_strategy(name: str, odd_paths: bool = False) -> st.SearchStrategy[Any]:
    """Valid values of one declared field, from its declaration (choices, type, bounds, examples)."""
    spec = SPECS[name]
    if name == "controlnets":
        return st.lists(slots(odd_paths), max_size=3)
    if name == "lora_json":
        scales = st.floats(-2, 2, allow_nan=False).map(lambda f: round(f, 3))
        return st.dictionaries(LORA_IDS, scales, max_size=3).map(json.dumps)
    choices = choices_of(name)
    if choices is not None:
        return st.sampled_from(choices)
    if TYPES[name] is bool:
        return st.booleans()
    if spec.bounds is not None:
        low, high = spec.bounds
        if name in ("width", "height"):
            return st.integers(low // SIZE_STEP, high // SIZE_STEP).map(lambda n: n * SIZE_STEP)
        return st.integers(low, high)
    if not spec.examples:
        raise AssertionError(f"declare examples for the text field {name!r} (params.py)")
    extra = ODD_PATHS if odd_paths and name in ("model", "ipadapter_model_path") else ()
    return st.sampled_from((*spec.examples, *extra))


@st.composite
def baked_params(draw: st.DrawFn) -> BakedParams:
    values = {name: draw(field_strategy(name)) for name in SPECS}
    values["engines_dir"] = draw(st.sampled_from(["/srv/engines", "/tmp/e e/engines"]))
    params = params_from_values(values)
    # A consistency LoRA that does not exist for the family is a validation error, never written.
    if params.consistency_lora != "none" and consistency_lora_id(params) is None:
        params = params_from_values({**values, "consistency_lora": "none"})
    return params
