"""Rules a new user meets first: one range for the size, families that agree, one message per mistake, and
messages that say what to do (no "None", human units, Hugging Face ids named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdprep.cli.args import flag_for
from sdprep.jobs.environment import Environment
from sdprep.messages import Problem
from sdprep.params import SIZE_RANGE, SPECS, BakedParams, params_from_values, size_range
from sdprep.profiles import profile_values
from sdprep.text import word
from sdprep.validate import validate

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def make(tmp_path: Path, **values: object) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path), **values})


def problems_of(params: BakedParams, field: str) -> list[Problem]:
    return [problem for problem in validate(params) if problem.field == field]


def test_one_size_range_for_the_slider_the_flag_and_the_rules(tmp_path: Path) -> None:
    assert SPECS["width"].bounds == SPECS["height"].bounds == SIZE_RANGE == (256, 1024)
    low, high = SIZE_RANGE
    static = profile_values("quality")
    assert problems_of(make(tmp_path, width=low, **static), "width") == []
    too_small = problems_of(make(tmp_path, width=low - 8, **static), "width")
    assert [p.message.code for p in too_small] == ["out_of_range"] and f"from {low} to {high}" in word(
        too_small[0].message
    )
    assert f"[{low}-{high}, a multiple of 8;" in pytest.importorskip("sdprep.cli.args")._help("width", "en")


@pytest.mark.parametrize("name", ["fast", "quality", "fp8"])
def test_static_profiles_build_from_256_and_flexible_from_384_with_the_reason(tmp_path: Path, name: str) -> None:
    assert size_range(True) == (256, 1024) and size_range(False) == (384, 1024)
    assert problems_of(make(tmp_path, height=256, **profile_values(name)), "height") == []  # type: ignore[arg-type]
    (problem,) = problems_of(make(tmp_path, height=256, **profile_values("flexible")), "height")
    assert problem.severity == "error" and problem.message.code == "size_dynamic_floor"
    text = word(problem.message)
    assert "256 is below 384" in text and "Flexible" in text and "down to 256" in text
    assert problems_of(make(tmp_path, height=384), "height") == []


def test_a_controlnet_of_another_family_is_an_error_offering_the_right_one(tmp_path: Path) -> None:
    params = make(tmp_path, use_controlnet=True, controlnets=[{"model_id": "lllyasviel/control_v11f1p_sd15_depth"}])
    (problem,) = problems_of(params, "controlnets[0].model_id")
    assert problem.severity == "error" and "thibaud/controlnet-sd21-depth-diffusers" in word(problem.message)
    sdxl = make(
        tmp_path,
        model=SD15,
        consistency_lora="lcm",
        use_controlnet=True,
        controlnets=[{"model_id": "xinsir/controlnet-canny-sdxl-1.0"}],
    )
    (problem,) = problems_of(sdxl, "controlnets[0].model_id")
    assert "lllyasviel/control_v11p_sd15_canny" in word(problem.message)


def test_an_explicit_family_that_contradicts_a_known_model_is_a_warning(tmp_path: Path) -> None:
    (problem,) = problems_of(make(tmp_path, model_family="sdxl"), "model_family")
    assert problem.severity == "warning" and "SD 2.1" in word(problem.message) and "SDXL" in word(problem.message)


def test_ipadapter_on_sd21_is_not_baked_silently(tmp_path: Path) -> None:
    (problem,) = problems_of(make(tmp_path, use_ipadapter=True), "use_ipadapter")
    assert problem.severity == "error" and "Turn IP-Adapter off" in word(problem.message)
    wrong = make(tmp_path, model="stabilityai/sdxl-turbo", width=1024, height=1024, use_ipadapter=True)
    (problem,) = problems_of(wrong, "ipadapter_model_path")
    assert "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.bin" in word(problem.message)


def test_too_many_controlnets_is_one_problem(tmp_path: Path) -> None:
    params = make(tmp_path, use_controlnet=True, controlnets=[{"model_id": f"me/cn{i}"} for i in range(4)])
    assert [p.field for p in validate(params) if p.severity == "error"] == ["controlnets"]


def test_a_bare_word_as_a_controlnet_names_hugging_face_ids(tmp_path: Path) -> None:
    (problem,) = problems_of(
        make(tmp_path, use_controlnet=True, controlnets=[{"model_id": "a"}]), "controlnets[0].model_id"
    )
    assert "Hugging Face id" in word(problem.message) and "does not exist on disk" not in word(problem.message)


@pytest.mark.parametrize(
    ("steps", "cfg", "fbs", "fix", "not_fix"),
    [(1, "full", 4, "frame buffer of 1", "step(s)"), (4, "full", 1, "at most 2 step", "frame buffer")],
)
def test_the_batch_message_offers_only_fixes_that_fit(
    tmp_path: Path, steps: int, cfg: str, fbs: int, fix: str, not_fix: str
) -> None:
    (problem,) = problems_of(make(tmp_path, denoise_steps=steps, cfg_type=cfg, frame_buffer_size=fbs), "denoise_steps")
    text = word(problem.message).split("To fit", 1)[1]
    assert fix in text and not_fix not in text


def test_messages_name_no_none_and_use_human_units() -> None:
    missing = Environment(
        {"torch": {"version": "2.5.1", "cuda": None, "cuda_available": False}, "tensorrt": {"error": "X"}}
    )
    line = word(missing.machine_line())
    assert "None" not in line and "no GPU" in line
    vram = Environment(
        {"torch": {"version": "2.11.0", "cuda": "13.0", "gpu_name": "NVIDIA H200", "vram_total": 150_126_322_688}}
    )
    assert "139.8 GiB" in word(vram.machine_line())
    assert all("None" not in word(message) for message in missing.missing())


def test_an_installed_streamdiffusion_with_a_broken_dependency_is_not_called_missing() -> None:
    report = {
        "torch": {"version": "2.8.0", "cuda": "12.8", "cuda_available": True},
        "tensorrt": {"version": "10.16.1.11"},
        "streamdiffusion": {
            "error": "ImportError: tokenizers>=0.21 is required",
            "installed": True,
            "failed_module": "transformers",
        },
    }
    (line,) = Environment(report).missing()
    text = word(line)
    assert "is installed, but importing it fails in its dependency transformers" in text and "not installed" not in text


def test_cli_names_slots_by_flag() -> None:
    assert flag_for("controlnets[1].model_id") == "--controlnet #2" and flag_for("denoise_steps") == "--steps"


@pytest.mark.parametrize(
    ("code", "fragment"), [(3, "exited with code 3"), (-11, "segmentation fault"), (-9, "SIGKILL"), (0, "normally")]
)
def test_how_a_child_ended_is_worded(code: int, fragment: str) -> None:
    from sdprep.jobs.process import exit_message

    assert fragment in word(exit_message(code))
