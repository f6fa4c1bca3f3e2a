"""The after-build check against the stand-in StreamDiffusion: load the engines, run frames, report fps.

Builds run through the real CLI (a subprocess of gradio_prepare.py); checks run through the CLI or run_check().
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image

from sdprep.engines import list_models, speed_message
from sdprep.jobs.build import BuildOptions
from sdprep.jobs.check import CheckOptions, CheckResult, run_check
from sdprep.jobs.pipeline import build_and_check
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.locks import gpu_lock
from sdprep.params import params_from_values
from testkit.processes import run as run_process
from testkit.processes import spawn
from testkit.timing import SUITE_TIMEOUT, budget, wait_until

from .conftest import ROOT, STANDIN, runtime_defaults, said
from .conftest import run_cli as cli

FAST = ("--warmup", "1", "--frames", "4")
GPU = "NVIDIA GeForce RTX 4090"


@pytest.fixture(autouse=True)
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every child Python (CLI subprocesses included) finds the stand-in as the user's StreamDiffusion."""
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))


def built(tmp_path: Path, model: str = "standin/model", *extra: str) -> Path:
    """Build through the CLI; the config.yaml path."""
    done = cli("build", "--engines-dir", str(tmp_path / "engines"), "--model", model, *extra)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def manifest(config_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((config_path.parent / "build.json").read_text(encoding="utf-8"))
    return data


def latest_check(config_path: Path) -> dict[str, Any] | None:
    data = manifest(config_path)
    found: dict[str, Any] | None = data["variants"][data["latest_variant"]].get("check")
    return found


def check(config_path: Path, **options: Any) -> tuple[CheckResult, list[JobEvent]]:
    events: list[JobEvent] = []
    values = {"warmup": 1, "frames": 4, **options}
    return run_check(config_path, CheckOptions(**values), events.append), events


def test_check_passes_with_sane_numbers_an_image_and_a_record(tmp_path: Path) -> None:
    config = built(tmp_path, "standin/model", "--width", "640", "--height", "384")
    done = cli("check", str(config), *FAST)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    image = Path(lines[-1])
    assert image == config.parent / "check.png"
    with Image.open(image) as picture:
        assert picture.format == "PNG" and picture.size == (640, 384)
    assert "640x384, 1 step: " in done.stdout and f"fps on {GPU}" in done.stdout
    assert "mean" in done.stdout and "p95" in done.stdout and "loaded in" in done.stdout

    record = latest_check(config)
    assert record is not None and record["outcome"] == "passed"
    assert record["gpu"] == GPU and record["frames"] == 4 and record["warmup"] == 1
    assert 0 < record["mean_ms"] <= record["p95_ms"] < 5000
    assert record["fps"] == pytest.approx(1000 / record["mean_ms"], rel=0.01)
    assert 0 <= record["load_seconds"] < 30 and record["peak_memory_bytes"] > 0
    assert record["image"] == "check.png" and (config.parent / record["log"]).is_file()
    assert record["log"].startswith("logs/") and record["log"].endswith("-check.log")

    (model,) = list_models(tmp_path / "engines")
    variant = model.variants[0]
    speed = said(variant.speed)
    assert speed == f"640x384, 1 step: {record['fps']:.1f} fps on {GPU}"
    assert speed in said(variant.headline())
    assert model.as_dict()["variants"][0]["check"]["fps"] == record["fps"]
    listed = cli("list", "--engines-dir", str(tmp_path / "engines"))
    assert speed in listed.stdout


def test_run_check_result_for_the_ui(tmp_path: Path) -> None:
    config = built(tmp_path)
    result, events = check(config)
    assert result.outcome == "passed" and result.ok, result.reason
    assert result.image_path == config.parent / "check.png" and result.image_path.is_file()
    assert result.variant == manifest(config)["latest_variant"] and result.rebuilt == [] and result.missing == []
    assert (
        result.speed and said(result.speed).startswith("512x512, 1 step:") and said(result.speed) in said(result.reason)
    )
    assert result.log_path and result.log_path.parent == config.parent / "logs"
    stages = [said(event.message) for event in events if event.kind == "stage"]
    assert (
        stages[0] == "Checking the build environment" and "Loading the engines" in stages and "Timing frames" in stages
    )
    assert "load" in result.stages
    # A variant's own config is checked too, its image beside it.
    variant_config = config.parent / "configs" / f"{result.variant}.yaml"
    again, _ = check(variant_config)
    assert again.outcome == "passed" and again.variant == result.variant
    assert again.image_path == variant_config.with_name(f"{result.variant}.check.png")


def test_rebuild_on_load_fails_naming_the_engine_folder(tmp_path: Path) -> None:
    config = built(tmp_path, "standin/rebuild_on_load-model")
    unet = next(path for path in config.parent.rglob("unet.engine"))
    done = cli("check", str(config), *FAST)
    assert done.returncode == 1
    reason = next(line for line in done.stderr.splitlines() if line.startswith("failed: "))
    assert "rebuild" in reason and str(unet.parent) in reason and "unet.engine" in reason
    record = latest_check(config)
    assert (
        record and record["outcome"] == "failed" and record["rebuilt"] == [unet.relative_to(config.parent).as_posix()]
    )
    assert not (config.parent / "check.png").exists()  # only a passed check leaves its picture
    assert not list(config.parent.glob(".check*"))


def test_loadfail_is_a_failure_with_a_one_line_reason(tmp_path: Path) -> None:
    config = built(tmp_path, "standin/loadfail-model")
    result, _ = check(config)
    assert result.outcome == "failed"
    assert "\n" not in said(result.reason) and "batch mismatch" in said(result.reason)
    assert result.fps is None and result.image_path is None
    assert not any(line.startswith("  File ") for line in result.log_tail)  # no traceback frames for people
    record = latest_check(config)
    assert record and record["outcome"] == "failed" and "batch mismatch" in json.dumps(record["reason"])
    (model,) = list_models(tmp_path / "engines")
    assert model.variants[0].speed is None and "Check failed" in said(model.variants[0].headline())


def test_slow_frames_show_in_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = built(tmp_path, "standin/slowframes-model")
    monkeypatch.setenv("STANDIN_FRAME_SECONDS", "0.05")
    result, _ = check(config, warmup=1, frames=4)
    assert result.outcome == "passed", result.reason
    assert result.mean_ms is not None and result.fps is not None and result.p95_ms is not None
    assert result.mean_ms >= 45 and result.p95_ms >= result.mean_ms and result.fps <= 22


def test_no_gpu_is_refused_with_a_clear_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = built(tmp_path)
    monkeypatch.setenv("STANDIN_CUDA", "0")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "fresh-cache"))  # the probe must see the change
    done = cli("check", str(config), *FAST)
    assert done.returncode == 3, "3: this machine cannot do it"
    assert "No CUDA GPU is visible" in done.stderr and "Traceback" not in done.stderr
    result, _ = check(config)
    assert result.outcome == "unavailable" and "No CUDA GPU" in said(result.reason)
    assert latest_check(config) is None  # a refusal is not a result


def test_no_gpu_seen_only_by_the_child_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached probe still says GPU (driver gone since): the check child says so in a sentence."""
    config = built(tmp_path)  # leaves a probe cache that saw the GPU
    monkeypatch.setenv("STANDIN_CUDA", "0")
    result, _ = check(config)
    assert result.outcome == "unavailable"
    assert "No CUDA GPU is visible to PyTorch" in said(result.reason) and "\n" not in said(result.reason)


def test_cancel_during_slow_frames_stops_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = built(tmp_path, "standin/slowframes-model")
    monkeypatch.setenv("STANDIN_FRAME_SECONDS", "0.3")
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_event(event: JobEvent) -> None:
        if event.stage == "frames" and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    result = run_check(config, CheckOptions(warmup=0, frames=200), on_event, cancel)
    assert result.outcome == "cancelled"
    assert cancelled_at and time.monotonic() - cancelled_at[0] < budget(8)
    assert psutil.Process().children(recursive=True) == []
    assert latest_check(config) is None and not (config.parent / "check.png").exists()
    lock = gpu_lock(0)
    assert lock.acquire("after the cancelled check", wait=False)
    lock.release()


def test_cli_ctrl_c_cancels_with_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = built(tmp_path, "standin/slowframes-model")
    monkeypatch.setenv("STANDIN_FRAME_SECONDS", "0.3")
    process = spawn(
        [sys.executable, str(ROOT / "gradio_prepare.py"), "check", str(config), "--warmup", "0", "--frames", "200"]
    )
    assert process.stdout is not None
    process.stdout.wait_for("Timing frames")
    process.send_signal(signal.SIGINT)
    assert process.wait() == 130 and "cancelled" in process.err()


def test_build_with_check_end_to_end(tmp_path: Path) -> None:
    done = cli("build", "--engines-dir", str(tmp_path / "engines"), "--model", "standin/model", "--check", *FAST)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    config = Path(lines[-1])
    assert config.name == "config.yaml"  # the build's contract holds with --check
    built_line = next(i for i, line in enumerate(lines) if line.startswith("Built "))
    passed_line = next(i for i, line in enumerate(lines) if line.startswith("Check passed: "))
    assert built_line < passed_line  # the build's report comes before the check runs
    assert "1 step: " in lines[passed_line] and GPU in lines[passed_line]
    record = latest_check(config)
    assert record and record["outcome"] == "passed" and (config.parent / "check.png").is_file()


def test_build_with_a_failing_check_exits_1(tmp_path: Path) -> None:
    done = cli("build", "--engines-dir", str(tmp_path / "engines"), "--model", "standin/loadfail-x", "--check", *FAST)
    assert done.returncode == 1 and "batch mismatch" in done.stderr


def test_build_and_check_for_the_ui(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path / "engines"), "model": "standin/model"})
    child = ChildSpec(streamdiffusion_src=str(STANDIN))
    events: list[JobEvent] = []
    seen: list[str] = []
    build, result = build_and_check(
        params,
        runtime_defaults(),
        BuildOptions(child=child, check=True),
        events.append,
        check_options=CheckOptions(warmup=0, frames=2),
        on_built=lambda done: seen.append(done.outcome),
    )
    assert build.outcome == "built" and seen == ["built"]
    assert result is not None and result.outcome == "passed", result and result.reason
    elapsed = [event.elapsed for event in events]
    assert elapsed == sorted(elapsed)  # the check's times continue the build's
    again, no_check = build_and_check(params, runtime_defaults(), BuildOptions(child=child), events.append)
    assert again.outcome == "up_to_date" and no_check is None


def test_an_up_to_date_build_reuses_its_passed_check(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path / "engines"), "model": "standin/model"})
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)), check=True)
    fast = CheckOptions(warmup=0, frames=2)
    _, first = build_and_check(params, runtime_defaults(), options, check_options=fast)
    assert first is not None and first.outcome == "passed" and first.fps
    events: list[JobEvent] = []
    again, reused = build_and_check(params, runtime_defaults(), options, events.append, check_options=fast)
    assert again.outcome == "up_to_date"
    assert reused is not None and reused.outcome == "passed" and "not run again" in said(reused.reason)
    assert reused.fps == first.fps and reused.image_path == first.image_path
    assert not any(event.kind == "stage" and "Loading" in said(event.message) for event in events), "no check child ran"
    # A check that failed is not reused: the next up-to-date build checks again.
    assert again.config_path is not None
    record = manifest(again.config_path)
    record["variants"][again.variant]["check"]["outcome"] = "failed"
    (again.config_path.parent / "build.json").write_text(json.dumps(record))
    _, rechecked = build_and_check(params, runtime_defaults(), options, check_options=fast)
    assert rechecked is not None and rechecked.outcome == "passed" and "not run again" not in said(rechecked.reason)


def test_deleted_engines_fail_naming_what_is_missing(tmp_path: Path) -> None:
    config = built(tmp_path)
    unet = next(config.parent.rglob("unet.engine"))
    unet.unlink()
    result, _ = check(config)
    assert (
        result.outcome == "failed" and str(unet) in said(result.reason) and "build --from-config" in said(result.reason)
    )
    assert result.missing == [unet.relative_to(config.parent).as_posix()]
    record = latest_check(config)
    assert record and record["outcome"] == "failed" and record["missing"] == result.missing
    # Without build.json, StreamDiffusion itself is asked, and must name it rather than rebuild it.
    (config.parent / "build.json").unlink()
    done = cli("check", str(config), *FAST)
    assert done.returncode == 1
    reason = next(line for line in done.stderr.splitlines() if line.startswith("failed: "))
    assert str(unet) in reason and "missing" in reason
    assert not unet.exists()  # nothing was rebuilt


def test_relative_engine_dir_is_loaded_from_where_it_was_built(tmp_path: Path) -> None:
    done = cli("build", "--engines-dir", "engines", "--model", "standin/model", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = tmp_path / done.stdout.strip().splitlines()[-1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = cli("check", str(config), *FAST, cwd=elsewhere)
    assert checked.returncode == 0, checked.stderr
    assert not (elsewhere / "engines").exists()


def test_busy_gpu_makes_the_check_wait_or_refuse(tmp_path: Path) -> None:
    config = built(tmp_path)
    lock = gpu_lock(0)
    assert lock.acquire("a build in another window")
    try:
        result, _ = check(config, wait_for_gpu=False)
        assert result.outcome == "busy" and "busy" in said(result.reason) and "another window" in said(result.reason)
        events: list[JobEvent] = []
        box: list[CheckResult] = []
        worker = threading.Thread(
            target=lambda: box.append(run_check(config, CheckOptions(warmup=0, frames=2), events.append))
        )
        worker.start()
        wait_until(lambda: any(event.kind == "waiting" for event in list(events)), "the check to say it waits")
        assert not box
    finally:
        lock.release()
    worker.join(timeout=SUITE_TIMEOUT)
    assert box and box[0].outcome == "passed"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), ("just: [a, list", "not valid YAML"), ("width: 512\n", "no model_id")],
)
def test_bad_path_or_config_exits_2(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = cli("check", str(path))
    assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr
    result, _ = check(path)
    assert result.outcome == "refused" and fragment in said(result.reason)


def test_check_cannot_follow_config_only(tmp_path: Path) -> None:
    done = cli("build", "--config-only", "--check", "--engines-dir", str(tmp_path))
    assert done.returncode == 2 and "--check" in done.stderr


def test_speed_message() -> None:
    assert said(speed_message(512, 512, 1, 87.04, GPU)) == f"512x512, 1 step: 87.0 fps on {GPU}"
    assert said(speed_message(512, 512, 2, 87.04, None)) == "512x512, 2 steps: 87.0 fps"
    assert speed_message(512, 512, 1, None, GPU) is None


def test_check_child_alone_reports_no_gpu(tmp_path: Path) -> None:
    """The child script by path, as the parent runs it: no GPU is an error event with a sentence, exit 1."""
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"config": {"model_id": "standin/model"}, "warmup": 0, "frames": 1}))
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "STANDIN_CUDA": "0"}
    done = run_process([sys.executable, str(ROOT / "sdprep" / "child" / "check_engines.py"), str(job)], env=env)
    assert done.returncode == 1
    events = [json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("@@sdprep")]
    assert events[-1]["event"] == "error" and events[-1]["no_gpu"] is True
    assert "No CUDA GPU" in events[-1]["message"]
