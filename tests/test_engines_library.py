"""The engines library: listing prepared models with their builds, and deleting only inside the engines folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdprep.engines import DeleteRefused, delete_model, list_models
from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.params import params_from_values

from .conftest import STANDIN, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))


def build(engines: Path, **values: object) -> None:
    result = run_build(params_from_values({"engines_dir": str(engines), **values}), runtime_defaults(), OPTIONS)
    assert result.ok, result.reason


def test_lists_models_variants_status_and_sizes(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    build(engines)
    build(engines, denoise_steps=2)
    build(engines, model="stabilityai/sdxl-turbo", width=1024, height=1024)
    models = {model.slug: model for model in list_models(engines)}
    assert set(models) == {"stabilityai--sd-turbo", "stabilityai--sdxl-turbo"}
    turbo = models["stabilityai--sd-turbo"]
    assert turbo.config == engines / "stabilityai--sd-turbo" / "config.yaml"
    statuses = {variant.name.split("-")[0]: variant.status for variant in turbo.variants}
    assert statuses == {"2step": "ready", "1step": "stale"}
    latest = next(v for v in turbo.variants if v.name == turbo.latest_variant)
    assert latest.gpu == "NVIDIA GeForce RTX 4090" and latest.tensorrt == "10.16.1.11"
    assert latest.size > 0 and {e["kind"] for e in latest.engines} == {"unet", "vae_encoder", "vae_decoder"}
    assert "ready" in said(turbo.headline())


def test_missing_engine_files_show_as_missing(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    build(engines)
    (model,) = list_models(engines)
    next((model.folder).rglob("unet.engine")).unlink()
    (model,) = list_models(engines)
    assert model.variants[0].status == "missing"


def test_delete_only_inside_the_engines_folder(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    build(engines)
    outside = tmp_path / "precious"
    outside.mkdir()
    (engines / "not-a-model").mkdir()
    for slug in ("..", "../precious", "", "/", str(outside), "not-a-model", "missing"):
        with pytest.raises(DeleteRefused):
            delete_model(engines, slug)
    assert outside.exists() and (engines / "not-a-model").exists()
    deleted = delete_model(engines, "stabilityai--sd-turbo")
    assert not deleted.exists() and list_models(engines) == []


def test_empty_or_missing_engines_folder(tmp_path: Path) -> None:
    assert list_models(tmp_path / "nothing") == []
    assert list_models(tmp_path) == []


def test_rewritten_engine_files_show_as_changed(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    build(engines)
    (model,) = list_models(engines)
    unet = next(model.folder.rglob("unet.engine"))
    unet.write_bytes(unet.read_bytes() + b"rebuilt elsewhere")
    (model,) = list_models(engines)
    assert model.variants[0].status == "changed"
    assert model.variants[0].changed == [unet.relative_to(model.folder).as_posix()]


def test_a_saved_config_without_a_build_is_listed_with_its_model(tmp_path: Path) -> None:
    from sdprep.config import render_config, write_config
    from sdprep.derive import config_path

    params = params_from_values({"engines_dir": str(tmp_path), "model": "stabilityai/sdxl-turbo"})
    write_config(config_path(params), render_config(params, runtime_defaults()))
    (model,) = list_models(tmp_path)
    assert model.model == "stabilityai/sdxl-turbo" and model.variants == []
