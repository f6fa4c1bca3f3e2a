"""Validation: every rule, all problems at once, each tied to its field with a severity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdprep.params import BakedParams, params_from_values
from sdprep.text import word
from sdprep.validate import Problem, has_errors, validate


def make(**values: object) -> BakedParams:
    return params_from_values(values)


def fields(problems: list[Problem], severity: str = "error") -> set[str]:
    return {p.field for p in problems if p.severity == severity}


def messages(problems: list[Problem], field: str) -> str:
    return " ".join(word(p.message) for p in problems if p.field == field)


def test_defaults_are_clean(tmp_path: Path) -> None:
    assert validate(make(engines_dir=str(tmp_path))) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    params = make(
        width=300,
        height=2000,
        lora_json="{bad",
        use_controlnet=True,
        controlnets=[{"model_id": "", "conditioning_channels": 0}],
        use_ipadapter=True,
        ipadapter_model_path="",
        ipadapter_encoder_path="",
        engines_dir=str(tmp_path),
    )
    assert fields(validate(params)) == {
        "width",
        "height",
        "lora_json",
        "controlnets[0].model_id",
        "controlnets[0].conditioning_channels",
        "ipadapter_model_path",
        "ipadapter_encoder_path",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{bad", "not valid JSON"),
        ('{"a/b": "high"}', "must be a number"),
        ('{"": 1}', "empty LoRA id"),
        ('{"latent-consistency/lcm-lora-sdv1-5": 1}', "choose it under Consistency LoRA"),
        ('{"/no/such/lora.safetensors": 1}', "does not exist"),
    ],
)
def test_lora_json_errors(text: str, fragment: str, tmp_path: Path) -> None:
    problems = validate(make(lora_json=text, engines_dir=str(tmp_path)))
    assert "lora_json" in fields(problems)
    assert fragment in messages(problems, "lora_json")


def test_lora_scale_zero_is_a_warning(tmp_path: Path) -> None:
    problems = validate(make(lora_json='{"a/b": 0}', engines_dir=str(tmp_path)))
    assert not has_errors(problems) and "lora_json" in fields(problems, "warning")


@pytest.mark.parametrize(
    ("width", "ok"), [(512, True), (1024, True), (384, True), (516, False), (248, False), (1032, False), (320, False)]
)
def test_size_rules(width: int, ok: bool, tmp_path: Path) -> None:
    """Under the default Flexible profile; a static profile goes down to 256 (test_core_rules)."""
    problems = validate(make(width=width, engines_dir=str(tmp_path)))
    assert ("width" not in fields(problems)) is ok


@pytest.mark.parametrize(
    ("width", "ok"), [(256, True), (320, True), (248, False), (260, False), (1024, True), (1032, False)]
)
def test_size_rules_static(width: int, ok: bool, tmp_path: Path) -> None:
    problems = validate(make(width=width, static_shapes=True, opt_level=2, engines_dir=str(tmp_path)))
    assert ("width" not in fields(problems)) is ok


def test_local_model_must_exist(tmp_path: Path) -> None:
    problems = validate(make(model=str(tmp_path / "missing.safetensors"), engines_dir=str(tmp_path)))
    assert "does not exist" in messages(problems, "model")
    model = tmp_path / "real.safetensors"
    model.write_bytes(b"0")
    assert "model" not in fields(validate(make(model=str(model), engines_dir=str(tmp_path))))


def test_folder_model_must_be_diffusers(tmp_path: Path) -> None:
    folder = tmp_path / "notamodel"
    folder.mkdir()
    assert "model_index.json" in messages(validate(make(model=str(folder), engines_dir=str(tmp_path))), "model")


def test_controlnet_slot_rules(tmp_path: Path) -> None:
    params = make(
        use_controlnet=True,
        controlnets=[
            {"model_id": "a/b", "conditioning_channels": -1},
            {"model_id": "a/b", "preprocessor": "my_custom"},
            {"model_id": "c/d", "conditioning_channels": 2.5},
        ],
        engines_dir=str(tmp_path),
    )
    problems = validate(params)
    assert fields(problems) == {"controlnets[0].conditioning_channels", "controlnets[2].conditioning_channels"}
    assert {"controlnets[1].model_id", "controlnets[1].preprocessor"} <= fields(problems, "warning")


def test_more_than_three_controlnets(tmp_path: Path) -> None:
    params = make(
        use_controlnet=True, controlnets=[{"model_id": f"a/b{i}"} for i in range(4)], engines_dir=str(tmp_path)
    )
    assert "controlnets" in fields(validate(params))


def test_controlnet_slots_ignored_when_off(tmp_path: Path) -> None:
    params = make(use_controlnet=False, controlnets=[{"model_id": ""}], engines_dir=str(tmp_path))
    assert validate(params) == []


def test_ipadapter_rules(tmp_path: Path) -> None:
    sd15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    problems = validate(
        make(model=sd15, consistency_lora="lcm", use_ipadapter=True, ipadapter_tokens=16, engines_dir=str(tmp_path))
    )
    assert "ipadapter_tokens" in fields(problems, "warning") and not has_errors(problems)
    plus = make(
        model=sd15,
        consistency_lora="lcm",
        use_ipadapter=True,
        ipadapter_tokens=16,
        ipadapter_model_path="h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
        engines_dir=str(tmp_path),
    )
    assert validate(plus) == []
    # SD 2.1 has no IP-Adapter: the fork turns a known one off, so it would not be baked (an error, with the fix).
    sd21 = validate(make(use_ipadapter=True, engines_dir=str(tmp_path)))
    assert "use_ipadapter" in fields(sd21)
    assert [p.message.code for p in sd21 if p.field == "use_ipadapter"] == ["ipadapter_none_for_sd21"]


def test_no_lcm_lora_for_sd21(tmp_path: Path) -> None:
    problems = validate(make(model="stabilityai/sd-turbo", consistency_lora="lcm", engines_dir=str(tmp_path)))
    assert "no LCM LoRA for SD 2.1" in messages(problems, "consistency_lora")
    assert "consistency_lora" in fields(problems)


@pytest.mark.parametrize(
    ("steps", "cfg", "scheduler", "ok"),
    [
        (4, "self", "lcm", True),
        (5, "self", "lcm", False),
        (2, "full", "lcm", True),
        (3, "full", "lcm", False),
        (3, "initialize", "lcm", True),
        (4, "initialize", "lcm", False),
        (8, "full", "tcd", True),
    ],
)
def test_unet_batch_limit_of_the_config_route(steps: int, cfg: str, scheduler: str, ok: bool, tmp_path: Path) -> None:
    params = make(denoise_steps=steps, cfg_type=cfg, scheduler=scheduler, engines_dir=str(tmp_path))
    problems = validate(params)
    assert ("denoise_steps" not in fields(problems)) is ok
    if not ok:
        assert "UNet batch" in messages(problems, "denoise_steps")
        assert validate(params, max_unet_batch=16) == [p for p in problems if p.field != "denoise_steps"]


def test_cache_maxframes_range_only_with_cached_attention(tmp_path: Path) -> None:
    assert "cache_maxframes" in fields(
        validate(make(use_cached_attn=True, cache_maxframes=9, engines_dir=str(tmp_path)))
    )
    assert validate(make(use_cached_attn=False, cache_maxframes=9, engines_dir=str(tmp_path))) == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root can write anywhere")
def test_engines_folder_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "not writable" in messages(validate(make(engines_dir=str(locked / "engines"))), "engines_dir")
    finally:
        locked.chmod(0o700)


def test_engines_folder_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert "is a file" in messages(validate(make(engines_dir=str(target))), "engines_dir")


def test_unknown_family_is_a_warning(tmp_path: Path) -> None:
    problems = validate(make(model="someone/plain-model", consistency_lora="lcm", engines_dir=str(tmp_path)))
    assert "model_family" in fields(problems, "warning")


def test_engines_folder_not_writable_as_seen_by_os_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI runs as root, where chmod cannot make a folder read-only; os.access is what validate asks.
    monkeypatch.setattr("sdprep.validate.os.access", lambda path, mode: False)
    assert "not writable" in messages(validate(make(engines_dir=str(tmp_path / "e"))), "engines_dir")


def test_controlnet_on_without_slots_is_a_warning(tmp_path: Path) -> None:
    problems = validate(make(use_controlnet=True, engines_dir=str(tmp_path)))
    assert not has_errors(problems) and "use_controlnet" in fields(problems, "warning")
