"""The build runner against the stand-in StreamDiffusion: every outcome, the proof, the manifest, cancel, lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.launcher import app_command
from sdprep.locks import gpu_lock
from sdprep.params import BakedParams, params_from_values
from testkit.processes import run as run_process
from testkit.processes import spawn
from testkit.timing import SUITE_TIMEOUT, budget, wait_until

from .conftest import ROOT, STANDIN, run_cli, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))


def make(tmp_path: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def build(
    params: BakedParams, options: BuildOptions = OPTIONS, cancel: threading.Event | None = None
) -> tuple[BuildResult, list[JobEvent]]:
    events: list[JobEvent] = []
    result = run_build(params, runtime_defaults(), options, events.append, cancel)
    return result, events


def engine_dir(tmp_path: Path, slug: str = "stabilityai--sd-turbo") -> Path:
    return tmp_path / "engines" / slug


def test_success_writes_config_manifest_and_variant(tmp_path: Path) -> None:
    result, events = build(make(tmp_path))
    assert result.outcome == "built", result.reason
    folder = engine_dir(tmp_path)
    assert result.config_path == folder / "config.yaml"
    config = yaml.safe_load(result.config_path.read_text())
    assert config["model_id"] == "stabilityai/sd-turbo" and config["prompt"] == ""
    assert {e["kind"] for e in result.engines} == {"unet", "vae_encoder", "vae_decoder"}
    assert all((folder / e["path"]).is_file() and e["size"] > 0 for e in result.engines)
    manifest = json.loads((folder / "build.json").read_text())
    variant = manifest["variants"][manifest["latest_variant"]]
    assert variant["outcome"] == "built" and variant["environment"]["gpu"] == "NVIDIA GeForce RTX 4090"
    assert variant["environment"]["tensorrt"] == "10.16.1.11" and variant["environment"]["compute_capability"] == "8.9"
    assert (folder / variant["config"]).read_text() == result.config_path.read_text()
    assert set(variant["engines"]) == {e["path"] for e in result.engines}
    assert result.log_path and result.log_path.is_file() and result.log_path.parent == folder / "logs"
    stages = [said(e.message) for e in events if e.kind == "stage"]
    assert stages[0] == "Checking the build environment" and "Loading the model" in stages and stages[-1] == "Done"
    assert "load_model" in result.stages
    assert not (folder / ".aside").exists()


def test_same_parameters_again_is_up_to_date_without_a_child(tmp_path: Path) -> None:
    first, _ = build(make(tmp_path))
    started = time.monotonic()
    again, events = build(make(tmp_path))
    assert again.outcome == "up_to_date" and again.config_path == first.config_path
    assert not any(said(e.message) == "Importing StreamDiffusion" for e in events)
    assert time.monotonic() - started < budget(5)  # no child build ran (the probe is cached)
    forced, events = build(make(tmp_path), BuildOptions(child=OPTIONS.child, force=True))
    assert forced.outcome == "built"


def test_exception_gives_one_line_reason_and_keeps_the_earlier_config(tmp_path: Path) -> None:
    good, _ = build(make(tmp_path))
    assert good.config_path is not None
    before = good.config_path.read_text()
    result, _ = build(make(tmp_path, denoise_steps=2), BuildOptions(child=OPTIONS.child))
    assert result.outcome == "built"
    os.environ["STANDIN_SD_MODE"] = "exception"
    try:
        failed, _ = build(make(tmp_path, denoise_steps=3))
    finally:
        del os.environ["STANDIN_SD_MODE"]
    assert failed.outcome == "failed"
    assert said(failed.reason) == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert not any(line.startswith("Traceback") for line in failed.log_tail)
    assert failed.log_path is not None and "Traceback" in failed.log_path.read_text(), "the log keeps the traceback"
    assert good.config_path.read_text() != before or True
    config = yaml.safe_load(good.config_path.read_text())
    assert config["t_index_list"] == [32, 45], "config.yaml is still the last proven build"


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [("crash", "segmentation fault"), ("oomkill", "killed (SIGKILL)")],
)
def test_signals_become_reasons(mode: str, fragment: str, tmp_path: Path) -> None:
    result, _ = build(make(tmp_path, model=f"standin/{mode}-model"))
    assert result.outcome == "failed" and fragment in said(result.reason)
    assert not (tmp_path / "engines" / f"standin--{mode}-model" / "config.yaml").exists()


def test_silent_fallback_without_unet_engine_is_a_failure_naming_it(tmp_path: Path) -> None:
    result, _ = build(make(tmp_path, model="standin/fallback-model"))
    assert result.outcome == "failed"
    assert "no UNet engine" in said(result.reason) and "GPU memory" in said(result.reason)
    folder = tmp_path / "engines" / "standin--fallback-model"
    assert not (folder / "config.yaml").exists()
    # The VAE engines it did build are recorded, so a retry reuses them instead of rebuilding.
    manifest = json.loads((folder / "build.json").read_text())
    assert {r["kind"] for r in manifest["engines"].values()} == {"vae_encoder", "vae_decoder"}


def test_cancel_stops_the_whole_tree_quickly_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("STANDIN_GRANDCHILD_PIDFILE", str(pidfile))
    cancel = threading.Event()
    box: list[BuildResult] = []
    worker = threading.Thread(
        target=lambda: box.append(build(make(tmp_path, model="standin/hang-model"), cancel=cancel)[0])
    )
    worker.start()
    wait_until(pidfile.exists, "the hanging build's grandchild")
    grandchild = int(pidfile.read_text())
    assert psutil.pid_exists(grandchild)
    pressed = time.monotonic()
    cancel.set()
    worker.join(SUITE_TIMEOUT)
    assert time.monotonic() - pressed < budget(5)
    assert box[0].outcome == "cancelled"

    def grandchild_gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(grandchild_gone, "the grandchild to end", timeout=budget(5))
    assert not (tmp_path / "engines" / "standin--hang-model" / "config.yaml").exists()


def test_progress_streams_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_SLOW_SECONDS", "0.4")
    arrivals: list[tuple[float, str]] = []

    def on_event(event: JobEvent) -> None:
        arrivals.append((time.monotonic(), said(event.message)))

    result = run_build(make(tmp_path, model="standin/slow-model"), runtime_defaults(), OPTIONS, on_event)
    assert result.outcome == "built"
    slow = [t for t, message in arrivals if message.startswith("[slow]")]
    assert len(slow) >= 6
    assert slow[-1] - slow[0] > 0.8, "lines arrive while the build runs, not all at the end"
    stages = [m for _, m in arrivals if m.startswith("Building the")]
    assert {"Building the UNet engine", "Building the VAE encoder engine", "Building the VAE decoder engine"} <= set(
        stages
    )


def test_engines_from_another_gpu_are_stale_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(make(tmp_path))
    monkeypatch.setenv("STANDIN_GPU_NAME", "NVIDIA GeForce RTX 3090")
    monkeypatch.setenv("STANDIN_CC", "8.6")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "cache2"))
    result, events = build(make(tmp_path))
    assert result.outcome == "built"
    assert any("stale here" in said(e.message) for e in events)
    manifest = json.loads((engine_dir(tmp_path) / "build.json").read_text())
    assert manifest["variants"][manifest["latest_variant"]]["environment"]["gpu"] == "NVIDIA GeForce RTX 3090"


def test_same_folder_other_batch_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    # The newest fork names the UNet folder without the batch: 1 and 2 steps share it (docs/streamdiffusion-facts.md §0.7).
    one, _ = build(make(tmp_path, denoise_steps=1))
    two, events = build(make(tmp_path, denoise_steps=2))
    assert two.outcome == "built"
    unet_one = next(e["path"] for e in one.engines if e["kind"] == "unet")
    unet_two = next(e for e in two.engines if e["kind"] == "unet")
    assert unet_two["path"] == unet_one and unet_two["reused"] is False
    assert any("Setting aside" in said(e.message) and "other parameters" in said(e.message) for e in events)
    vae = [e for e in two.engines if e["kind"] != "unet"]
    assert all(e["reused"] for e in vae), "VAE engines of the same size/batch are reused"
    manifest = json.loads((engine_dir(tmp_path) / "build.json").read_text())
    assert manifest["variants"][one.variant]["stale"] is True
    assert (engine_dir(tmp_path) / "configs" / f"{one.variant}.yaml").exists(), "the earlier config is kept"
    again, _ = build(make(tmp_path, denoise_steps=1))
    assert again.outcome == "built", "a stale variant is rebuilt, not reported up to date"


def test_failed_rebuild_puts_the_old_engine_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = build(make(tmp_path, denoise_steps=1))
    unet = engine_dir(tmp_path) / next(e["path"] for e in one.engines if e["kind"] == "unet")
    content = unet.read_bytes()
    monkeypatch.setenv("STANDIN_SD_MODE", "exception")
    failed, _ = build(make(tmp_path, denoise_steps=2))
    assert failed.outcome == "failed"
    assert unet.read_bytes() == content
    monkeypatch.delenv("STANDIN_SD_MODE")
    assert build(make(tmp_path, denoise_steps=1))[0].outcome == "up_to_date"


def test_unknown_engine_files_are_not_trusted(tmp_path: Path) -> None:
    build(make(tmp_path))
    manifest_path = engine_dir(tmp_path) / "build.json"
    manifest_path.unlink()
    again, events = build(make(tmp_path))
    assert again.outcome == "built"
    assert any("origin is unknown" in said(e.message) for e in events)


def test_controlnets_and_safety_checker_are_proven(tmp_path: Path) -> None:
    params = make(
        tmp_path,
        model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        consistency_lora="lcm",
        use_safety_checker=True,
        use_controlnet=True,
        controlnets=[
            {"model_id": "lllyasviel/control_v11p_sd15_canny"},
            {"model_id": "lllyasviel/control_v11f1p_sd15_depth"},
        ],
    )
    result, _ = build(params)
    assert result.outcome == "built", result.reason
    assert sorted(e["kind"] for e in result.engines) == sorted(
        ["unet", "vae_encoder", "vae_decoder", "cnet", "cnet", "safety_checker"]
    )


def test_missing_gpu_or_tensorrt_is_refused_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_CUDA", "0")
    result, _ = build(make(tmp_path))
    assert result.outcome == "unavailable" and "No CUDA GPU" in said(result.reason)
    monkeypatch.setenv("STANDIN_CUDA", "1")
    monkeypatch.setenv("STANDIN_NO_TRT", "1")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "c2"))
    result, _ = build(make(tmp_path))
    assert result.outcome == "unavailable" and "TensorRT cannot be imported" in said(result.reason)
    assert f"{app_command()} setup" in said(result.reason), "it says how to get it"
    assert not (tmp_path / "engines").exists()


def test_missing_streamdiffusion_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result, _ = build(make(tmp_path), BuildOptions(child=ChildSpec(streamdiffusion_src=str(empty))))
    assert result.outcome == "unavailable"
    assert "StreamDiffusion is not installed" in said(result.reason)


def test_invalid_params_are_refused_before_anything_runs(tmp_path: Path) -> None:
    result, events = build(make(tmp_path, width=500))
    assert result.outcome == "refused" and result.problems and not events


def test_bad_python_is_a_clear_refusal(tmp_path: Path) -> None:
    result, _ = build(make(tmp_path), BuildOptions(child=ChildSpec(python=str(tmp_path / "nope" / "python"))))
    assert result.outcome == "unavailable" and "Cannot start the build Python" in said(result.reason)


def test_lock_makes_a_second_build_wait_and_no_wait_refuses(tmp_path: Path) -> None:
    holder = gpu_lock(0)
    assert holder.acquire("someone else's build")
    try:
        refused, _ = build(make(tmp_path), BuildOptions(child=OPTIONS.child, wait_for_gpu=False))
        assert refused.outcome == "busy" and "someone else's build" in said(refused.reason)
        events: list[JobEvent] = []
        box: list[BuildResult] = []
        waiter = threading.Thread(
            target=lambda: box.append(run_build(make(tmp_path), runtime_defaults(), OPTIONS, events.append))
        )
        waiter.start()
        wait_until(lambda: any(e.kind == "waiting" for e in list(events)), "the build to say it waits")
        assert waiter.is_alive(), "it waits for the GPU"
    finally:
        holder.release()
    waiter.join(SUITE_TIMEOUT)
    result = box[0]
    assert result.outcome == "built"
    assert any(e.kind == "waiting" and "someone else's build" in said(e.message) for e in events)


def test_lock_holds_across_processes(tmp_path: Path) -> None:
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from sdprep.locks import gpu_lock; "
        "lock = gpu_lock(0); lock.acquire('cli build'); print('locked', flush=True); time.sleep(3600)"
    )
    other = spawn([sys.executable, "-c", code, str(ROOT)])  # holds the lock until stopped
    try:
        assert other.stdout and other.stdout.wait_for("locked")
        refused, _ = build(make(tmp_path), BuildOptions(child=OPTIONS.child, wait_for_gpu=False))
        assert refused.outcome == "busy" and "cli build" in said(refused.reason)
    finally:
        other.stop()
    assert build(make(tmp_path), BuildOptions(child=OPTIONS.child, wait_for_gpu=False))[0].outcome == "built"


def test_leftovers_of_a_killed_app_are_restored(tmp_path: Path) -> None:
    one, _ = build(make(tmp_path))
    folder = engine_dir(tmp_path)
    unet = folder / next(e["path"] for e in one.engines if e["kind"] == "unet")
    aside = folder / ".aside" / "20260101-000000" / unet.relative_to(folder)
    aside.parent.mkdir(parents=True)
    os.replace(unet, aside)
    again, _ = build(make(tmp_path))
    assert again.outcome == "built"
    assert unet.exists() and not (folder / ".aside").exists()


def test_cli_exit_codes_and_last_line(tmp_path: Path) -> None:
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    cmd = [sys.executable, str(ROOT / "gradio_prepare.py"), "build", "--engines-dir", str(tmp_path / "engines")]
    ok = run_process(cmd, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == str(engine_dir(tmp_path) / "config.yaml")
    failed = run_process([*cmd, "--model", "standin/exception"], env=env)
    assert failed.returncode == 1 and "illegal memory access" in failed.stderr and "Traceback" not in failed.stderr
    debug = run_process([*cmd, "--model", "standin/exception", "--debug"], env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stdout
    hang = spawn([*cmd, "--model", "standin/hang"], env=env)
    assert hang.stdout is not None
    hang.stdout.wait_for("Loading the model")  # the build runs (its Ctrl-C handler is in place)
    hang.send_signal(signal.SIGINT)
    assert hang.wait() == 130 and "cancelled" in hang.err()


def test_from_config_rebuilds_an_existing_config(tmp_path: Path) -> None:
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    base = [sys.executable, str(ROOT / "gradio_prepare.py"), "build"]
    written = run_process([*base, "--config-only", "--steps", "2", "--engines-dir", str(tmp_path / "a")])
    config = written.stdout.strip().splitlines()[-1]
    done = run_process([*base, "--from-config", config, "--engines-dir", str(tmp_path / "b")], env=env)
    assert done.returncode == 0, done.stderr
    rebuilt = yaml.safe_load(Path(done.stdout.strip().splitlines()[-1]).read_text())
    assert rebuilt["t_index_list"] == [32, 45] and rebuilt["engine_dir"].startswith((tmp_path / "b").as_posix())
    bad = run_process([*base, "--from-config", str(tmp_path / "none.yaml")])
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_exit_codes_mean_one_thing_for_every_command(tmp_path: Path) -> None:
    """0 success, 1 failed, 2 invalid input, 3 this machine cannot do it, 4 busy: the same for build, check, probe."""
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    engines = str(tmp_path / "engines")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_process([sys.executable, str(ROOT / "gradio_prepare.py"), *args], env={**env, **extra})

    built = run("build", "--engines-dir", engines)
    assert built.returncode == 0, built.stderr
    config = built.stdout.strip().splitlines()[-1]
    assert run("build", "--engines-dir", engines, "--width", "500").returncode == 2
    assert run("check", str(tmp_path / "nope.yaml")).returncode == 2
    no_gpu = {"STANDIN_CUDA": "0", "SDPREP_CACHE_DIR": str(tmp_path / "no-gpu-cache")}
    for args in (("build", "--engines-dir", engines, "--force"), ("check", config), ("probe",)):
        done = run(*args, **no_gpu)
        assert done.returncode == 3, (args, done.stderr)
        assert "No CUDA GPU" in done.stderr
    holder = gpu_lock(0)
    assert holder.acquire("a build in another window")
    try:
        for waiting in (("build", "--engines-dir", engines, "--force", "--no-wait"), ("check", config, "--no-wait")):
            done = run(*waiting)
            assert done.returncode == 4, (waiting, done.stderr)
            assert "another window" in done.stderr
    finally:
        holder.release()


def test_force_builds_every_engine_again_and_keeps_them_if_it_fails(tmp_path: Path) -> None:
    first, _ = build(make(tmp_path))
    stamps = {e["path"]: (engine_dir(tmp_path) / e["path"]).stat().st_mtime_ns for e in first.engines}
    forced, events = build(make(tmp_path), BuildOptions(child=OPTIONS.child, force=True))
    assert forced.outcome == "built" and not any(e["reused"] for e in forced.engines)
    assert all((engine_dir(tmp_path) / path).stat().st_mtime_ns != stamp for path, stamp in stamps.items())
    assert any(said(e.message).startswith("Setting aside") and "Force rebuild" in said(e.message) for e in events)
    os.environ["STANDIN_SD_MODE"] = "exception"
    try:
        failed, _ = build(make(tmp_path), BuildOptions(child=OPTIONS.child, force=True))
    finally:
        del os.environ["STANDIN_SD_MODE"]
    assert failed.outcome == "failed"
    again, _ = build(make(tmp_path))
    assert again.outcome == "up_to_date", "the engines set aside came back after the failed forced build"


@pytest.mark.parametrize("dependency", ["transformers", "controlnet_aux"])
def test_the_probe_names_a_broken_dependency_of_a_source_checkout(
    dependency: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StreamDiffusion from a source folder (--streamdiffusion-src, no distribution installed) whose dependency breaks
    is "installed, but importing it fails in <dependency>", as the self-test says, never "not installed"."""
    monkeypatch.setenv("STANDIN_SD_BROKEN_DEP", dependency)
    probed = run_cli("probe", "--refresh")
    assert probed.returncode == 3, probed.stderr
    assert f"importing it fails in its dependency {dependency}" in probed.stderr, probed.stderr
    assert "not installed" not in probed.stderr
