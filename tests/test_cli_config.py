"""The CLI's --config-only path, run as a user would: a real subprocess of gradio_prepare.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from testkit.processes import run as run_process

from .conftest import ROOT, runtime_defaults
from .conftest import run_cli as run


def test_runtime_defaults_are_exactly_the_spec() -> None:
    assert runtime_defaults() == {
        "sampler": "normal",
        "guidance_scale": 1.2,
        "delta": 0.7,
        "prompt": "",
        "negative_prompt": "blurry, low quality",
        "seed": 2,
        "controlnet_conditioning_scale": 1.0,
        "ipadapter_scale": 0.7,
    }


def test_config_only_writes_config_and_prints_its_path_last(tmp_path: Path) -> None:
    done = run("build", "--config-only", "--engines-dir", str(tmp_path / "engines"))
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "engines" / "stabilityai--sd-turbo" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["model_id"] == "stabilityai/sd-turbo" and config["t_index_list"] == [32]
    assert config["negative_prompt"] == "blurry, low quality"


def test_every_flag_reaches_the_config(tmp_path: Path) -> None:
    done = run(
        "build",
        "--config-only",
        "--model", "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "--steps", "2",
        "--consistency-lora", "lcm",
        "--cfg-type", "initialize",
        "--width", "640",
        "--height", "384",
        "--no-tiny-vae",
        "--cached-attn",
        "--cache-maxframes", "3",
        "--safety-checker",
        "--lora", '{"me/style": 0.5}',
        "--controlnet", "lllyasviel/control_v11p_sd15_canny,preprocessor=canny,channels=3",
        "--controlnet", "lllyasviel/control_v11f1p_sd15_depth,preprocessor=depth,enabled=false",
        "--ipadapter", "h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
        "--ipadapter-encoder", "h94/IP-Adapter/models/image_encoder",
        "--ipadapter-tokens", "16",
        "--ipadapter-type", "regular",
        "--engines-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(Path(done.stdout.splitlines()[-1]).read_text())
    assert config["t_index_list"] == [32, 45] and config["cfg_type"] == "initialize"
    assert (config["width"], config["height"], config["use_tiny_vae"]) == (640, 384, False)
    assert config["use_cached_attn"] and config["cache_maxframes"] == 3 and config["use_safety_checker"]
    assert config["lora_dict"] == {"latent-consistency/lcm-lora-sdv1-5": 1.0, "me/style": 0.5}
    # Flexible (dynamic shapes): any batch 1-4 at runtime, as the page says; this form needs 3 of them.
    assert (config["min_batch_size"], config["max_batch_size"]) == (1, 4)
    assert [c["preprocessor"] for c in config["controlnets"]] == ["canny", "depth"]
    assert config["controlnets"][0]["conditioning_channels"] == 3
    assert config["controlnets"][1]["enabled"] is False
    assert config["ipadapter_config"][0]["num_image_tokens"] == 16


def test_invalid_input_exit_2_every_problem_nothing_written(tmp_path: Path) -> None:
    done = run(
        "build", "--config-only", "--width", "500", "--lora", "{oops", "--controlnet", "a/b,channels=x",
        "--steps", "4", "--cfg-type", "full", "--engines-dir", str(tmp_path / "e"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "--width" in done.stderr and "--lora" in done.stderr and "--controlnet #1" in done.stderr
    assert "--steps" in done.stderr and "UNet batch" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "e").exists()


def test_four_controlnets_are_refused(tmp_path: Path) -> None:
    args = [arg for i in range(4) for arg in ("--controlnet", f"a/b{i}")]
    done = run("build", "--config-only", *args, "--engines-dir", str(tmp_path))
    assert done.returncode == 2 and "at most 3" in done.stderr


@pytest.mark.parametrize("bad", [["--cfg-type", "half"], ["--steps", "two"], ["--ipadapter-tokens", "8"]])
def test_argparse_rejections_are_exit_2(bad: list[str], tmp_path: Path) -> None:
    done = run("build", "--config-only", *bad, "--engines-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())


def test_relative_engines_dir_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    done = run("build", "--config-only", "--engines-dir", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((tmp_path / "out" / "stabilityai--sd-turbo" / "config.yaml").read_text())
    assert config["engine_dir"] == (tmp_path / "out" / "stabilityai--sd-turbo").as_posix()


@pytest.mark.parametrize(
    "args", [("--help",), ("build", "--help"), ("--lang", "ru", "build", "--help"), ("setup", "--help")]
)
def test_help_does_not_import_gradio(args: tuple[str, ...]) -> None:
    """--help is instant: the headless commands (and help) never import the web UI's libraries."""
    done = run_process([sys.executable, "-X", "importtime", str(ROOT / "gradio_prepare.py"), *args])
    assert done.returncode == 0 and "usage:" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "gradio" not in imported


def test_help_speaks_russian_with_lang_ru() -> None:
    done = run("build", "--lang", "ru", "--help")
    assert done.returncode == 0 and "запекаемые параметры" in done.stdout


def test_a_build_that_does_not_ask_the_hub_does_not_import_its_client(tmp_path: Path) -> None:
    """Offline (or the Hub known out of reach) the CLI asks nothing: importing the HTTP client alone cost 0.1 s of
    every `build`, most of the up-to-date answer's time past its 200 ms goal."""
    command = [sys.executable, "-X", "importtime", str(ROOT / "gradio_prepare.py"), "build", "--config-only"]
    done = run_process(
        [*command, "--engines-dir", str(tmp_path / "engines")], env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "httpx" not in imported and "sdprep" in imported
