"""The config: StreamDiffusion's schema, runtime defaults, atomic YAML, and an exact round trip."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from sdprep import derive
from sdprep.config import RuntimeDefaults, make_config, render_config, write_config
from sdprep.config_load import ConfigError, params_from_config, read_config
from sdprep.params import params_from_values
from sdprep.paths import atomic_write_text
from sdprep.text import word
from testkit.processes import run as run_process

from .conftest import ROOT, STANDIN, runtime_defaults
from .strategies import baked_params

LOADER_KEYS = json.loads((ROOT / "tests" / "data" / "config_keys_forkni.json").read_text())["top_level_keys"]
# Keys other forks read (min/max batch: the seed's vendored fork) that the newest fork ignores harmlessly.
OTHER_FORK_KEYS = {"min_batch_size", "max_batch_size"}

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SCENARIOS: dict[str, dict[str, Any]] = {
    "sd-turbo 1 step none self 512": {"model": "stabilityai/sd-turbo", "denoise_steps": 1, "cfg_type": "self"},
    "sd1.5 4 steps lcm": {"model": SD15, "denoise_steps": 4, "consistency_lora": "lcm"},
    "sdxl-turbo 2 steps": {"model": "stabilityai/sdxl-turbo", "denoise_steps": 2, "width": 1024, "height": 1024},
    "two controlnets": {
        "model": SD15,
        "consistency_lora": "lcm",
        "denoise_steps": 2,
        "use_controlnet": True,
        "controlnets": [
            {"model_id": "lllyasviel/control_v11p_sd15_canny", "preprocessor": "canny"},
            {"model_id": "lllyasviel/control_v11f1p_sd15_depth", "preprocessor": "depth", "conditioning_channels": 3},
        ],
    },
    "ip-adapter plus": {
        "model": SD15,
        "consistency_lora": "lcm",
        "use_ipadapter": True,
        "ipadapter_model_path": "h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
        "ipadapter_tokens": 16,
        "ipadapter_type": "plus",
    },
    "cached attention": {"model": "stabilityai/sd-turbo", "use_cached_attn": True, "cache_maxframes": 2},
    "quality profile 2 steps full": {"model": SD15, "denoise_steps": 2, "cfg_type": "full", "static_shapes": True},
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_config_uses_only_loader_keys_with_right_types(
    name: str, runtime: RuntimeDefaults, tmp_path: Path
) -> None:
    params = params_from_values({**SCENARIOS[name], "engines_dir": str(tmp_path)})
    config = make_config(params, runtime)
    for key, value in config.items():
        assert key in LOADER_KEYS or key in OTHER_FORK_KEYS, f"{key} is not read by StreamDiffusion"
        default = LOADER_KEYS.get(key, {}).get("default_value")
        if isinstance(default, bool):
            assert isinstance(value, bool), key
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        elif isinstance(default, str):
            assert isinstance(value, str), key
    assert config["acceleration"] == "tensorrt"
    batch = derive.unet_batch(params)
    if params.static_shapes:  # exactly the batch these settings need
        assert config["min_batch_size"] == config["max_batch_size"] == batch
    else:  # what the page promises for dynamic shapes: any batch 1-4 at runtime
        assert config["min_batch_size"] == 1 and config["max_batch_size"] == max(4, batch)
    assert config["engine_dir"].endswith(config["engine_dir"].rsplit("/", 1)[-1])


def test_runtime_defaults_go_into_every_config(runtime: RuntimeDefaults, tmp_path: Path) -> None:
    params = params_from_values({**SCENARIOS["two controlnets"], "use_ipadapter": True, "engines_dir": str(tmp_path)})
    config = make_config(params, runtime)
    assert (config["sampler"], config["guidance_scale"], config["delta"]) == ("normal", 1.2, 0.7)
    assert (config["prompt"], config["negative_prompt"], config["seed"]) == ("", "blurry, low quality", 2)
    assert [item["conditioning_scale"] for item in config["controlnets"]] == [1.0, 1.0]
    assert config["ipadapter_config"][0]["scale"] == 0.7


def test_ipadapter_goes_in_the_raw_form_with_tokens(runtime: RuntimeDefaults, tmp_path: Path) -> None:
    config = make_config(params_from_values({**SCENARIOS["ip-adapter plus"], "engines_dir": str(tmp_path)}), runtime)
    assert config["use_ipadapter"] is True and "ipadapters" not in config
    assert config["ipadapter_config"] == [
        {
            "ipadapter_model_path": "h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
            "image_encoder_path": "h94/IP-Adapter/models/image_encoder",
            "scale": 0.7,
            "enabled": True,
            "type": "plus",
            "num_image_tokens": 16,
        }
    ]


def _wrapper_params_via_standin(config: dict[str, Any]) -> dict[str, Any]:
    """What the stand-in of StreamDiffusion's own config loader hands to the wrapper (in a child, like a build)."""
    code = (
        "import json, sys; from streamdiffusion.config import _extract_wrapper_params as x; "
        "print(json.dumps(x(json.load(sys.stdin)), default=str))"
    )
    env = {**os.environ, "PYTHONPATH": str(STANDIN)}
    done = run_process([sys.executable, "-c", code], input=json.dumps(config), env=env, check=True)
    params: dict[str, Any] = json.loads(done.stdout)
    return params


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_loader_hands_the_wrapper_what_was_chosen(name: str, runtime: RuntimeDefaults, tmp_path: Path) -> None:
    params = params_from_values({**SCENARIOS[name], "engines_dir": str(tmp_path)})
    config = make_config(params, runtime)
    wrapper = _wrapper_params_via_standin(yaml.safe_load(render_config(params, runtime)))
    assert wrapper["model_id_or_path"] == params.model
    assert wrapper["t_index_list"] == config["t_index_list"]
    assert (wrapper["width"], wrapper["height"]) == (params.width, params.height)
    assert wrapper["engine_dir"] == config["engine_dir"]
    assert wrapper["cfg_type"] == params.cfg_type
    assert wrapper.get("use_controlnet", False) == params.use_controlnet
    if params.use_ipadapter:
        assert wrapper["ipadapter_config"][0]["num_image_tokens"] == params.ipadapter_tokens
    if config.get("lora_dict"):
        assert wrapper["lora_dict"] == config["lora_dict"]


def test_yaml_has_header_stable_order_and_utf8(runtime: RuntimeDefaults, tmp_path: Path) -> None:
    params = params_from_values({"model": str(tmp_path / "модель.safetensors"), "engines_dir": str(tmp_path)})
    (tmp_path / "модель.safetensors").write_bytes(b"0")
    text = render_config(params, runtime)
    assert text.startswith("# StreamDiffusion config")
    assert "BAKED" in text and "RUNTIME" in text
    assert "модель" in text
    assert list(yaml.safe_load(text)) == list(make_config(params, runtime))
    assert render_config(params, runtime) == text


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "config.yaml"
    write_config(target, "old: 1\n")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sdprep.paths.os.fsync", full_disk)
    with pytest.raises(OSError):
        atomic_write_text(target, "new: 2\n")
    assert target.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"], "no temp file left behind"


def test_reads_ipadapters_form_and_custom_t_index(tmp_path: Path) -> None:
    config = {
        "model_id": SD15,
        "t_index_list": [10, 40],
        "engine_dir": str(tmp_path / "e" / "x"),
        "scheduler": "lcm",
        "lora_dict": {"latent-consistency/lcm-lora-sdv1-5": 1.0, "me/style": 0.5},
        "ipadapters": [{"ipadapter_model_path": "a/b/c.bin", "image_encoder_path": "a/b/enc", "type": "faceid"}],
    }
    params, notes = params_from_config(config)
    # Its length is the step count; its values are runtime values the written config keeps (test_runtime_values.py).
    assert params.denoise_steps == 2 and not any("t_index_list" in word(note) for note in notes)
    assert params.consistency_lora == "lcm" and json.loads(params.lora_json) == {"me/style": 0.5}
    assert params.use_ipadapter and params.ipadapter_type == "faceid" and params.ipadapter_tokens == 4
    assert params.engines_dir == str(tmp_path / "e")


def test_read_config_errors_are_sentences(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_id: [unclosed")
    for path, fragment in ((bad, "not valid YAML"), (tmp_path / "missing.yaml", "does not exist")):
        with pytest.raises(ConfigError) as raised:
            read_config(path)
        assert fragment in word(raised.value.message)
    with pytest.raises(ConfigError) as raised:
        params_from_config({"width": 512})
    assert "no model_id" in word(raised.value.message)


# --- property: config.yaml loads back into the same baked parameters ----------------------------------------


@settings(max_examples=300, deadline=None)
@given(baked_params())
def test_config_round_trip_is_exact(params: Any) -> None:
    text = render_config(params, runtime_defaults())
    loaded, notes = params_from_config(yaml.safe_load(text))
    assert loaded == params
    assert notes == []
