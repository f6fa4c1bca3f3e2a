"""The fault suite: bad inputs, stand-in build faults, a full disk, a read-only folder, concurrent builds, kills.

Every case asserts what a person relies on: a clear reason (naming the field or flag), nothing written or the
earlier config.yaml byte-identical, and the next build working. Figures (counts, durations, reasons) are
collected into tests/artifacts/reliability.json; `python bench/reliability.py` runs this file and renders
docs/reliability.md from them. Timings here are recorded, not asserted, except for wide safety bounds.
"""

from __future__ import annotations

import builtins
import errno
import io
import itertools
import json
import os
import platform
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from gradio_client.exceptions import AppError

from sdprep import derive
from sdprep.config import make_config, render_config
from sdprep.config_load import read_config
from sdprep.engine_files import variant_id
from sdprep.engines import list_models
from sdprep.jobs import board as jobs_module
from sdprep.jobs import pipeline as pipeline_module
from sdprep.jobs.board import JobBoard
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.params import BakedParams, params_from_values
from sdprep.validate import has_errors, validate
from testkit.processes import Spawned, spawn
from testkit.processes import run as run_process
from testkit.timing import SUITE_TIMEOUT, budget, wait_until

from .conftest import ROOT, STANDIN, runtime_defaults, said
from .conftest import run_cli as cli
from .ui_helpers import Api, running_app

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client's telemetry reads this (no traffic out)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
ARTIFACTS = ROOT / "tests" / "artifacts"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


FIGURES: dict[str, Any] = {}


def record(section: str, key: str, value: Any) -> None:
    FIGURES.setdefault(section, {})[key] = value


@pytest.fixture(scope="module", autouse=True)
def write_figures() -> Iterator[None]:
    started = time.time()
    yield
    if not FIGURES:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    FIGURES["run"] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seconds": round(time.time() - started, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "root": os.geteuid() == 0 if hasattr(os, "geteuid") else None,
    }
    (ARTIFACTS / "reliability.json").write_text(json.dumps(FIGURES, indent=2, default=str), encoding="utf-8")


# --- helpers ---------------------------------------------------------------------------------------------------
def make(tmp_path: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def build(
    params: BakedParams, cancel: threading.Event | None = None, on_event: Callable[[JobEvent], None] | None = None
) -> BuildResult:
    events: list[JobEvent] = []
    return run_build(params, runtime_defaults(), OPTIONS, on_event or events.append, cancel)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder` with its size and mtime: equal snapshots mean nothing was written."""
    if not folder.exists():
        return {}
    found = {".": (0, folder.stat().st_mtime_ns)}
    for path in folder.rglob("*"):
        stat = path.lstat()
        found[path.relative_to(folder).as_posix()] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return found


def temp_leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp")) if folder.exists() else []


def assert_one_clear_line(reason: Any, *fragments: str) -> None:
    """A result's reason (a Message) as a person reads it: one line, no traceback, with these fragments."""
    reason = said(reason)
    assert reason and "\n" not in reason, f"not one line: {reason!r}"
    assert "Traceback" not in reason and len(reason) < 400, reason
    for fragment in fragments:
        assert fragment in reason, f"{fragment!r} not in {reason!r}"


# --- 1. bad inputs through the CLI ----------------------------------------------------------------------------
# (id, arguments after `build`, the flag the message must name). {tmp} is the test's folder, which holds:
# notes.txt, emptydir/, afile, bad.yaml (broken YAML), nomodel.yaml (no model_id), list.yaml (a YAML list).
CLI_BAD_INPUTS: list[tuple[str, list[str], str]] = [
    ("steps-not-a-number", ["--steps", "abc"], "--steps"),
    ("steps-zero", ["--steps", "0"], "--steps"),
    ("steps-nine", ["--steps", "9"], "--steps"),
    ("steps-zero-config-only", ["--steps", "0", "--config-only"], "--steps"),
    ("width-not-multiple-of-8", ["--width", "500"], "--width"),
    ("width-below-vae-minimum", ["--width", "320"], "--width"),
    ("width-float", ["--width", "512.5"], "--width"),
    ("height-too-big", ["--height", "2048"], "--height"),
    ("height-negative-config-only", ["--height", "-8", "--config-only"], "--height"),
    ("cfg-type-unknown", ["--cfg-type", "bogus"], "--cfg-type"),
    ("family-unknown", ["--model-family", "sd3"], "--model-family"),
    ("consistency-lora-unknown", ["--consistency-lora", "xyz"], "--consistency-lora"),
    ("scheduler-unknown", ["--scheduler", "ddim"], "--scheduler"),
    (
        "no-lcm-lora-for-sd21",
        ["--model", "stabilityai/stable-diffusion-2-1", "--consistency-lora", "lcm"],
        "--consistency-lora",
    ),
    ("unet-batch-too-big", ["--steps", "4", "--cfg-type", "full"], "--steps"),
    ("frame-buffer-zero", ["--frame-buffer-size", "0"], "--frame-buffer-size"),
    ("frame-buffer-five", ["--frame-buffer-size", "5"], "--frame-buffer-size"),
    ("cache-maxframes-nine", ["--cached-attn", "--cache-maxframes", "9"], "--cache-maxframes"),
    ("lora-broken-json", ["--lora", "{bad"], "--lora"),
    ("lora-json-list", ["--lora", "[1, 2]"], "--lora"),
    ("lora-scale-text", ["--lora", '{"a/b": "x"}'], "--lora"),
    ("lora-empty-id", ["--lora", '{"": 1}'], "--lora"),
    ("lora-is-consistency-lora", ["--lora", '{"latent-consistency/lcm-lora-sdv1-5": 1.0}'], "--lora"),
    ("lora-missing-file", ["--lora", '{"./missing.safetensors": 1}'], "--lora"),
    ("model-empty", ["--model", ""], "--model"),
    ("model-missing-path", ["--model", "./does/not/exist"], "--model"),
    ("model-not-weights", ["--model", "notes.txt"], "--model"),
    ("model-folder-not-diffusers", ["--model", "emptydir"], "--model"),
    ("controlnet-empty", ["--controlnet", ""], "--controlnet #1"),
    ("controlnet-channels-text", ["--controlnet", "x/y,channels=abc"], "--controlnet #1"),
    ("controlnet-channels-zero", ["--controlnet", "lllyasviel/control_v11p_sd15_canny,channels=0"], "--controlnet #1"),
    ("controlnet-unknown-option", ["--controlnet", "x/y,foo=bar"], "--controlnet #1"),
    ("controlnet-missing-path", ["--controlnet", "./missing_controlnet"], "--controlnet #1"),
    (
        "controlnet-four",
        ["--controlnet", "a/b", "--controlnet", "c/d", "--controlnet", "e/f", "--controlnet", "g/h"],
        "--controlnet",
    ),
    ("ipadapter-empty", ["--ipadapter", ""], "--ipadapter"),
    ("ipadapter-missing-file", ["--ipadapter", "./missing.bin"], "--ipadapter"),
    (
        "ipadapter-encoder-missing",
        ["--ipadapter", "h94/IP-Adapter/models/ip-adapter_sd15.bin", "--ipadapter-encoder", "./missing"],
        "--ipadapter-encoder",
    ),
    ("ipadapter-tokens-eight", ["--ipadapter-tokens", "8"], "--ipadapter-tokens"),
    ("ipadapter-type-unknown", ["--ipadapter-type", "mega"], "--ipadapter-type"),
    ("engines-dir-empty", ["--engines-dir", ""], "--engines-dir"),
    ("engines-dir-is-a-file", ["--engines-dir", "{tmp}/afile"], "--engines-dir"),
    ("engines-dir-under-a-file", ["--engines-dir", "{tmp}/afile/engines"], "--engines-dir"),
    ("from-config-missing", ["--from-config", "{tmp}/none.yaml"], "--from-config"),
    ("from-config-broken-yaml", ["--from-config", "bad.yaml"], "--from-config"),
    ("from-config-no-model", ["--from-config", "nomodel.yaml"], "--from-config"),
    ("from-config-a-list", ["--from-config", "list.yaml"], "--from-config"),
    ("check-after-config-only", ["--config-only", "--check"], "--check"),
]


def make_input_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("not a model\n")
    (folder / "emptydir").mkdir()
    (folder / "afile").write_text("a file where a folder should be\n")
    (folder / "bad.yaml").write_text("model_id: [unclosed\n")
    (folder / "nomodel.yaml").write_text("width: 512\n")
    (folder / "list.yaml").write_text("- a\n- b\n")


@pytest.mark.parametrize(("case", "args", "flag"), CLI_BAD_INPUTS, ids=[case[0] for case in CLI_BAD_INPUTS])
def test_cli_bad_input_is_refused_with_the_flag_and_writes_nothing(
    case: str, args: list[str], flag: str, tmp_path: Path
) -> None:
    make_input_files(tmp_path)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--engines-dir" not in args:
        args = [*args, "--engines-dir", str(tmp_path / "engines")]
    before = snapshot(tmp_path)
    started = time.monotonic()
    done = cli("build", *args, cwd=tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert flag in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "config.yaml" not in done.stdout
    assert snapshot(tmp_path) == before, "nothing may be written"
    naming = [line for line in done.stderr.splitlines() if flag in line]
    message = next((line for line in naming if "error" in line), naming[0]).replace(str(tmp_path), "<tmp>")
    FIGURES.setdefault("bad_inputs_cli", {})[case] = {"seconds": round(seconds, 3), "message": message}


# --- 1b. bad inputs through the parameters API (what the form hands the core) ------------------------------
# (id, values for params_from_values, the field the problem must name)
API_BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("steps-as-text", {"denoise_steps": "2"}, "denoise_steps"),
    ("steps-none", {"denoise_steps": None}, "denoise_steps"),
    ("steps-bool", {"denoise_steps": True}, "denoise_steps"),
    ("width-none", {"width": None}, "width"),
    ("height-float", {"height": 512.0}, "height"),
    ("cfg-type-unknown", {"cfg_type": "double"}, "cfg_type"),
    ("family-unknown", {"model_family": "sd3"}, "model_family"),
    ("consistency-lora-unknown", {"consistency_lora": "xyz"}, "consistency_lora"),
    ("scheduler-unknown", {"scheduler": "ddim"}, "scheduler"),
    ("lora-json-number", {"lora_json": "3"}, "lora_json"),
    ("lora-scale-null", {"lora_json": '{"a/b": null}'}, "lora_json"),
    ("controlnet-blank-id", {"use_controlnet": True, "controlnets": [{"model_id": "  "}]}, "controlnets[0].model_id"),
    (
        "controlnet-channels-negative",
        {"use_controlnet": True, "controlnets": [{"model_id": "a/b", "conditioning_channels": -1}]},
        "controlnets[0].conditioning_channels",
    ),
    (
        "controlnet-blank-preprocessor",
        {"use_controlnet": True, "controlnets": [{"model_id": "a/b", "preprocessor": " "}]},
        "controlnets[0].preprocessor",
    ),
    ("ipadapter-tokens-eight", {"use_ipadapter": True, "ipadapter_tokens": 8}, "ipadapter_tokens"),
    ("ipadapter-type-unknown", {"use_ipadapter": True, "ipadapter_type": "mega"}, "ipadapter_type"),
    ("ipadapter-blank-encoder", {"use_ipadapter": True, "ipadapter_encoder_path": ""}, "ipadapter_encoder_path"),
    ("cache-maxframes-zero", {"use_cached_attn": True, "cache_maxframes": 0}, "cache_maxframes"),
    ("frame-buffer-float", {"frame_buffer_size": 1.5}, "frame_buffer_size"),
    ("engines-dir-blank", {"engines_dir": "   "}, "engines_dir"),
]


@pytest.mark.parametrize(("case", "values", "field"), API_BAD_INPUTS, ids=[case[0] for case in API_BAD_INPUTS])
def test_api_bad_input_is_refused_naming_the_field_and_the_build_writes_nothing(
    case: str, values: dict[str, Any], field: str, tmp_path: Path
) -> None:
    values = {"engines_dir": str(tmp_path / "engines"), **values}
    params = params_from_values(values)
    started = time.perf_counter()
    problems = validate(params)
    validate_ms = (time.perf_counter() - started) * 1000
    assert has_errors(problems)
    named = [p for p in problems if p.severity == "error" and p.field == field]
    assert named, [str(p) for p in problems]
    assert all(said(p.message) and "\n" not in said(p.message) for p in problems)
    before = snapshot(tmp_path)
    events: list[JobEvent] = []
    result = run_build(params, runtime_defaults(), OPTIONS, events.append)
    assert result.outcome == "refused" and result.problems and not events
    assert_one_clear_line(result.reason)
    assert snapshot(tmp_path) == before
    FIGURES.setdefault("bad_inputs_api", {})[case] = {"validate_ms": round(validate_ms, 3), "message": str(named[0])}


# --- 2. stand-in faults ----------------------------------------------------------------------------------------
@pytest.fixture
def earlier(tmp_path: Path) -> tuple[Path, bytes]:
    """A proven build of the default parameters: its config.yaml and its exact bytes."""
    result = build(make(tmp_path))
    assert result.outcome == "built", result.reason
    assert result.config_path is not None
    return result.config_path, result.config_path.read_bytes()


def next_build_works(tmp_path: Path, config_path: Path) -> BuildResult:
    """The fault's parameters again, without the fault: built, and config.yaml now says so."""
    result = build(make(tmp_path, denoise_steps=2))
    assert result.outcome == "built", result.reason
    assert yaml.safe_load(config_path.read_text())["t_index_list"] == [32, 45]
    assert not temp_leftovers(config_path.parent)
    assert list_models(tmp_path / "engines"), "the engines library still reads the folder"
    return result


def fault_figures(name: str, result: BuildResult, intact: bool, after: BuildResult, **extra: Any) -> None:
    FIGURES.setdefault("faults", {})[name] = {
        "outcome": result.outcome,
        "reason": said(result.reason),
        "seconds_to_reason": result.duration,
        "earlier_config_intact": intact,
        "next_build": after.outcome,
        "next_build_seconds": after.duration,
        **extra,
    }


@pytest.mark.parametrize(
    ("mode", "stage", "fragments"),
    [
        ("exception", "load", ("RuntimeError", "illegal memory access")),
        ("crash", "load", ("segmentation fault",)),
        ("crash", "build", ("segmentation fault",)),
        ("oomkill", "load", ("killed (SIGKILL)", "out of memory")),
        ("oomkill", "build", ("killed (SIGKILL)",)),
        ("fallback", "load", ("no UNet engine", "fell back to PyTorch")),
    ],
)
def test_standin_fault_gives_a_reason_keeps_the_config_and_the_next_build_works(
    mode: str,
    stage: str,
    fragments: tuple[str, ...],
    tmp_path: Path,
    earlier: tuple[Path, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path, before = earlier
    monkeypatch.setenv("STANDIN_SD_MODE", mode)
    monkeypatch.setenv("STANDIN_FAIL_STAGE", stage)
    result = build(make(tmp_path, denoise_steps=2))
    assert result.outcome == "failed"
    assert_one_clear_line(result.reason, *fragments)
    assert config_path.read_bytes() == before
    assert not temp_leftovers(config_path.parent)
    assert result.log_path and result.log_path.is_file()
    monkeypatch.delenv("STANDIN_SD_MODE")
    monkeypatch.delenv("STANDIN_FAIL_STAGE")
    after = next_build_works(tmp_path, config_path)
    fault_figures(f"{mode}" + ("" if stage == "load" else f" (during the {stage})"), result, True, after)


def test_hang_then_cancel_stops_quickly_and_keeps_the_config(
    tmp_path: Path, earlier: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, before = earlier
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("STANDIN_SD_MODE", "hang")
    monkeypatch.setenv("STANDIN_GRANDCHILD_PIDFILE", str(pidfile))
    cancel = threading.Event()
    hanging = threading.Event()
    box: list[BuildResult] = []

    def on_event(event: JobEvent) -> None:
        if said(event.message) == "hanging":
            hanging.set()

    worker = threading.Thread(target=lambda: box.append(build(make(tmp_path, denoise_steps=2), cancel, on_event)))
    worker.start()
    assert hanging.wait(SUITE_TIMEOUT), "the stand-in never reached its hang"
    grandchild = int(pidfile.read_text())
    pressed = time.monotonic()
    cancel.set()
    worker.join(SUITE_TIMEOUT)
    cancel_seconds = time.monotonic() - pressed
    assert not worker.is_alive() and box[0].outcome == "cancelled"
    assert cancel_seconds < budget(15), cancel_seconds  # wide bound; the figure is recorded
    assert_one_clear_line(box[0].reason, "cancelled")
    wait_until(lambda: gone(grandchild), "the hanging build's grandchild to end", timeout=budget(5))
    assert config_path.read_bytes() == before
    monkeypatch.delenv("STANDIN_SD_MODE")
    after = next_build_works(tmp_path, config_path)
    fault_figures("hang + cancel", box[0], True, after, seconds_from_cancel_to_result=round(cancel_seconds, 3))


def _fd_name(fd: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file is being synced")
def test_disk_full_while_writing_config_yaml_keeps_the_earlier_one(
    tmp_path: Path, earlier: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, before = earlier
    real_fsync = os.fsync
    failed: list[str] = []

    def full_disk_fsync(fd: int) -> None:
        name = _fd_name(fd)
        if name.startswith(".config.yaml."):  # atomic_write_text's temp file for config.yaml
            failed.append(name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    result = build(make(tmp_path, denoise_steps=2))
    assert failed, "the fault was not injected"
    assert result.outcome == "failed"
    assert_one_clear_line(result.reason, "config.yaml could not be written", "the disk is full")
    assert config_path.read_bytes() == before
    assert not temp_leftovers(config_path.parent), "the half-written temp file is removed"
    monkeypatch.setattr(os, "fsync", real_fsync)
    after = next_build_works(tmp_path, config_path)
    fault_figures("disk full while writing config.yaml", result, True, after)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file is being synced")
def test_disk_full_everywhere_is_a_clear_failure(
    tmp_path: Path, earlier: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write in the engines folder fails (the build's job file, the configs, build.json)."""
    config_path, before = earlier
    real_fsync = os.fsync
    engines = str(tmp_path / "engines")

    def full_disk_fsync(fd: int) -> None:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(engines):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    result = build(make(tmp_path, denoise_steps=2))
    assert result.outcome == "failed"
    assert_one_clear_line(result.reason, "the disk is full")
    assert config_path.read_bytes() == before
    assert not temp_leftovers(config_path.parent)
    monkeypatch.setattr(os, "fsync", real_fsync)
    after = next_build_works(tmp_path, config_path)
    fault_figures("disk full for every file in the engines folder", result, True, after)


class ReadOnly:
    """Makes a folder read-only for this process, as the OS would for a non-root user (CI runs as root, for whom
    chmod does not stop writes, and mounts are not available): os.access says no, and creating, replacing or
    opening for writing anything under it raises PermissionError(EACCES)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.folder = os.path.abspath(folder)
        self.refused: list[str] = []
        real_access, real_open, real_mkdir, real_replace, real_io_open = (
            os.access,
            os.open,
            os.mkdir,
            os.replace,
            io.open,
        )

        def inside(path: Any) -> bool:
            try:
                text = os.path.abspath(os.fspath(path))
            except TypeError:
                return False
            return bool(text == self.folder or text.startswith(self.folder + os.sep))

        def refuse(path: Any) -> None:
            self.refused.append(os.fspath(path))
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

        def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
            if mode & os.W_OK and inside(path):
                return False
            return real_access(path, mode, *args, **kwargs)

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                refuse(path)
            return real_open(path, flags, *args, **kwargs)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if inside(path) and not os.path.isdir(path):
                refuse(path)
            real_mkdir(path, *args, **kwargs)

        def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
            if inside(source) or inside(target):
                refuse(target)
            real_replace(source, target, *args, **kwargs)

        def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
                refuse(file)
            return real_io_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(io, "open", io_open)
        monkeypatch.setattr(builtins, "open", io_open)


def test_read_only_engines_folder_is_refused_before_building(
    tmp_path: Path, earlier: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, before = earlier
    engines = tmp_path / "engines"
    state = snapshot(engines)
    with monkeypatch.context() as patch:
        ReadOnly(patch, engines)
        result = build(make(tmp_path, denoise_steps=2))
    assert result.outcome == "refused"
    assert [p.field for p in result.problems if p.severity == "error"] == ["engines_dir"]
    assert "not writable" in said(result.problems[0].message)
    assert_one_clear_line(result.reason)
    assert config_path.read_bytes() == before and snapshot(engines) == state
    after = next_build_works(tmp_path, config_path)
    fault_figures("read-only engines folder", result, True, after, problem=str(result.problems[0]))


def test_read_only_model_folder_fails_with_a_clear_reason(
    tmp_path: Path, earlier: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engines folder is writable but the model's folder in it is not: validation cannot see it, the build
    must still end with a reason (not an internal error) and leave config.yaml alone."""
    config_path, before = earlier
    folder = config_path.parent
    with monkeypatch.context() as patch:
        guard = ReadOnly(patch, folder)
        result = build(make(tmp_path, denoise_steps=2))
    assert guard.refused, "the fault was not injected"
    assert result.outcome == "failed"
    assert_one_clear_line(result.reason, "permission denied", str(folder))
    assert config_path.read_bytes() == before
    after = next_build_works(tmp_path, config_path)
    fault_figures("read-only model folder inside a writable engines folder", result, True, after)


@pytest.mark.parametrize("mode", ["exception", "crash", "oomkill", "fallback"])
def test_cli_fault_exits_1_with_one_reason_line(mode: str, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    first = cli("build", "--engines-dir", str(engines), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    config_path = Path(first.stdout.strip().splitlines()[-1])
    before = config_path.read_bytes()
    env_mode = {**os.environ, "STANDIN_SD_MODE": mode, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    failed = run_process(
        [sys.executable, str(ROOT / "gradio_prepare.py"), "build", "--steps", "2", "--engines-dir", str(engines)],
        env=env_mode,
        cwd=tmp_path,
    )
    assert failed.returncode == 1, failed.stderr
    first_line = failed.stderr.splitlines()[0]
    assert first_line.startswith("failed: ") and "Traceback" not in failed.stderr, failed.stderr
    assert config_path.read_bytes() == before
    again = cli("build", "--steps", "2", "--engines-dir", str(engines), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    record("cli_faults", mode, first_line)


@pytest.mark.skipif(os.name == "nt", reason="POSIX re-parenting tells the child its app died")
@pytest.mark.parametrize("command", ["build", "check"])
def test_a_child_ends_when_its_app_is_killed(command: str, tmp_path: Path) -> None:
    """SIGKILL of the app (or a closed console) mid-build or mid-check: the GPU lock dies with the app, so a child
    left running would share the GPU with the next build, and nobody would read its result. It ends, and so does
    everything it started."""
    engines = tmp_path / "engines"
    pidfile = tmp_path / "grandchild.pid"
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    if command == "build":
        env.update({"STANDIN_SD_MODE": "hang", "STANDIN_GRANDCHILD_PIDFILE": str(pidfile)})
        args = ["build", "--engines-dir", str(engines)]
        expected = 2  # the build child and the stand-in's grandchild
    else:
        built = cli("build", "--engines-dir", str(engines), cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        env.update({"STANDIN_SD_MODE": "slowframes", "STANDIN_FRAME_SECONDS": "0.5"})
        args = ["check", built.stdout.strip().splitlines()[-1], "--frames", "200"]
        expected = 1
    app = spawn([sys.executable, str(ROOT / "gradio_prepare.py"), *args], env=env, cwd=tmp_path, capture=False)
    family: list[psutil.Process] = []

    def working() -> bool:
        family[:] = psutil.Process(app.pid).children(recursive=True)
        return len(family) >= expected and (command == "check" or pidfile.exists())

    wait_until(working, f"the {command} child at work")
    time.sleep(1.0)  # well into the work (any moment will do; this one is not at its start)
    app.send_signal(signal.SIGKILL)
    app.wait()
    killed = time.monotonic()
    _, alive = psutil.wait_procs(family, timeout=budget(15))
    seconds = time.monotonic() - killed
    for process in alive:  # never leave them behind, even when the assertion fails
        process.kill()
    assert not alive, f"still running after the app died: {[p.pid for p in alive]}"
    record("faults_app_killed", f"{command}: seconds until the child and all it started are gone", round(seconds, 2))


# --- 3. eight builds at once -----------------------------------------------------------------------------------
CONCURRENT_PARAMS: list[dict[str, Any]] = [
    {"model": "stabilityai/sd-turbo", "denoise_steps": 1, "width": 512},
    {"model": "stabilityai/sd-turbo", "denoise_steps": 2, "width": 640},
    {"model": "stabilityai/sdxl-turbo", "denoise_steps": 1, "width": 768, "height": 768},
    {"model": "stabilityai/sdxl-turbo", "denoise_steps": 3, "width": 1024, "height": 1024},
    {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "consistency_lora": "lcm", "denoise_steps": 4},
    {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "consistency_lora": "tcd", "denoise_steps": 2},
    {"model": "KBlueLeaf/kohaku-v2.1", "consistency_lora": "lcm", "denoise_steps": 2, "height": 384},
    {"model": "KBlueLeaf/kohaku-v2.1", "consistency_lora": "lcm", "denoise_steps": 1, "frame_buffer_size": 2},
]


def written_config(text: str) -> dict[str, Any]:
    """A config file's mapping, from a whole file only: its header first (the runtime part of the header says where
    the values came from, which differs between a first build and a later one; sdprep/runtime.py)."""
    assert text.startswith(config_header_start()), text[:200]
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def config_header_start() -> str:
    return "# StreamDiffusion config written by gradio_prepare.py"


def test_eight_builds_at_once_run_one_at_a_time_and_each_is_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intervals: dict[str, tuple[float, float]] = {}
    real_build_and_check = pipeline_module.build_and_check  # what the board calls

    def timed_build_and_check(params: BakedParams, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return real_build_and_check(params, *args, **kwargs)
        finally:
            intervals[derive_key(params)] = (started, time.monotonic())

    monkeypatch.setattr(jobs_module, "build_and_check", timed_build_and_check)
    board = JobBoard()
    params = [make(tmp_path, **values) for values in CONCURRENT_PARAMS]
    submitted: list[Any] = [None] * len(params)
    gate = threading.Barrier(len(params))

    def submit(index: int) -> None:
        gate.wait()
        submitted[index] = board.submit(params[index], runtime_defaults(), OPTIONS)

    started = time.monotonic()
    threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(params))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in submitted:
        for _events, result in job.follow(interval=0.2):
            if result is not None:
                break
    total = time.monotonic() - started

    spans = sorted(intervals.values())
    assert len(spans) == len(params)
    overlaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert all(gap >= 0 for gap in overlaps), f"builds overlapped: {overlaps}"
    for job, p in zip(submitted, params, strict=True):
        result = job.result
        assert result.outcome == "built", result.reason
        variant_config = result.config_path.parent / "configs" / f"{result.variant}.yaml"
        assert written_config(variant_config.read_text()) == make_config(p, runtime_defaults())
        manifest = json.loads((result.config_path.parent / "build.json").read_text())
        record_ = manifest["variants"][result.variant]
        assert record_["params"]["model"] == p.model and record_["params"]["width"] == p.width
        assert all((result.config_path.parent / e).is_file() for e in record_["engines"])
    # Each model's config.yaml is the one of its build that ran last.
    last_by_folder: dict[Path, tuple[float, BakedParams]] = {}
    for p in params:
        end = intervals[derive_key(p)][1]
        folder = Path(p.engines_dir) / submitted[params.index(p)].result.config_path.parent.name
        if folder not in last_by_folder or end > last_by_folder[folder][0]:
            last_by_folder[folder] = (end, p)
    for folder, (_, p) in last_by_folder.items():
        assert written_config((folder / "config.yaml").read_text()) == make_config(p, runtime_defaults())
    order_started = [derive_key(p) for p in params]
    run_order = sorted(order_started, key=lambda key: intervals[key][0])
    submit_order = sorted(order_started, key=lambda key: submitted[order_started.index(key)].id)
    record(
        "concurrent",
        "jobboard",
        {
            "builds": len(params),
            "total_seconds": round(total, 2),
            "per_build_seconds": [round(b - a, 3) for a, b in spans],
            "smallest_gap_between_builds_ms": round(min(overlaps) * 1000, 2),
            "overlaps": sum(gap < 0 for gap in overlaps),
            "ran_in_submission_order": run_order == submit_order,
        },
    )
    assert run_order == submit_order, "builds must run in the order they were submitted (the queue position shown)"


def test_a_queued_build_cancelled_ends_at_once_and_the_queue_goes_on(tmp_path: Path) -> None:
    board = JobBoard()
    hanging = board.submit(make(tmp_path, model="standin/hang-model"), runtime_defaults(), OPTIONS)
    queued = board.submit(make(tmp_path, denoise_steps=2), runtime_defaults(), OPTIONS)
    last = board.submit(make(tmp_path, denoise_steps=3), runtime_defaults(), OPTIONS)
    wait_until(lambda: any(said(event.message) == "hanging" for event in list(hanging.events)), "the build's hang")
    assert board.position(queued) == 1 and board.position(last) == 2
    pressed = time.monotonic()
    queued.cancel()
    for _ in queued.follow(interval=0.1):
        pass
    queued_cancel_seconds = time.monotonic() - pressed
    assert queued.result is not None and queued.result.outcome == "cancelled"
    assert hanging.running, "cancelling a queued build leaves the running one alone"
    assert queued_cancel_seconds < budget(5), queued_cancel_seconds
    hanging.cancel()
    for _ in last.follow(interval=0.2):
        pass
    assert hanging.result is not None and hanging.result.outcome == "cancelled"
    assert last.result is not None
    assert last.result.outcome == "built", last.result.reason
    record("concurrent", "queued build cancelled: seconds to its result", round(queued_cancel_seconds, 3))


def derive_key(params: BakedParams) -> str:
    return f"{params.model}|{params.denoise_steps}|{params.width}x{params.height}|{params.consistency_lora}|{params.frame_buffer_size}"


# --- 4. SIGKILL while writing configs --------------------------------------------------------------------------
WRITER = r"""
import itertools, json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from sdprep.config import render_config, write_config
from sdprep.params import params_from_values
engines, runtime = sys.argv[2], json.loads(sys.argv[3])
texts = [
    render_config(params_from_values({"engines_dir": engines, "denoise_steps": s, "width": w}), runtime)
    for s in (1, 2, 3, 4) for w in (512, 768)
]
target = Path(engines) / "stabilityai--sd-turbo" / "config.yaml"
write_config(target, texts[0])
print("ready", flush=True)
for i in itertools.count(1):
    write_config(target, texts[i % len(texts)])
"""


@pytest.mark.slow
def test_sigkill_while_writing_configs_never_leaves_a_partial_config(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    runtime = runtime_defaults()
    texts = {
        render_config(params_from_values({"engines_dir": str(engines), "denoise_steps": s, "width": w}), runtime)
        for s in (1, 2, 3, 4)
        for w in (512, 768)
    }
    target = engines / "stabilityai--sd-turbo" / "config.yaml"
    rng = random.Random(20261127)
    kills, seen, leftovers_max = 30, set(), 0
    for _ in range(kills):
        writer = spawn([sys.executable, "-c", WRITER, str(ROOT), str(engines), json.dumps(runtime)])
        assert writer.stdout is not None
        writer.stdout.wait_for("ready")
        time.sleep(rng.uniform(0.0, 0.08))  # a random moment of its writing loop
        writer.send_signal(signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL
        text = target.read_text(encoding="utf-8")
        assert text in texts, "config.yaml is always one complete config"
        assert isinstance(yaml.safe_load(text), dict)
        assert read_config(target)["model_id"] == "stabilityai/sd-turbo"
        seen.add(text)
        leftovers = temp_leftovers(target.parent)
        leftovers_max = max(leftovers_max, len(leftovers))
        assert all(p.name.startswith(".config.yaml.") and p.suffix == ".tmp" for p in leftovers)
    models = list_models(engines)
    assert [m.config for m in models] == [target], "a temp file is never taken for a config"
    # The next build clears temp files a killed writer left, once they are old enough not to be a live write.
    leftovers = temp_leftovers(target.parent)
    an_hour_ago = time.time() - 3600
    for path in leftovers:
        os.utime(path, (an_hour_ago, an_hour_ago))
    result = build(make(tmp_path, denoise_steps=2))
    assert result.outcome == "built", result.reason
    assert not temp_leftovers(target.parent)
    record(
        "sigkill_writes",
        "writer loop",
        {
            "kills": kills,
            "partial_configs": 0,
            "distinct_complete_configs_seen": len(seen),
            "temp_files_left_by_kills": len(leftovers),
            "temp_files_left_after_the_next_build": 0,
        },
    )


@pytest.mark.slow
def test_sigkill_of_the_cli_during_builds_never_leaves_a_partial_config(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    runtime = runtime_defaults()
    variants = [make(tmp_path, denoise_steps=steps) for steps in (1, 2, 3, 4)]
    configs = [make_config(p, runtime) for p in variants]
    target = engines / "stabilityai--sd-turbo" / "config.yaml"
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    rng = random.Random(7)

    def cli_build(steps: int) -> Spawned:
        return spawn(
            [
                *(sys.executable, str(ROOT / "gradio_prepare.py"), "build", "--force", "--steps", str(steps)),
                *("--engines-dir", str(engines)),
            ],
            env=env,
            cwd=tmp_path,
            capture=False,
        )

    # One whole build first: the kills then fall anywhere in a build of this machine's (and load's) length.
    started = time.monotonic()
    assert cli_build(4).wait() == 0
    whole = time.monotonic() - started
    kills, with_config, mid_build = 12, 0, 0
    for index in range(kills):
        process = cli_build(index % 4 + 1)
        time.sleep(rng.uniform(0.2, 1.0) * whole)
        try:
            orphans = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            orphans = []
        mid_build += process.process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        psutil.wait_procs(orphans, timeout=SUITE_TIMEOUT)
        if target.exists():
            with_config += 1
            text = target.read_text(encoding="utf-8")
            assert written_config(text) in configs, "config.yaml is always one complete config"
        manifest = target.parent / "build.json"
        if manifest.exists():
            json.loads(manifest.read_text(encoding="utf-8"))
    result = run_build(variants[1], runtime, OPTIONS)
    assert result.ok, result.reason
    assert written_config(target.read_text(encoding="utf-8")) == configs[1]
    assert not (target.parent / ".aside").exists()
    record(
        "sigkill_writes",
        "CLI build killed",
        {
            "kills": kills,
            "whole_build_seconds": round(whole, 2),
            "kills_before_the_cli_ended": mid_build,
            "partial_configs": 0,
            "kills_after_a_config_existed": with_config,
            "next_build": result.outcome,
        },
    )


# --- 5. the same through the web UI's API (a started app, gradio_client) ---------------------------------------
# The app process is started once for these tests; every case then checks that it still serves. The engines folder
# is the server's (--engines-dir): a request cannot name one, so the CLI's engines-folder cases have no UI twin
# (tests/test_hardening.py shows that whatever a request sends, nothing outside that folder is touched).
UI_BAD_INPUTS: list[tuple[str, str, dict[str, Any], str]] = [
    # (id, endpoint, values, what must be named: "(field)" as the form labels it, or the value Gradio rejects)
    ("width-not-multiple-of-8", "/build", {"width": 500}, "(width)"),
    ("lora-json-list", "/build", {"lora_json": "[1]"}, "(lora_json)"),
    ("lora-broken-json", "/build", {"lora_json": "{bad"}, "(lora_json)"),
    ("lora-is-consistency-lora", "/build", {"lora_json": '{"h1t/TCD-SD15-LoRA": 1}'}, "(lora_json)"),
    ("lora-scale-nan", "/build", {"lora_json": '{"owner/style": NaN}'}, "(lora_json)"),
    ("model-empty", "/build", {"model": ""}, "(model_id)"),
    ("model-missing-path", "/build", {"model": "/no/such/model.safetensors"}, "(model_id)"),
    ("model-dev-zero", "/build", {"model": "/dev/zero"}, "(model_id)"),
    ("model-4097-characters", "/build", {"model": "a" * 4097}, "(model_id)"),
    (
        "no-lcm-lora-for-sd21",
        "/build",
        {"model": "stabilityai/stable-diffusion-2-1", "consistency_lora": "lcm"},
        "(consistency_lora)",
    ),
    ("unet-batch-too-big", "/build", {"denoise_steps": 4, "cfg_type": "full"}, "(denoise_steps)"),
    (
        "controlnet-channels-text",
        "/build",
        {"use_controlnet": True, "cn_count": 1, "cn0_conditioning_channels": "abc"},
        "ControlNet 1: Conditioning channels",
    ),
    (
        "controlnet-empty-id",
        "/build",
        {"use_controlnet": True, "cn_count": 1, "cn0_model_id": "  "},
        "ControlNet 1: Model id",
    ),
    ("ipadapter-empty-path", "/build", {"use_ipadapter": True, "ipadapter_model_path": ""}, "(ipadapter_model_path)"),
    ("steps-zero", "/build", {"denoise_steps": 0}, "(denoise_steps)"),
    ("steps-nine", "/build", {"denoise_steps": 9}, "(denoise_steps)"),
    ("width-too-big", "/build", {"width": 2048}, "(width)"),
    ("family-unknown", "/build", {"model_family": "sd3"}, "sd3 is not in the list of choices"),
    ("cfg-type-unknown", "/build", {"cfg_type": "bogus"}, "bogus is not in the list of choices"),
    (
        "ipadapter-tokens-eight",
        "/build",
        {"use_ipadapter": True, "ipadapter_tokens": 8},
        "8 (type: <class 'int'>) is not in the list of choices",
    ),
    ("save-width-not-multiple-of-8", "/save_config", {"width": 500}, "(width)"),
    ("save-lora-broken-json", "/save_config", {"lora_json": "{bad"}, "(lora_json)"),
]


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_app(tmp_path_factory.mktemp("faults-ui")) as running:
        yield running


def still_serving(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=SUITE_TIMEOUT) as response:
        return bool(response.status == 200)


def problems_shown(api: Any, values: dict[str, Any]) -> str:
    """What the form shows for these values (every section's problems), as the preview renders it."""
    out = api.call("/preview", **values)
    shown = "\n".join(str(value) for name, value in out.items() if name.startswith("problems-") or name == "summary")
    return "\n".join(" ".join(re.sub(r"<[^>]+>", " ", line).split()) for line in shown.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize(("case", "endpoint", "values", "named"), UI_BAD_INPUTS, ids=[c[0] for c in UI_BAD_INPUTS])
def test_ui_bad_input_is_refused_naming_the_field_and_the_server_keeps_serving(
    case: str, endpoint: str, values: dict[str, Any], named: str, ui_app: Any
) -> None:
    engines = Path(ui_app.engines)
    before = snapshot(engines)
    api = Api(ui_app.url)
    started = time.monotonic()
    try:
        out = api.call(endpoint, **values)
        shown = "\n".join(str(value) for value in out.values())
        how = "form"
    except AppError as error:
        shown, how = str(error), "gradio"
    seconds = time.monotonic() - started
    if endpoint == "/save_config" and how == "form":
        assert "Nothing was written" in shown, shown
        shown = problems_shown(api, values)  # the save names no field; the form beside it does
    elif how == "form":
        assert "Not started" in shown, shown
    assert named in shown, shown
    assert "Traceback" not in shown
    assert snapshot(engines) == before, "nothing may be written"
    assert still_serving(ui_app.url)
    assert api.call("/preview")["summary"].startswith("✔")
    message = next((line for line in shown.splitlines() if named in line), shown)
    FIGURES.setdefault("bad_inputs_ui", {})[case] = {
        "seconds": round(seconds, 3),
        "refused_by": how,
        "message": message if len(message) < 300 else message[:297] + "...",
    }


_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) [A-Z]+ ")


def child_interval(log: Path) -> tuple[float, float]:
    """The first and last time stamp the build child's logging wrote into a build log (ms resolution)."""
    stamps = []
    for match in _STAMP.finditer(log.read_text(encoding="utf-8")):
        stamps.append(time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000)
    assert stamps, f"no child time stamps in {log}"
    return min(stamps), max(stamps)


@pytest.mark.slow
def test_eight_build_requests_at_once_through_the_ui_run_one_at_a_time(ui_app: Any) -> None:
    engines = Path(ui_app.engines)
    requests = [dict(values) for values in CONCURRENT_PARAMS]
    for values in requests:  # the form's names for what CONCURRENT_PARAMS sets directly
        values.setdefault("height", 512)
    apis = [Api(ui_app.url) for _ in requests]  # eight pages: eight sessions
    outputs: list[dict[str, Any] | None] = [None] * len(requests)
    gate = threading.Barrier(len(requests))

    def press_build(index: int) -> None:
        gate.wait()
        outputs[index] = apis[index].call("/build", **requests[index], check=False)

    started = time.monotonic()
    threads = [threading.Thread(target=press_build, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SUITE_TIMEOUT)
    total = time.monotonic() - started
    assert all(out is not None for out in outputs), "every request got an answer"

    spans: list[tuple[float, float, BakedParams]] = []
    for values, out in zip(requests, outputs, strict=True):
        assert out is not None and "✔ Built" in out["build-result"], out
        params = params_from_values({**values, "engines_dir": str(engines)})
        folder = derive.engine_dir(params)
        assert str(folder / "config.yaml") in out["build-result"]
        variant = variant_id(derive.variant_name(params), make_config(params, runtime_defaults()))
        assert written_config((folder / "configs" / f"{variant}.yaml").read_text()) == make_config(
            params, runtime_defaults()
        )
        record_ = json.loads((folder / "build.json").read_text())["variants"][variant]
        assert all((folder / engine).is_file() for engine in record_["engines"])
        spans.append((*child_interval(folder / record_["log"]), params))
    spans.sort(key=lambda span: span[0])
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert all(gap >= 0 for gap in gaps), f"two build children ran at once: gaps {gaps}"
    last: dict[Path, BakedParams] = {}
    for _, _, params in spans:
        last[derive.engine_dir(params)] = params
    for folder, params in last.items():
        assert written_config((folder / "config.yaml").read_text()) == make_config(params, runtime_defaults())
    assert still_serving(ui_app.url)
    record(
        "concurrent",
        "ui",
        {
            "requests": len(requests),
            "total_seconds": round(total, 2),
            "child_runs_seconds": [round(b - a, 3) for a, b, _ in spans],
            "smallest_gap_between_children_ms": round(min(gaps) * 1000, 1),
            "overlaps": sum(gap < 0 for gap in gaps),
        },
    )
