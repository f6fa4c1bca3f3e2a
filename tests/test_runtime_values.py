"""Runtime values a person wrote are never lost: rebuilds, new variants, `build --from-config` and Save keep them.

The order (sdprep/runtime.py): the config being rebuilt or loaded; else the model folder's config.yaml; else
RUNTIME_DEFAULTS. The CLI is run as a user runs it, with the stand-in StreamDiffusion as the build machine; the test
data includes a config in the shape of the fork authors' own (tests/data/forkni/, UTF-8 with a BOM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdprep.config import RUNTIME_CONFIG_KEYS, baked_keys, make_config
from sdprep.config_load import ConfigError
from sdprep.config_write import config_to_write, write_configs
from sdprep.engine_files import fingerprint
from sdprep.params import params_from_values
from sdprep.runtime import load_config, runtime_of
from sdprep.save import save_config

from .conftest import ROOT, runtime_defaults, said
from .conftest import run_cli as run

DEFAULTS = runtime_defaults()
FORK_CONFIG = ROOT / "tests" / "data" / "forkni" / "profiling_quality_ipa.yaml"
FORK_KEYS = json.loads((ROOT / "tests" / "data" / "config_keys_forkni.json").read_text(encoding="utf-8"))
# What the fork config holds that no engine bakes, as the file says it (the IP-Adapter's scale is nested).
FORK_RUNTIME = {
    "prompt": "default fancy banana wall",
    "negative_prompt": "",
    "guidance_scale": 1.0,
    "delta": 1.0,
    "seed": 3115577,
    "num_inference_steps": 50,
    "sampler": "normal",
    "t_index_list": [10, 25],
    "warmup": 10,
    "do_add_noise": False,
    "skip_diffusion": False,
    "cache_interval": 1,
    "enable_similar_image_filter": False,
    "similar_image_filter_threshold": 0.99,
    "similar_image_filter_max_skip_frame": 1,
}


def read(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    assert isinstance(loaded, dict)
    return loaded


def last_path(done: Any) -> Path:
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def edit(path: Path, **values: Any) -> None:
    config = read(path)
    config.update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# --- where the keys stand --------------------------------------------------------------------------------------
def test_every_key_the_fork_reads_is_baked_written_or_carried() -> None:
    """A key of the fork's loader is either written by the app from the parameters, or carried as a runtime value;
    the few left (they change engines the app does not model, or are another spelling) are named here on purpose."""
    made = make_config(params_from_values({"use_controlnet": True, "use_ipadapter": True}), DEFAULTS)
    written = (set(baked_keys()) | set(made)) - set(RUNTIME_CONFIG_KEYS)
    not_carried = {"vae_id", "pin_cache_frames", "device_ids", "controlnet_config", "ipadapters"}
    for key in FORK_KEYS["top_level_keys"]:
        assert (key in written) + (key in RUNTIME_CONFIG_KEYS) + (key in not_carried) == 1, key


def test_t_index_values_are_runtime_its_length_is_baked() -> None:
    config = make_config(params_from_values({"denoise_steps": 2}), DEFAULTS)
    assert fingerprint({**config, "t_index_list": [10, 25]}) == fingerprint(config)
    assert fingerprint({**config, "t_index_list": [10, 25, 40]}) != fingerprint(config)
    assert fingerprint({**config, "warmup": 3, "prompt": "x"}) == fingerprint(config)


# --- the CLI ---------------------------------------------------------------------------------------------------
def test_edit_then_same_build_keeps_the_values_and_the_file(tmp_path: Path) -> None:
    engines = str(tmp_path / "engines")
    path = last_path(run("build", "--engines-dir", engines))
    edit(path, prompt="a cat in the rain", guidance_scale=1.5, t_index_list=[20], warmup=3)
    before = path.read_bytes()
    done = run("build", "--engines-dir", engines)
    assert last_path(done) == path and "Already built" in done.stderr + done.stdout
    assert path.read_bytes() == before, "an up-to-date build never rewrites config.yaml"
    forced = run("build", "--engines-dir", engines, "--force")
    assert last_path(forced) == path
    config = read(path)
    assert (config["prompt"], config["guidance_scale"], config["t_index_list"], config["warmup"]) == (
        "a cat in the rain",
        1.5,
        [20],
        3,
    )


def test_edit_then_new_variant_carries_the_values_and_rederives_a_t_index_of_another_length(tmp_path: Path) -> None:
    engines = str(tmp_path / "engines")
    path = last_path(run("build", "--engines-dir", engines))
    first_variant = read(path)
    edit(path, prompt="a cat in the rain", seed=7, t_index_list=[20], do_add_noise=False)
    done = run("build", "--engines-dir", engines, "--width", "640", "--steps", "2")
    config = read(last_path(done))
    assert (config["width"], config["prompt"], config["seed"], config["do_add_noise"]) == (
        640,
        "a cat in the rain",
        7,
        False,
    )
    assert config["t_index_list"] == [32, 45]
    said_there = done.stdout + done.stderr
    assert "t_index_list [20] from config.yaml" in said_there and "[32, 45] is written instead" in said_there
    # The first variant's own copy keeps the values it was written with.
    copies = {read(copy)["width"]: read(copy) for copy in (path.parent / "configs").glob("*.yaml")}
    assert copies[512] == first_variant and copies[640] == config


def test_from_config_of_the_fork_authors_keeps_every_runtime_value(tmp_path: Path) -> None:
    assert FORK_CONFIG.read_bytes().startswith(b"\xef\xbb\xbf")
    done = run("build", "--from-config", str(FORK_CONFIG), "--engines-dir", str(tmp_path / "e"), cwd=tmp_path)
    config = read(last_path(done))
    for key, value in FORK_RUNTIME.items():
        assert config[key] == value, key
    assert config["ipadapter_config"][0]["scale"] == 0.25
    assert config["static_shapes"] is True and config["builder_optimization_level"] == 3
    assert "Not carried from profiling_quality_ipa.yaml: hf_cache" in done.stderr + done.stdout  # plain on a console
    header = last_path(done).read_text(encoding="utf-8").split("\nmodel_id")[0]
    assert "RUNTIME values from profiling_quality_ipa.yaml" in header
    # Built again from the same file: up to date, the file untouched.
    again = run("build", "--from-config", str(FORK_CONFIG), "--engines-dir", str(tmp_path / "e"), cwd=tmp_path)
    assert read(last_path(again)) == config


def test_from_config_with_controlnet_scales_and_nested_unknown_runtime_keys(tmp_path: Path) -> None:
    config = read(FORK_CONFIG)
    del config["ipadapters"]
    config["use_ipadapter"] = False
    config["controlnets"] = [
        {"model_id": "xinsir/controlnet-canny-sdxl-1.0", "conditioning_scale": 0.3, "preprocessor": "canny"},
        {
            "model_id": "xinsir/controlnet-depth-sdxl-1.0",
            "conditioning_scale": 0.6,
            "preprocessor": "depth",
            "preprocessor_params": {"detect_resolution": 384},
        },
    ]
    config["image_preprocessing"] = {"enabled": True, "processors": [{"type": "blur", "params": {"radius": 2}}]}
    config["fi_strength"] = 0.5
    source = tmp_path / "cn.yaml"
    source.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = run("build", "--config-only", "--from-config", str(source), "--engines-dir", str(tmp_path / "e"))
    written = read(last_path(done))
    assert [item["conditioning_scale"] for item in written["controlnets"]] == [0.3, 0.6]
    assert written["controlnets"][1]["preprocessor_params"] == {"detect_resolution": 384}
    assert written["image_preprocessing"] == config["image_preprocessing"] and written["fi_strength"] == 0.5
    assert written["guidance_scale"] == 1.0 and written["t_index_list"] == [10, 25]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("prompt", 12345),
        ("guidance_scale", ".nan"),
        ("seed", 1.5),
        ("warmup", "x" * 5000),
        ("image_preprocessing", "bomb"),
    ],
)
def test_from_config_refuses_a_runtime_value_it_cannot_carry_naming_the_key(
    key: str, value: Any, tmp_path: Path
) -> None:
    text = FORK_CONFIG.read_text(encoding="utf-8-sig")
    if value == "bomb":
        lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        lines += [
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        text = "\n".join(lines) + f"\n{text}\n{key}: *i\n"
    else:
        text += f"\n{key}: {json.dumps(value) if not isinstance(value, str) or value.startswith('x') else value}\n"
    source = tmp_path / "bad.yaml"
    source.write_text(text, encoding="utf-8")
    done = run("build", "--config-only", "--from-config", str(source), "--engines-dir", str(tmp_path / "e"))
    # An alias bomb is refused while the YAML is read (bounded_yaml), before any key is looked at.
    assert (
        done.returncode == 2
        and (key in done.stderr or "not a config" in done.stderr)
        and "--from-config" in done.stderr
    )
    assert not (tmp_path / "e").exists()


# --- the one writer (Build and Save) ---------------------------------------------------------------------------
def test_save_follows_the_same_rule_and_a_loaded_config_wins(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path)})
    first = save_config(params, DEFAULTS)
    assert first.config_path is not None and "the defaults" in " ".join(said(n) for n in first.notes)
    edit(first.config_path, prompt="kept", delta=0.5)
    before = first.config_path.read_bytes()
    again = save_config(params, DEFAULTS)
    assert first.config_path.read_bytes() == before and "left as it is" in said(again.notes[0])
    wider = save_config(params_from_values({"engines_dir": str(tmp_path), "width": 640}), DEFAULTS)
    assert wider.config_path and read(wider.config_path)["prompt"] == "kept"
    shutil.copy(FORK_CONFIG, tmp_path / "fork.yaml")
    loaded_params, _, loaded = load_config(tmp_path / "fork.yaml")
    loaded_params = params_from_values({**loaded_params.__dict__, "engines_dir": str(tmp_path)})
    saved = save_config(loaded_params, DEFAULTS, loaded)
    assert saved.config_path and read(saved.config_path)["prompt"] == "default fancy banana wall"
    assert saved.variant_path and read(saved.variant_path)["seed"] == 3115577


def test_the_written_config_has_the_fingerprint_of_its_engines(tmp_path: Path) -> None:
    params, _, loaded = load_config(FORK_CONFIG)
    params = params_from_values({**params.__dict__, "engines_dir": str(tmp_path)})
    target = config_to_write(params, DEFAULTS, loaded)
    assert fingerprint(target.config) == fingerprint(make_config(params, DEFAULTS))
    written = write_configs(target, "v")
    assert read(written.config_path) == read(written.variant_path) == target.config


def test_a_folder_config_with_a_bad_runtime_value_falls_back_to_the_defaults_with_a_note(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path)})
    first = save_config(params, DEFAULTS)
    assert first.config_path is not None
    edit(first.config_path, prompt=["not", "text"], width=640)
    target = config_to_write(params, DEFAULTS)
    assert target.config["prompt"] == "" and "prompt" in said(target.notes[0])


def test_runtime_of_counts_and_names_what_it_carries() -> None:
    runtime = runtime_of(read(FORK_CONFIG), "loaded", "profiling_quality_ipa.yaml")
    names = runtime.names()
    assert set(FORK_RUNTIME) <= set(names) and "ipadapter_config[0].scale" in names
    for bad in ("no", [], [10, 10**100], [True], [-1]):
        with pytest.raises(ConfigError):
            runtime_of({"t_index_list": bad}, "loaded", "x.yaml")
