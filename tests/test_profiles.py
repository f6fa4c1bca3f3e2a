"""Build profiles (Flexible / Fast build / Quality / FP8): what the probed fork and GPU can build decides what the form
offers, a profile is part of the engines' identity, and what the fork reports after a build is checked against it."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from sdprep import estimate as est
from sdprep.engines import list_models
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.environment import Environment, probe
from sdprep.jobs.process import ChildSpec
from sdprep.params import DEFAULTS, BakedParams, params_from_values
from sdprep.profiles import profile_values
from sdprep.text import word
from sdprep.ui import state
from sdprep.ui.components import profile
from sdprep.ui.form import Form
from sdprep.ui.views.params import profile_availability

from .conftest import STANDIN, runtime_defaults, said

SPEC = ChildSpec(streamdiffusion_src=str(STANDIN))
OPTIONS = BuildOptions(child=SPEC)
Usage = namedtuple("Usage", "total used free")


def make(tmp_path: Path, profile_name: str = "flexible", **values: Any) -> BakedParams:
    chosen = profile_values(profile_name)  # type: ignore[arg-type]  # a profile name
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **chosen, **values})


def build(params: BakedParams) -> BuildResult:
    return run_build(params, runtime_defaults(), OPTIONS)


def probed(monkeypatch: pytest.MonkeyPatch, **env: str) -> Environment:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return probe(SPEC, refresh=True)


@pytest.fixture
def modelopt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NVIDIA ModelOpt importable in the build Python: the module the fork's FP8 path imports, empty (the probe only
    imports it)."""
    site = tmp_path / "site"
    package = site / "modelopt" / "onnx" / "quantization"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(site))


@pytest.fixture
def roomy_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """FP8 needs the fork's 28 GiB floor free; play a disk that has it."""
    monkeypatch.setattr(est.report, "disk_usage", lambda path: Usage(2048 * est.GIB, 1024 * est.GIB, 1024 * est.GIB))


@pytest.fixture
def page_environment() -> Iterator[None]:
    yield
    state.remember_environment(None)


# --- what the fork and the GPU can build -----------------------------------------------------------------------


def test_a_loader_without_the_profile_keys_leaves_only_flexible_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = probed(monkeypatch, STANDIN_SD_FORK="livepeer")
    assert environment.features["config_profile_keys"] is False and environment.features["config_fp8"] is False
    others, fp8 = profile_availability(environment, DEFAULTS, "en")
    assert "ignores static_shapes and builder_optimization_level" in others
    assert "cannot build FP8" in fp8
    assert profile_availability(environment, DEFAULTS, "ru")[0] not in ("", others)  # worded in Russian too
    refused = build(make(tmp_path, "quality"))
    assert refused.outcome == "refused"
    assert [(p.field, p.message.code) for p in refused.problems if p.severity == "error"] == [
        ("static_shapes", "profile_keys_ignored")
    ]
    flexible = build(make(tmp_path))
    assert flexible.outcome == "built" and flexible.problems == []
    # That fork writes no build_stats.json, so the engines' seconds are unknown, not made up.
    record = next(
        iter(
            json.loads((tmp_path / "engines" / "stabilityai--sd-turbo" / "build.json").read_text())["variants"].values()
        )
    )
    assert {item["seconds"] for item in record["actual"]["engines"]} == {None}
    assert not list((tmp_path / "engines").rglob("build_stats.json"))


def test_the_form_locks_the_profile_where_the_fork_cannot_build_it(
    monkeypatch: pytest.MonkeyPatch, page_environment: None
) -> None:
    state.remember_environment(probed(monkeypatch, STANDIN_SD_FORK="livepeer"))
    form = Form(runtime_defaults())
    with gr.Blocks():
        profile.render(form)
    updates = profile.availability(form, DEFAULTS, "en")
    radio = updates[form.profile.radio]
    assert radio["interactive"] is False and "Only Flexible builds as chosen here" in radio["info"]
    assert "ignores static_shapes" in radio["info"]
    fp8 = updates[form.fields["fp8"]]
    assert fp8["interactive"] is False and fp8["info"].startswith("FP8 cannot be built here: ")
    # A profile loaded from a config that cannot build here stays changeable, so Flexible can be chosen back.
    quality = profile.availability(form, params_from_values(profile_values("quality")), "en")
    assert quality[form.profile.radio]["interactive"] is True
    assert quality[form.fields["static_shapes"]]["interactive"] is True


def test_fp8_is_offered_only_on_ada_or_newer_with_modelopt(
    monkeypatch: pytest.MonkeyPatch, modelopt: None, page_environment: None
) -> None:
    old_gpu = probed(monkeypatch, STANDIN_CC="8.6", STANDIN_GPU_NAME="NVIDIA GeForce RTX 3090")
    others, fp8 = profile_availability(old_gpu, DEFAULTS, "en")
    assert others == "" and "compute capability 8.9" in fp8 and "RTX 3090" in fp8
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.setenv("STANDIN_CC", "8.9")
    no_modelopt = probe(SPEC, refresh=True)
    reason = profile_availability(no_modelopt, DEFAULTS, "en")[1]
    assert "modelopt.onnx.quantization" in reason and "setup --with fp8" in reason
    state.remember_environment(no_modelopt)
    form = Form(runtime_defaults())
    with gr.Blocks():
        profile.render(form)
    updates = profile.availability(form, DEFAULTS, "en")
    assert updates[form.profile.radio]["interactive"] is True  # Fast build and Quality still build
    assert "FP8 cannot be built here" in updates[form.profile.radio]["info"]
    assert updates[form.fields["fp8"]]["interactive"] is False


# --- a profile is part of the engines' identity ------------------------------------------------------------------


def test_a_fast_and_a_quality_build_both_exist_and_neither_is_reused_for_the_other(tmp_path: Path) -> None:
    fast = build(make(tmp_path, "fast"))
    quality = build(make(tmp_path, "quality"))
    assert fast.outcome == quality.outcome == "built"
    assert "fast" in str(fast.variant) and "quality" in str(quality.variant)
    unet = {result.variant: next(e for e in result.engines if e["kind"] == "unet") for result in (fast, quality)}
    assert unet[fast.variant]["path"] != unet[quality.variant]["path"]
    assert not unet[quality.variant]["reused"], "Quality must not reuse the Fast build's UNet"
    folder = tmp_path / "engines" / "stabilityai--sd-turbo"
    manifest = json.loads((folder / "build.json").read_text())
    assert set(manifest["variants"]) == {fast.variant, quality.variant}
    keys = {manifest["engines"][engine["path"]]["key"] for engine in unet.values()}
    assert len(keys) == 2  # the manifest keys differ: opt_level enters the UNet's identity
    assert build(make(tmp_path, "fast")).outcome == "up_to_date"
    assert build(make(tmp_path, "quality")).outcome == "up_to_date"
    (model,) = list_models(tmp_path / "engines")
    assert {variant.profile for variant in model.variants} == {"fast", "quality"}


# --- what the fork reports -------------------------------------------------------------------------------------


def test_an_fp8_build_without_quantised_layers_is_a_warning_not_a_plain_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modelopt: None, roomy_disk: None
) -> None:
    monkeypatch.setenv("STANDIN_FP8_QDQ_LAYERS", "none")
    result = build(make(tmp_path, "fp8"))
    assert result.outcome == "built", result.reason
    (warning,) = [p for p in result.problems if p.message.code == "fp8_no_qdq"]
    assert warning.severity == "warning" and warning.field == "fp8"
    assert result.reason.code == "build_built_warned"
    text = said(result.reason)
    assert text.startswith("Built 3 engine(s) in ") and " But: the FP8 UNet engine has no quantised layers" in text
    assert "fp8_onnx_quantize: ImportError" in text
    assert "Но: в движке UNet FP8 нет квантованных слоёв" in word(result.reason, "ru")


def test_an_fp8_build_with_quantised_layers_is_a_plain_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modelopt: None, roomy_disk: None
) -> None:
    result = build(make(tmp_path, "fp8"))
    assert result.outcome == "built" and result.problems == [], result.problems
    assert result.reason.code == "build_built_estimated"
    folder = tmp_path / "engines" / "stabilityai--sd-turbo"
    unet = folder / next(e["path"] for e in result.engines if e["kind"] == "unet")
    stats = json.loads((unet.parent / "build_stats.json").read_text())
    assert stats["fp8_qdq_layers"] == 1848 and "fp8_calib_capture" in stats["stages"]
    monkeypatch.setenv("STANDIN_FP8_QDQ_LAYERS", "120")
    few = build(params_from_values({**make(tmp_path, "fp8").__dict__, "width": 640}))
    assert [p.message.code for p in few.problems] == ["fp8_few_qdq"]
    assert "only 120 quantised layers" in said(few.problems[0].message)


# --- on the page -------------------------------------------------------------------------------------------------


def test_the_page_shows_the_lock_the_estimate_and_the_command(tmp_path: Path) -> None:
    from .ui_helpers import Api, running_app

    with running_app(tmp_path / "app", {"STANDIN_SD_FORK": "livepeer"}) as app:
        api = Api(app.url)
        try:
            api.call("/probe_environment")
            out = api.call("/preview", denoise_steps=2)
            # The locks reach the radio and the fields through states of their own, which the page's script
            # applies (test_ui_browser.py::test_the_profile_lock_reaches_the_page sees them there).
            assert "profile" not in out and "fp8" not in out
            assert out["estimate"].startswith("#### Estimate before building")
            assert "**Build time:** " in out["estimate"] and "reference table" in out["estimate"]
            assert out["command-line"] == (
                f"python gradio_prepare.py build --steps=2 --engines-dir={(tmp_path / 'app' / 'engines').resolve()}"
            )
            russian = api.call("/preview", lang="ru")
            assert russian["estimate"].startswith("#### Оценка перед сборкой")
        finally:
            api.close()


# --- explicit beats profile (the CLI) ----------------------------------------------------------------------------
def parsed(*flags: str) -> tuple[BakedParams, list[str]]:
    """The parameters and the problems (as the CLI words them) of `build FLAGS`."""
    from sdprep.cli import build_parser
    from sdprep.cli.args import params_from_args

    params, problems = params_from_args(build_parser("en").parse_args(["build", *flags]))
    return params, [str(problem) for problem in problems]


@pytest.mark.parametrize(
    ("flags", "expected", "variant"),
    [
        (["--profile", "fast", "--no-static-shapes"], (False, 2, False), "custom"),  # once wrote static_shapes: true
        (["--profile", "fast", "--opt-level", "3", "--no-static-shapes"], (False, 3, False), "flexible"),
        (["--profile", "fp8", "--opt-level", "3"], (True, 3, True), "custom"),  # a flag equal to its default counts
        (["--opt-level", "5", "--profile", "quality"], (True, 5, False), "custom"),  # in any order
        (["--profile", "quality", "--no-fp8", "--static-shapes"], (True, 3, False), "quality"),  # agreeing: the same
        (["--no-static-shapes"], (False, 3, False), "flexible"),
    ],
)
def test_a_flag_typed_beside_a_profile_wins_over_it(
    flags: list[str], expected: tuple[bool, int, bool], variant: str
) -> None:
    from sdprep.profiles import profile_of

    params, problems = parsed(*flags)
    assert problems == []
    assert (params.static_shapes, params.opt_level, params.fp8) == expected
    assert profile_of(params) == variant


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--profile", "fp8", "--no-fp8"], "--no-fp8"), (["--static-shapes", "--profile", "flexible"], "--static-shapes")],
)
def test_a_flag_against_the_profile_it_names_is_refused_with_the_reason(
    flags: list[str], named: str, tmp_path: Path
) -> None:
    import io

    from sdprep.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    argv = ["build", *flags, "--config-only", "--engines-dir", str(tmp_path / "e"), "--lang", "en"]
    code = cli_main(argv, runtime_defaults(), serve=lambda a: 0, out=out, err=err)
    assert code == 2, err.getvalue()
    assert f"{named} says the opposite of --profile {flags[flags.index('--profile') + 1]}" in err.getvalue()
    assert not (tmp_path / "e").exists()
