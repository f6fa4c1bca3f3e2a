"""The rehearsal (sdprep/child/rehearse_build.py, sdprep/jobs/rehearsal.py) against the stand-ins.

The child makes a tiny model with the (stand-in) diffusers/transformers classes, builds it through the fork's own
create_wrapper_from_config(config, compile_engines_only=True), loads the engines and runs a frame. Every stand-in
fault mode must fail at its own stage; a Build rehearses first (and remembers a pass); Cancel stops it; the CLI's
`doctor --rehearse` and `build --no-rehearse` do what they say.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdprep.config import make_config
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.environment import Environment, probe
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.jobs.rehearsal import Rehearsal, RehearsalResult, run_rehearsal
from sdprep.messages import has_errors
from sdprep.params import BakedParams, params_from_values
from sdprep.validate import validate
from tests.strategies import baked_params

from .conftest import ROOT, STANDIN, run_cli, runtime_defaults, said

SCRIPT = ROOT / "sdprep" / "child" / "rehearse_build.py"
SPEC = ChildSpec(streamdiffusion_src=str(STANDIN))
RUNTIME = runtime_defaults()
ALL_STAGES = ["imports", "tiny_model", "export", "builder", "load", "frame"]


@pytest.fixture(autouse=True)
def rehearsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDPREP_REHEARSE", "1")  # conftest turns it off for the other tests


def make(tmp_path: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def run_child(
    params: BakedParams, tmp: Path, env: dict[str, str] | None = None, path: Path = STANDIN
) -> dict[str, Any]:
    """The child, run by path as the job runs it; its result event."""
    work = tmp / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    job = tmp / "job.json"
    job.write_text(json.dumps({"config": make_config(params, RUNTIME), "work_dir": str(work)}))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    child_env.update(PYTHONPATH=str(path), **(env or {}))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(job)], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("@@sdprep")]
    result = [event for event in results if event["event"] == "result"]
    assert len(result) == 1, proc.stdout
    answer: dict[str, Any] = result[0]
    return answer


def without(tmp: Path, *names: str) -> Path:
    """The stand-ins without some packages: a machine where they are not installed."""
    copy = tmp / "standin-without"
    shutil.copytree(STANDIN, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for name in names:  # top-level packages only: streamdiffusion has an acceleration/tensorrt of its own
        shutil.rmtree(copy / name)
    return copy


# ------------------------------------------------------------------------------------------------------ the child


def test_a_rehearsal_passes_every_stage_and_leaves_out_only_downloads(tmp_path: Path) -> None:
    params = make(tmp_path, use_safety_checker=True, use_ipadapter=True)
    result = run_child(params, tmp_path)
    assert result["passed"] is True, result
    assert result["reached"] == ALL_STAGES and result["failed_stage"] is None
    assert set(result["engines"]) == {"unet.engine", "vae_encoder.engine", "vae_decoder.engine"}
    assert set(result["left_out"]) == {"safety_checker", "ipadapter"}
    # The tiny model is a diffusers folder of the family, made from configs.
    model = tmp_path / "work" / "models" / "sd-turbo"
    index = json.loads((model / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    unet = json.loads((model / "unet" / "config.json").read_text())
    assert unet["cross_attention_dim"] == 1024  # sd-turbo is an SD 2.1: the family's text width stays real
    assert (tmp_path / "work" / "models" / "tiny-vae" / "config.json").is_file()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=baked_params().filter(lambda p: not has_errors(validate(p))), controlnets=st.integers(0, 2))
def test_every_combination_the_form_allows_passes(tmp_path: Path, params: BakedParams, controlnets: int) -> None:
    slots = [{"model_id": "lllyasviel/control_v11p_sd15_canny", "preprocessor": "canny"}] * controlnets
    values = {**params.__dict__, "engines_dir": str(tmp_path / "engines"), "model": "stabilityai/sd-turbo"}
    values.update(use_controlnet=bool(controlnets), controlnets=slots)
    chosen = params_from_values(values)
    if has_errors(validate(chosen)):
        return
    result = run_child(chosen, tmp_path)
    assert result["passed"] is True, (chosen, result)
    assert result["engines"].count("cnet.engine") == controlnets
    assert ("preprocessors" in result["left_out"]) == bool(controlnets)  # canny: passed through, and said


@pytest.mark.parametrize(
    ("env", "remove", "stage", "said_in_error"),
    [
        ({}, ("diffusers_ipadapter",), "imports", "No module named 'diffusers_ipadapter'"),
        ({"STANDIN_SD_BROKEN_DEP": "controlnet_aux"}, (), "imports", "No module named 'controlnet_aux'"),
        ({"STANDIN_SD_MODE": "exporterror"}, (), "export", "The size of tensor a (8192) must match"),
        ({"STANDIN_TRT_CUDA_MAJOR": "13"}, (), "builder", "factory function returned nullptr"),
        ({"STANDIN_SD_MODE": "fallback"}, (), "builder", "no unet.engine was written and nothing failed"),
        ({"STANDIN_SD_MODE": "loadfail"}, (), "load", "UNet engine batch mismatch"),
        ({"STANDIN_SD_MODE": "rebuild_on_load"}, (), "load", "loading the engines rewrote them"),
    ],
    ids=[
        "missing-ipadapter",
        "missing-dependency",
        "export-error",
        "builder-error",
        "silent-fallback",
        "load",
        "rebuild",
    ],
)
def test_each_fault_fails_at_its_stage(
    tmp_path: Path, env: dict[str, str], remove: tuple[str, ...], stage: str, said_in_error: str
) -> None:
    path = without(tmp_path, *remove) if remove else STANDIN
    result = run_child(make(tmp_path), tmp_path, env, path)
    assert result["passed"] is False and result["failed_stage"] == stage, result
    assert result["reached"] == ALL_STAGES[: ALL_STAGES.index(stage)]
    assert said_in_error in result["error"], result["error"]
    if remove:
        assert result["failed_module"] == "diffusers_ipadapter"


def test_without_tensorrt_it_stops_at_the_builder_saying_how_far_it_got(tmp_path: Path) -> None:
    result = run_child(make(tmp_path), tmp_path, path=without(tmp_path, "tensorrt"))
    assert result["tensorrt_missing"] is True and result["stopped_at_builder_without_tensorrt"] is True
    assert result["failed_stage"] == "builder" and result["reached"] == ["imports", "tiny_model", "export"]


def test_the_script_imports_only_the_standard_library() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import rehearse_build; "
        "bad = [m for m in ('torch', 'tensorrt', 'streamdiffusion', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(STANDIN)}
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# -------------------------------------------------------------------------------------------------------- the job


def rehearse(params: BakedParams, spec: ChildSpec = SPEC, **options: Any) -> tuple[RehearsalResult, list[JobEvent]]:
    events: list[JobEvent] = []
    config = make_config(params, RUNTIME)
    return run_rehearsal(params, config, spec, events.append, **options), events


def test_a_passed_rehearsal_is_remembered_per_environment_and_parameters(tmp_path: Path) -> None:
    first, events = rehearse(make(tmp_path))
    assert first.outcome == "passed" and not first.cached, said(first.reason)
    assert "Rehearsal passed" in said(first.reason)
    stages = [said(e.message) for e in events if e.kind == "stage"]
    assert stages[1:] == [
        "Rehearsal: importing what a build imports",
        "Rehearsal: making a tiny model of this family",
        "Rehearsal: exporting the tiny model to ONNX",
        "Rehearsal: building tiny TensorRT engines",
        "Rehearsal: loading the engines as an inference script does",
        "Rehearsal: running one frame",
    ]
    again, events = rehearse(make(tmp_path))
    assert again.outcome == "passed" and again.cached and "not repeated" in said(again.reason)
    assert not any(e.kind == "stage" and "Rehearsal:" in said(e.message) for e in events)
    other, _ = rehearse(make(tmp_path, width=768))
    assert other.outcome == "passed" and not other.cached, "other parameters are rehearsed anew"
    forced, _ = rehearse(make(tmp_path), use_cache=False)
    assert not forced.cached


def test_a_failure_says_the_stage_what_got_through_and_the_fix(tmp_path: Path) -> None:
    spec = ChildSpec(streamdiffusion_src=str(without(tmp_path, "diffusers_ipadapter")))
    result, _ = rehearse(make(tmp_path), spec, use_cache=False)
    text = said(result.reason)
    assert result.outcome == "failed" and result.failed_stage == "imports"
    assert "failed at the imports stage" in text and "diffusers_ipadapter" in text and "setup --upgrade" in text


def test_it_shows_the_diffusers_warning_for_the_users_cfg_type(tmp_path: Path) -> None:
    """A diffusers the fork does not pin fails cfg_type full at run time: the rehearsal says so, and still passes."""
    probed = probe(SPEC)
    pypi = {"installed": True, "version": "0.35.1", "url": None, "commit": None, "wanted": None}
    environment = Environment({**probed.report, "diffusers": pypi})
    params = make(tmp_path, cfg_type="full")
    events: list[JobEvent] = []
    job = Rehearsal(params, make_config(params, RUNTIME), SPEC, events.append, threading.Event(), environment)
    result = job.run()
    assert result.outcome == "passed", said(result.reason)
    assert [problem.field for problem in result.problems] == ["cfg_type"]
    assert "cfg_type full fails at run time" in said(result.problems[0].message)
    assert any("cfg_type full fails" in said(e.message) for e in events if e.kind == "log")
    plain = Rehearsal(
        make(tmp_path), make_config(make(tmp_path), RUNTIME), SPEC, events.append, threading.Event(), environment
    )
    assert plain.run().problems == [], "cfg_type self works with it"


def test_it_takes_the_probed_forks_batch_limit_not_the_narrow_default(tmp_path: Path) -> None:
    """A UNet batch above 4 (4 steps of cfg full) is the fork's to allow: rehearsed where its loader takes it,
    refused with the fork's reason where it does not."""
    probed = probe(SPEC)
    params = make(tmp_path, cfg_type="full", denoise_steps=4)
    assert has_errors(validate(params)), "wider than the config route's default"
    for wide in (True, False):
        fork = {**probed.streamdiffusion, "features": {**probed.features, "config_batch_bounds": wide}}
        environment = Environment({**probed.report, "streamdiffusion": fork})
        job = Rehearsal(params, make_config(params, RUNTIME), SPEC, lambda event: None, threading.Event(), environment)
        result = job.run()
        if wide:
            assert result.outcome != "refused", said(result.reason)
        else:
            assert result.outcome == "refused" and [p.field for p in result.problems] == ["denoise_steps"]


def test_without_tensorrt_the_job_is_unavailable_and_says_how_far(tmp_path: Path) -> None:
    result, _ = rehearse(make(tmp_path), ChildSpec(streamdiffusion_src=str(without(tmp_path, "tensorrt"))))
    text = said(result.reason)
    assert result.outcome == "unavailable", text
    assert "got through imports, tiny model, ONNX export" in text and "stopped at TensorRT's builder" in text


# ------------------------------------------------------------------------------------------------------ the build


def build(params: BakedParams, cancel: threading.Event | None = None, **options: Any) -> tuple[BuildResult, list[str]]:
    events: list[JobEvent] = []
    result = run_build(params, RUNTIME, BuildOptions(child=SPEC, **options), events.append, cancel)
    return result, [said(e.message) for e in events if e.kind == "stage"]


def test_a_build_rehearses_first_and_not_twice(tmp_path: Path) -> None:
    result, stages = build(make(tmp_path))
    assert result.outcome == "built", said(result.reason)
    first_engine = stages.index("Loading the model")
    rehearsed = [i for i, stage in enumerate(stages) if stage.startswith("Rehearsal:")]
    assert rehearsed and max(rehearsed) < first_engine, stages
    assert "rehearse_frame" in result.stages
    again, stages = build(make(tmp_path), force=True)
    assert again.outcome == "built" and not any(stage.startswith("Rehearsal:") for stage in stages)
    assert again.log_path is not None and "not repeated" in again.log_path.read_text(encoding="utf-8")


def test_a_failed_rehearsal_stops_the_build_before_any_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SD_MODE", "fallback")
    result, stages = build(make(tmp_path))
    text = said(result.reason)
    assert result.outcome == "failed" and text.startswith("Not built: The rehearsal failed at the TensorRT builder")
    assert "--no-rehearse" in text
    assert not list((tmp_path / "engines").rglob("*.engine")) and not list((tmp_path / "engines").rglob("config.yaml"))
    _, stages = build(make(tmp_path), rehearse=False)
    assert not any(stage.startswith("Rehearsal:") for stage in stages)


def test_a_tiny_model_that_cannot_be_made_does_not_refuse_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny model is the rehearsal's own machinery: a diffusers that rejects it is said, and the build goes on."""
    monkeypatch.setenv("STANDIN_DIFFUSERS_REJECTS", "1")
    result, _ = build(make(tmp_path))
    assert result.outcome == "built", said(result.reason)
    assert result.log_path is not None
    log = result.log_path.read_text(encoding="utf-8")
    assert "could not make its tiny model, so the build goes on without it" in log and "block_out_channels" in log


def test_cancel_stops_the_rehearsal_and_everything_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("STANDIN_GRANDCHILD_PIDFILE", str(pidfile))
    cancel = threading.Event()
    box: list[tuple[BuildResult, list[str]]] = []
    worker = threading.Thread(target=lambda: box.append(build(make(tmp_path, model="standin/hang-model"), cancel)))
    worker.start()
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    cancel.set()
    worker.join(15)
    assert not worker.is_alive()
    result, stages = box[0]
    assert result.outcome == "cancelled" and any(stage.startswith("Rehearsal:") for stage in stages)
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


# -------------------------------------------------------------------------------------------------------- the CLI


def test_doctor_rehearses_the_form_parameters_or_a_config(tmp_path: Path) -> None:
    done = run_cli("doctor", "--rehearse", "--width", "768", "--engines-dir", str(tmp_path / "engines"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Self-test passed" in done.stdout and "Rehearsal passed" in done.stdout
    config = run_cli("build", "--config-only", "--engines-dir", str(tmp_path / "engines"))
    path = config.stdout.strip().splitlines()[-1]
    again = run_cli("doctor", "--from-config", path, "--again")
    assert again.returncode == 0 and "Rehearsal passed" in again.stdout, again.stdout + again.stderr


def test_doctor_rehearse_names_the_failed_stage_with_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SD_MODE", "exporterror")
    done = run_cli("doctor", "--rehearse", "--again", "--engines-dir", str(tmp_path / "engines"))
    assert done.returncode == 1
    assert "The rehearsal failed at the ONNX export stage" in done.stderr and "imports, tiny model" in done.stderr


def test_build_no_rehearse_skips_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SD_MODE", "fallback")  # a rehearsal would refuse; without one the build goes on
    done = run_cli("build", "--no-rehearse", "--engines-dir", str(tmp_path / "engines"))
    assert "Rehearsal" not in done.stdout + done.stderr
    refused = run_cli("build", "--engines-dir", str(tmp_path / "engines2"))
    assert refused.returncode == 1 and "The rehearsal failed at the TensorRT builder stage" in refused.stderr
