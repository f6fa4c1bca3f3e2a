"""One table (sdprep/features.py) drives what setup installs for each feature the form offers, what the probe imports
for it, and what the form locks and a build refuses when the build Python lacks it: each tested both ways."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from sdprep.features import BY_NAME, FEATURES, OPTIONAL, chosen_for_setup, probe_modules
from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.environment import Environment, probe
from sdprep.jobs.process import ChildSpec
from sdprep.params import DEFAULTS, ControlNetSlot, params_from_values
from sdprep.profiles import profile_values
from sdprep.setup import driver
from sdprep.setup.pins import CUDA_VARIANTS, FORKS, FP8_PACKAGES, WINDOWS_PACKAGES
from sdprep.setup.plan import SetupRequest, features_for, steps
from sdprep.text import word
from sdprep.ui import state
from sdprep.ui.components import ipadapter, profile, resolution
from sdprep.ui.form import Form
from sdprep.ui.views.environment import environment_markdown

from .conftest import STANDIN, runtime_defaults, said

SPEC = ChildSpec(streamdiffusion_src=str(STANDIN))
CU128 = CUDA_VARIANTS[0]


@pytest.fixture
def page_environment() -> Iterator[None]:
    yield
    state.remember_environment(None)


def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Empty packages for `modules` on the build Python's path (the probe only imports them)."""
    site = tmp_path / "site"
    for module in modules:
        folder = site.joinpath(*module.split("."))
        folder.mkdir(parents=True, exist_ok=True)
        while folder != site:
            (folder / "__init__.py").touch()
            folder = folder.parent
    monkeypatch.setenv("PYTHONPATH", str(site))


def reported(**modules: bool) -> Environment:
    """An environment whose probe imported each module of the table, except those given False."""
    answers: dict[str, Any] = {name: {"ok": True} for name in probe_modules()}
    for name, ok in modules.items():
        module = name.replace("__", ".")
        answers[module] = (
            {"ok": True} if ok else {"ok": False, "error": f"ModuleNotFoundError: No module named '{module}'"}
        )
    return Environment(
        {"torch": {"cuda": "12.8", "cuda_available": True, "compute_capability": "8.9"}, "modules": answers}
    )


# --- the table --------------------------------------------------------------------------------------------------


def test_the_table_names_what_the_fork_imports_for_each_feature() -> None:
    assert probe_modules() == [
        "diffusers_ipadapter",
        "insightface",
        "modelopt.onnx.quantization",
        "controlnet_aux",
        "mediapipe",
    ]
    assert {f.name: f.install for f in FEATURES} == {
        "ipadapter": "always",
        "faceid": "request",
        "fp8": "gpu",
        "controlnet_aux": "always",
        "mediapipe": "request",
    }
    assert OPTIONAL == ("faceid", "fp8", "mediapipe")


@pytest.mark.parametrize(
    ("with_", "without", "capability", "expected"),
    [
        ((), (), (8, 9), ["fp8"]),  # an RTX 40 gets FP8 by itself
        ((), (), (12, 0), ["fp8"]),
        ((), (), (8, 6), []),  # an RTX 30 cannot run FP8 kernels
        ((), (), None, []),  # no GPU answered
        (("fp8",), (), (8, 6), ["fp8"]),
        ((), ("fp8",), (8, 9), []),
        (("faceid", "mediapipe"), (), None, ["faceid", "mediapipe"]),
    ],
)
def test_setup_chooses_the_optional_features(
    with_: tuple[str, ...], without: tuple[str, ...], capability: tuple[int, int] | None, expected: list[str]
) -> None:
    assert [f.name for f in chosen_for_setup(with_, without, 12, capability)] == expected


def test_no_fp8_set_outside_cuda_12() -> None:
    assert chosen_for_setup((), (), 13, (9, 0)) == ()


def test_setup_installs_the_chosen_features_after_tensorrt_with_torch_pinned(tmp_path: Path) -> None:
    request = SetupRequest(target=str(tmp_path / "v"), with_features=("faceid",))
    chosen = (BY_NAME["fp8"], BY_NAME["faceid"])
    planned = {s.id: s for s in steps(request, CU128, FORKS["forkni"], tmp_path / "p", tmp_path / "c.txt", chosen)}
    assert list(planned) == ["venv", "torch", "fork", "tensorrt", "features"]
    command = planned["features"].command
    assert command[command.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert command[-len(FP8_PACKAGES) - 1 :] == [*FP8_PACKAGES, "insightface==0.7.3"]
    assert "nvidia-modelopt==0.43.0" in command and "numpy==1.26.4" in command
    # The Windows-only packages go with TensorRT, as the fork's installer does; their markers skip them elsewhere.
    assert planned["tensorrt"].command[-len(WINDOWS_PACKAGES) :] == list(WINDOWS_PACKAGES)
    assert all("sys_platform == 'win32'" in package for package in WINDOWS_PACKAGES)
    without = steps(request, CU128, FORKS["forkni"], tmp_path / "p", tmp_path / "c.txt")
    assert [s.id for s in without] == ["venv", "torch", "fork", "tensorrt"]
    assert request.identity()["with_features"] == ["faceid"]


# --- the probe and the refusals, both ways -----------------------------------------------------------------------


def test_the_probe_imports_each_module_and_a_missing_one_refuses_its_feature_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = probe(SPEC, refresh=True)
    modules = environment.modules
    assert modules["diffusers_ipadapter"] == {"ok": True}  # the stand-in fork's IP-Adapter package
    assert modules["insightface"]["ok"] is False and "No module named 'insightface'" in modules["insightface"]["error"]
    faceid = params_from_values({"use_ipadapter": True, "ipadapter_type": "faceid"})
    (refused,) = [p for p in environment.refusals(faceid) if p.message.code == "feature_not_installed"]
    assert refused.field == "ipadapter_type" and refused.severity == "error"
    text = said(refused.message)
    assert "insightface" in text and "setup --with faceid" in text
    assert "insightface" in word(refused.message, "ru") and text != word(refused.message, "ru")
    assert environment.refusals(params_from_values({"use_ipadapter": True})) == []

    importable(tmp_path, monkeypatch, "insightface", "controlnet_aux")
    again = probe(SPEC, refresh=True)
    assert again.modules["insightface"] == {"ok": True}
    assert [p for p in again.refusals(faceid) if p.message.code == "feature_not_installed"] == []


def test_a_preprocessor_names_its_own_slot_when_controlnet_aux_is_missing() -> None:
    slots = (ControlNetSlot(preprocessor="canny"), ControlNetSlot(preprocessor="openpose"))
    params = params_from_values({"use_controlnet": True, "controlnets": slots})
    refused = reported(controlnet_aux=False).refusals(params)
    assert [(p.field, p.message.code) for p in refused] == [("controlnets[1].preprocessor", "feature_not_installed")]
    assert "setup --upgrade" in said(refused[0].message)  # always installed: the whole stack again
    assert reported().refusals(params) == []


def test_fp8_on_an_older_gpu_is_refused_for_the_gpu_not_for_the_package() -> None:
    environment = reported(modelopt__onnx__quantization=False)
    environment.report["torch"]["compute_capability"] = "8.6"
    fp8 = params_from_values({"static_shapes": True, "opt_level": 4, "fp8": True})
    assert [p.message.code for p in environment.refusals(fp8)] == ["fp8_old_gpu"]


def test_a_build_whose_feature_is_missing_is_refused_before_any_child_work(tmp_path: Path) -> None:
    params = params_from_values(
        {
            "engines_dir": str(tmp_path / "engines"),
            "model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "use_ipadapter": True,
            "ipadapter_type": "faceid",
        }
    )
    result = run_build(params, runtime_defaults(), BuildOptions(child=SPEC))
    assert result.outcome == "refused"
    assert [p.message.code for p in result.problems if p.severity == "error"] == ["feature_not_installed"]
    assert not (tmp_path / "engines").exists() or not any((tmp_path / "engines").rglob("*.engine"))


# --- the form's locks and the Environment tab, both ways ---------------------------------------------------------


def test_the_form_locks_ip_adapter_and_fp8_where_their_packages_are_missing(page_environment: None) -> None:
    form = Form(runtime_defaults())
    with gr.Blocks():
        ipadapter.render(form)
        profile.render(form)
    state.remember_environment(reported(diffusers_ipadapter=False, insightface=False))
    locked = ipadapter.availability(form, DEFAULTS, "en")
    switch = locked[form.fields["use_ipadapter"]]
    assert (
        switch["interactive"] is False
        and "diffusers_ipadapter" in switch["info"]
        and "setup --upgrade" in switch["info"]
    )
    # Already on (a loaded config): it stays changeable so it can be turned off.
    on = params_from_values({"use_ipadapter": True})
    assert ipadapter.availability(form, on, "en")[form.fields["use_ipadapter"]]["interactive"] is True

    state.remember_environment(reported(insightface=False, modelopt__onnx__quantization=False))
    open_ = ipadapter.availability(form, DEFAULTS, "en")
    assert open_[form.fields["use_ipadapter"]]["interactive"] is True
    assert "setup --with faceid" in open_[form.fields["ipadapter_type"]]["info"]
    fp8 = profile.availability(form, DEFAULTS, "en")[form.fields["fp8"]]
    assert fp8["interactive"] is False and "setup --with fp8" in fp8["info"]

    state.remember_environment(reported())
    assert profile.availability(form, DEFAULTS, "en")[form.fields["fp8"]]["interactive"] is True
    free = ipadapter.availability(form, DEFAULTS, "en")
    assert free[form.fields["use_ipadapter"]]["interactive"] is True
    assert "setup --with" not in str(free[form.fields["ipadapter_type"]]["info"])


def test_the_environment_tab_lists_each_feature_with_the_command_that_installs_it() -> None:
    text = environment_markdown(reported(mediapipe=False), None, "en")
    assert "Installed for the form's features" in text
    assert "| MediaPipe preprocessors (mediapipe_pose, mediapipe_segmentation) | ✘ mediapipe:" in text
    assert "setup --with mediapipe" in text and text.count("✔ installed") == len(FEATURES) - 1
    assert "Установлено для возможностей формы" in environment_markdown(reported(), None, "ru")


def test_the_size_sliders_follow_the_profile_with_the_reason_under_flexible() -> None:
    form = Form(runtime_defaults())
    with gr.Blocks():
        resolution.render(form)
    width: Any = form.fields["width"]  # a gr.Slider
    assert width.minimum == 384  # the page starts on Flexible
    flexible = resolution.follow_profile(form, DEFAULTS, "en")[form.fields["height"]]
    assert flexible["minimum"] == 384 and "Flexible" in flexible["info"] and "256" in flexible["info"]
    static = resolution.follow_profile(form, params_from_values(profile_values("fast")), "ru")[form.fields["width"]]
    assert static["minimum"] == 256 and static["maximum"] == 1024 and static["info"] is None


def test_the_page_moves_the_size_floor_with_the_profile_and_says_why(tmp_path: Path) -> None:
    from .ui_helpers import Api, running_app

    with running_app(tmp_path / "app") as app:
        api = Api(app.url)
        try:
            flexible = api.call("/preview", height=256)
            # The slider's range reaches it through a state of its own (common.property_relay), never as an output.
            assert "height" not in flexible
            assert "256 is below 384" in flexible["summary"] + flexible["problems-resolution"]
            fast = api.call("/preview", height=256, static_shapes=True, opt_level=2)
            assert "below 384" not in fast["problems-resolution"]
            assert "height: 256" in fast["yaml-preview"]
        finally:
            api.close()


def test_setup_reads_the_compute_capability_from_nvidia_smi_before_torch_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As nvidia-smi answers on an H100 (`--query-gpu=compute_cap`: "9.0"): FP8 comes by itself; an RTX 3090 (8.6)
    gets none, and without nvidia-smi nothing is claimed."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\ncase "$1" in *compute_cap*) echo "${FAKE_CC:-9.0}";; *) echo 580.159.04;; esac\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(driver.CAPABILITY_ENV, raising=False)
    request = SetupRequest(target=str(tmp_path / "v"))
    assert driver.compute_capability() == (9, 0)
    assert [f.name for f in features_for(request, CU128)] == ["fp8"]
    monkeypatch.setenv("FAKE_CC", "8.6")
    assert features_for(request, CU128) == ()
    monkeypatch.setenv(driver.CAPABILITY_ENV, "8.9")  # the override, as UV_CUDA_DRIVER_VERSION is for the driver
    assert [f.name for f in features_for(request, CU128)] == ["fp8"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.delenv(driver.CAPABILITY_ENV)
    assert driver.compute_capability() is None
