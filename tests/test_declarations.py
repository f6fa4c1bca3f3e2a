"""Every baked parameter is complete: a CLI flag, a widget on the page, a label in English and Russian, a config key
that loads back, and a place in the identity of the engines it reaches. A field that lacks any of them fails here.

Each check derives its expectations from the declaration itself (sdprep/params.py), so forgetting a place is caught,
not silently accepted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sdprep.cli import build_parser
from sdprep.config import make_config
from sdprep.config_load import params_from_config
from sdprep.engine_files import FILE_KINDS, EngineSlot, slot_key
from sdprep.params import DEFAULTS, SPECS, TYPES, BakedParams, ControlNetSlot, choices_of, params_from_values
from sdprep.text import TABLE

from .conftest import runtime_defaults

FIELDS = list(SPECS)
# A valid value other than the default, for fields whose other value the type does not give.
CANNY = ControlNetSlot(model_id="thibaud/controlnet-sd21-canny-diffusers", preprocessor="canny")
OTHER_VALUES: dict[str, Any] = {
    "model": "stabilityai/sdxl-turbo",
    "consistency_lora": "tcd",  # the default model is SD 2.1, which has a TCD LoRA but no LCM one
    "lora_json": '{"me/style": 0.5}',
    # The same ControlNet with another baked value: its engine (one folder per model id) must not be reused.
    "controlnets": (dataclasses.replace(CANNY, conditioning_channels=4),),
    "ipadapter_model_path": "h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
    "ipadapter_encoder_path": "h94/IP-Adapter/models/image_encoder_plus",
    "engines_dir": "/srv/other-engines",
}
# Fields shown only when another is on: changed together with it.
ENABLERS: dict[str, dict[str, Any]] = {
    "controlnets": {"use_controlnet": True, "controlnets": (CANNY,)},
    "cache_maxframes": {"use_cached_attn": True},
    "ipadapter_model_path": {"use_ipadapter": True, "model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
    "ipadapter_encoder_path": {"use_ipadapter": True, "model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
    "ipadapter_tokens": {"use_ipadapter": True, "model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
    "ipadapter_type": {"use_ipadapter": True, "model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
    "scheduler": {"consistency_lora": "none"},
}


def other_value(name: str) -> Any:
    if name in OTHER_VALUES:
        return OTHER_VALUES[name]
    default = getattr(DEFAULTS, name)
    choices = choices_of(name)
    if choices is not None:
        return next(choice for choice in choices if choice != default and choice != "auto")
    if TYPES[name] is bool:
        return not default
    _, high = SPECS[name].bounds or (0, 0)
    step = 8 if name in ("width", "height") else 1
    return default + step if default + step <= high else default - step


def pair(name: str) -> tuple[BakedParams, BakedParams]:
    """Default params and the same with only `name` (and what enables it) changed."""
    base = {"engines_dir": "/srv/engines", **ENABLERS.get(name, {})}
    changed = {**base, name: other_value(name)}
    return params_from_values(base), params_from_values(changed)


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_has_a_cli_flag(name: str) -> None:
    subparsers = build_parser("en")._subparsers
    assert subparsers is not None
    choices = subparsers._group_actions[0].choices
    assert isinstance(choices, dict)
    build = next(action for action in choices["build"]._actions if SPECS[name].flag in action.option_strings)
    assert build is not None


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_field_has_a_label_in_both_languages(name: str, lang: str) -> None:
    label = TABLE[lang].get(f"f_{name}")
    assert label, f"f_{name} is missing in the {lang} table"
    if lang == "ru":
        assert label != TABLE["en"][f"f_{name}"], "the Russian label is a translation"


def test_every_field_has_a_widget_on_the_page() -> None:
    from sdprep.ui.app import create_demo
    from sdprep.ui.form import Form

    forms: list[Form] = []
    original = Form.__init__

    def capture(self: Form, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        forms.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Form, "__init__", capture)
        create_demo(runtime_defaults())
    (form,) = forms
    shown = set(form.fields) | ({"controlnets"} if form.slots else set())
    assert set(FIELDS) <= shown, f"no widget for {sorted(set(FIELDS) - shown)}"


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_reaches_the_config_and_loads_back(name: str) -> None:
    before, after = pair(name)
    assert getattr(before, name) != getattr(after, name), "the pair differs in this field"
    runtime = runtime_defaults()
    assert make_config(before, runtime) != make_config(after, runtime), f"{name} does not reach config.yaml"
    loaded, _ = params_from_config(make_config(after, runtime), engines_dir=after.engines_dir)
    assert getattr(loaded, name) == getattr(after, name), f"{name} does not load back from config.yaml"


@pytest.mark.parametrize("name", [name for name in FIELDS if SPECS[name].engines])
def test_every_field_enters_the_identity_of_the_engines_it_reaches(name: str) -> None:
    before, after = pair(name)
    runtime = runtime_defaults()
    old, new = make_config(before, runtime), make_config(after, runtime)
    slots = [EngineSlot(kind) for kind in FILE_KINDS if kind != "cnet"]
    slots += [EngineSlot("cnet", item["model_id"]) for item in new.get("controlnets") or []]
    changed = {slot.kind for slot in slots if slot_key(slot, old) != slot_key(slot, new)}
    reached = {FILE_KINDS[kind] for kind in changed}
    declared = SPECS[name].engines
    assert reached, f"{name} changes no engine's key: an engine built for another value would be reused"
    assert reached <= declared | {"cnet"} or declared == reached, f"{name} reaches {reached}, declared {declared}"


def test_the_declaration_is_the_only_list_of_fields() -> None:
    assert [f.name for f in dataclasses.fields(BakedParams)] == FIELDS
