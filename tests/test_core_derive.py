"""Derived values: t_index_list, scheduler, family, consistency LoRA, LoRA dict, UNet batch, slug, folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sdprep import derive
from sdprep.family import detect_family
from sdprep.params import BakedParams, params_from_values
from sdprep.text import word


def make(**values: object) -> BakedParams:
    return params_from_values(values)


@pytest.mark.parametrize("steps", range(1, 9))
def test_t_index_presets_are_valid_for_the_50_step_schedule(steps: int) -> None:
    indices = derive.t_index_list(make(denoise_steps=steps))
    assert len(indices) == steps
    assert indices == sorted(set(indices)), "strictly ascending"
    assert all(0 <= i < derive.NUM_INFERENCE_STEPS for i in indices)
    assert steps == 1 or indices[-1] == 45


def test_t_index_known_presets() -> None:
    assert derive.t_index_list(make(denoise_steps=1)) == [32]
    assert derive.t_index_list(make(denoise_steps=2)) == [32, 45]
    assert derive.t_index_list(make(denoise_steps=3)) == [22, 32, 45]


def test_scheduler_follows_consistency_lora_else_pipeline_scheduler() -> None:
    assert derive.scheduler(make(consistency_lora="lcm", scheduler="tcd")) == "lcm"
    assert derive.scheduler(make(consistency_lora="tcd", scheduler="lcm")) == "tcd"
    assert derive.scheduler(make(consistency_lora="none", scheduler="tcd")) == "tcd"
    assert derive.scheduler(make(consistency_lora="none", scheduler="lcm")) == "lcm"


@pytest.mark.parametrize(
    ("model", "family", "source"),
    [
        ("stabilityai/sd-turbo", "sd2.1", "known_model"),
        ("stabilityai/sdxl-turbo", "sdxl", "known_model"),
        ("KBlueLeaf/kohaku-v2.1", "sd1.5", "known_model"),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1.5", "known_model"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "known_model"),
        ("someone/juggernautXL_v9", "sdxl", "name"),
        ("someone/my-sd21-finetune", "sd2.1", "name"),
        ("someone/dreamshaper-8", "sd1.5", "assumed"),
    ],
)
def test_family_detection(model: str, family: str, source: str) -> None:
    guess = detect_family(model)
    assert (guess.family, guess.source) == (family, source)


def test_family_from_a_diffusers_folder_unet_config(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
    assert detect_family(str(tmp_path)).family == "sd2.1"
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"addition_embed_type": "text_time"}))
    assert detect_family(str(tmp_path)).family == "sdxl"


@pytest.mark.parametrize(
    ("model", "lora", "expected"),
    [
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "lcm", "latent-consistency/lcm-lora-sdv1-5"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "lcm", "latent-consistency/lcm-lora-sdxl"),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "tcd", "h1t/TCD-SD15-LoRA"),
        ("stabilityai/sd-turbo", "tcd", "h1t/TCD-SD21-base-LoRA"),
        ("stabilityai/sdxl-turbo", "tcd", "h1t/TCD-SDXL-LoRA"),
        ("stabilityai/sd-turbo", "lcm", None),  # there is no LCM LoRA for SD 2.1
        ("stabilityai/sd-turbo", "none", None),
    ],
)
def test_consistency_lora_by_family(model: str, lora: str, expected: str | None) -> None:
    assert derive.consistency_lora_id(make(model=model, consistency_lora=lora)) == expected


def test_explicit_family_overrides_detection() -> None:
    params = make(model="someone/odd-name", model_family="sdxl", consistency_lora="lcm")
    assert derive.consistency_lora_id(params) == "latent-consistency/lcm-lora-sdxl"


def test_lora_dict_puts_consistency_lora_first_then_users() -> None:
    params = make(
        model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        consistency_lora="lcm",
        lora_json='{"me/style": 0.8, "me/other": 1}',
    )
    assert list(derive.lora_dict(params).items()) == [
        ("latent-consistency/lcm-lora-sdv1-5", 1.0),
        ("me/style", 0.8),
        ("me/other", 1.0),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a/b": "x"}', "must be a number"),
        ('{"a/b": true}', "must be a number"),
        ('{"  ": 1}', "empty LoRA id"),
    ],
)
def test_parse_lora_json_rejects_with_a_sentence(text: str, fragment: str) -> None:
    with pytest.raises(derive.InvalidLoras) as raised:
        derive.parse_lora_json(text)
    assert fragment in word(raised.value.message)


@pytest.mark.parametrize("text", ['{"a/b": NaN}', '{"a/b": Infinity}', '{"a/b": -Infinity}', '{"a/b": 1e400}'])
def test_parse_lora_json_refuses_non_finite_scales(text: str) -> None:
    # NaN and infinities would be written to config.yaml as .nan / .inf; 1e400 parses as infinity.
    with pytest.raises(derive.InvalidLoras) as raised:
        derive.parse_lora_json(text)
    assert raised.value.message.code == "lora_not_finite"


@pytest.mark.parametrize(
    ("steps", "cfg", "scheduler", "fbs", "batch"),
    [
        (1, "self", "lcm", 1, 1),
        (4, "none", "lcm", 1, 4),
        (2, "full", "lcm", 1, 4),
        (3, "full", "lcm", 1, 6),
        (3, "initialize", "lcm", 1, 4),
        (4, "initialize", "lcm", 1, 5),
        (8, "full", "tcd", 1, 1),
        (2, "self", "lcm", 2, 4),
        (3, "self", "tcd", 2, 2),
    ],
)
def test_unet_batch_formula(steps: int, cfg: str, scheduler: str, fbs: int, batch: int) -> None:
    params = make(denoise_steps=steps, cfg_type=cfg, scheduler=scheduler, frame_buffer_size=fbs)
    assert derive.unet_batch(params) == batch


def test_slug_examples() -> None:
    assert derive.model_slug("stabilityai/sd-turbo") == "stabilityai--sd-turbo"
    assert derive.model_slug("/models/My Model.safetensors") == "My-Model"
    assert derive.model_slug("C:\\models\\kohaku-v2.1") == "kohaku-v2.1"
    assert derive.model_slug("/x/CON.safetensors") == "model-CON"
    assert derive.model_slug("/x/..") == "model"


WINDOWS_FORBIDDEN = set('<>:"/\\|?*')


@given(st.text(min_size=1, max_size=300))
@example("~0")  # "~user" for a user that does not exist: pathlib's expanduser raises there
def test_slug_is_safe_for_any_input(model: str) -> None:
    slug = derive.model_slug(model)
    assert slug and len(slug) <= derive.SLUG_MAX
    assert not set(slug) & WINDOWS_FORBIDDEN
    assert all(ord(c) >= 32 for c in slug)
    assert slug not in (".", "..") and not slug.endswith((".", " ")) and not slug.startswith(".")
    assert slug.split(".")[0].lower() not in derive._RESERVED_WINDOWS
    assert derive.model_slug(model) == slug, "stable"


def test_long_names_keep_distinct_slugs() -> None:
    a, b = "owner/" + "x" * 80 + "a", "owner/" + "x" * 80 + "b"
    assert derive.model_slug(a) != derive.model_slug(b)


def test_engine_dir_and_config_path(tmp_path: Path) -> None:
    params = make(engines_dir=str(tmp_path / "engines"))
    assert derive.engine_dir(params) == tmp_path / "engines" / "stabilityai--sd-turbo"
    assert derive.config_path(params) == tmp_path / "engines" / "stabilityai--sd-turbo" / "config.yaml"


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"x")
    params = make(model="./m.safetensors", engines_dir="engines")
    assert params.model == str(tmp_path / "m.safetensors")
    assert params.engines_dir == str(tmp_path / "engines")


def test_variant_name_reads_as_the_key_parameters() -> None:
    assert derive.variant_name(make()) == "1step-self-512x512"
    name = derive.variant_name(
        make(
            model="stable-diffusion-v1-5/stable-diffusion-v1-5",
            denoise_steps=4,
            consistency_lora="lcm",
            use_controlnet=True,
            controlnets=[{"model_id": "a/b"}],
        )
    )
    assert name == "4step-self-512x512-lcm-cn1"
