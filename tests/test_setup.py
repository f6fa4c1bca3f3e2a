"""`setup` and `doctor`, for real, offline: uv installs stand-in wheels (torch, TensorRT, the pins) and a git
repository of the stand-in StreamDiffusion into a partial environment, the self-test proves it, and only then it
takes the target's place. Then `probe` picks it by default and a stand-in build succeeds with it.

The wheelhouse carries exactly the versions sdprep/setup/pins.py asks for, so the commands are the ones a user's
setup runs; only the package source differs (--find-links DIR --no-index instead of the indexes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdprep.jobs.process import venv_python
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message
from sdprep.setup import job as setup_job
from sdprep.setup.failures import explain
from sdprep.setup.pins import CUDA_VARIANTS, FORKS, FP8_PACKAGES, IPADAPTER_PACKAGE, TENSORRT_COMPANIONS
from sdprep.setup.plan import SetupRequest, choose_variant, resolve_fork, steps
from sdprep.text import word
from testkit.processes import run as run_process
from testkit.processes import spawn
from testkit.timing import SUITE_TIMEOUT, budget, wait_until
from tests.standin_wheels import build_wheelhouse, make_streamdiffusion_repo

from .conftest import ROOT

pytestmark = pytest.mark.slow
CU128 = CUDA_VARIANTS[0]
DRIVER = "570.86.10"


def pinned_placeholders() -> tuple[tuple[str, str], ...]:
    """The companions setup pins and the FP8 set, as stand-in wheels of exactly those versions (1.0 where the fork
    pins none)."""
    found = []
    for requirement in (*TENSORRT_COMPANIONS, *FP8_PACKAGES):
        match = re.match(r"([A-Za-z0-9_.-]+)\s*(?:(?:==|~=|>=)\s*([0-9.]+))?", requirement)
        assert match is not None, requirement
        found.append((match.group(1), match.group(2) or "1.0"))
    return (*found, ("controlnet-aux", "0.0.10"))


@dataclass
class Sources:
    wheels: Path
    fork: str  # git+file:///...@sha
    cache: Path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    root = tmp_path_factory.mktemp("setup-sources")
    wheels = build_wheelhouse(
        root / "wheels",
        torch_versions=(CU128.torch,),
        tensorrt=((CU128.tensorrt.partition("==")[2], 12),),
        placeholders=pinned_placeholders(),
    )
    spec = make_streamdiffusion_repo(root / "sd-repo")
    return Sources(wheels, spec.partition(" @ ")[2], root / "uv-cache")


def env_for(sources: Sources, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "STANDIN_", "SDPREP_PYTHON"))}
    env.pop("SDPREP_STREAMDIFFUSION_SRC", None)
    env.update(
        UV_NO_CONFIG="1", UV_CACHE_DIR=str(sources.cache), UV_CUDA_DRIVER_VERSION=DRIVER, UV_PYTHON_DOWNLOADS="never"
    )
    env.update(extra)
    return env


def cli(
    sources: Sources, *args: str, env: dict[str, str] | None = None, timeout: float = SUITE_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return run_process(
        [sys.executable, str(ROOT / "gradio_prepare.py"), *args], env=env or env_for(sources), timeout=timeout
    )


def setup_args(sources: Sources, target: Path, *more: str) -> list[str]:
    return [
        "setup",
        "--target",
        str(target),
        "--find-links",
        str(sources.wheels),
        "--no-index",
        "--fork",
        sources.fork,
        *more,
    ]


@pytest.fixture(scope="module")
def made(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment set up once for the module (the slow part), at a target of its own; with its output in a
    code page without the app's marks, to a file (`run.bat setup > log.txt` on a Windows in cp1251); with the FP8
    set, as an RTX 40 gets it (--with fp8: nvidia-smi is not here to say the compute capability)."""
    target = tmp_path_factory.mktemp("made") / ".venv-build"
    log = target.with_name("setup-log.txt")
    with open(log, "wb") as handle:
        done = subprocess.run(
            [sys.executable, str(ROOT / "gradio_prepare.py"), *setup_args(sources, target, "--with", "fp8")],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env_for(sources, PYTHONIOENCODING="cp1251"),
            timeout=300,
        )
    said = log.read_bytes().decode("cp1251")
    assert done.returncode == 0, said
    assert "Traceback" not in said and "Self-test" in said, said
    return target


# --- the plan, pure ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("driver", "windows", "expected"),
    [
        ((580, 65, 6), False, "cu128"),
        ((570, 26), False, "cu128"),
        ((565, 90), False, "cu126"),
        ((572, 16), True, "cu128"),
        ((566, 3), True, "cu126"),
    ],
)
def test_cuda_build_follows_the_driver(driver: tuple[int, ...], windows: bool, expected: str) -> None:
    chosen = choose_variant("auto", driver, windows)
    assert not isinstance(chosen, Message) and chosen.name == expected


def test_no_driver_or_an_old_one_is_said_with_what_to_do() -> None:
    none = choose_variant("auto", None)
    assert isinstance(none, Message) and "--cuda cu128" in word(none)
    old = choose_variant("auto", (535, 54, 3), windows=False)
    assert isinstance(old, Message) and "535.54.03" in word(old) and "560.28.03" in word(old)
    explicit = choose_variant("cu126", None)
    assert not isinstance(explicit, Message) and explicit.name == "cu126"


def test_forks_by_name_or_git_url() -> None:
    assert resolve_fork("forkni") == FORKS["forkni"]
    custom = resolve_fork("https://github.com/me/StreamDiffusion@abc123")
    assert (
        not isinstance(custom, Message)
        and custom.requirement() == "streamdiffusion[tensorrt] @ git+https://github.com/me/StreamDiffusion@abc123"
    )
    assert isinstance(resolve_fork("not a fork"), Message)


def test_steps_pin_torch_for_every_later_step(tmp_path: Path) -> None:
    request = SetupRequest(target=str(tmp_path / "v"))
    planned = {
        step.id: step for step in steps(request, CU128, FORKS["forkni"], tmp_path / "v.partial", tmp_path / "c.txt")
    }
    assert list(planned) == ["venv", "torch", "fork", "tensorrt"]
    assert planned["torch"].command[planned["torch"].command.index("--torch-backend") :][:2] == [
        "--torch-backend",
        "cu128",
    ]
    assert "torch==2.8.0+cu128" in planned["torch"].command
    for later in ("fork", "tensorrt"):
        assert str(tmp_path / "c.txt") in planned[later].command, "the torch build chosen first stays"
    assert planned["fork"].env == {"STREAMDIFFUSION_CUDA_VERSION": "12.8"}
    assert (
        "tensorrt-cu12==10.16.1.11" in planned["tensorrt"].command
        and "https://pypi.nvidia.com" in planned["tensorrt"].command
    )
    assert FORKS["forkni"].requirement() in planned["fork"].command
    assert "cuda_ipc" not in FORKS["forkni"].requirement() and "ipadapter" not in FORKS["forkni"].requirement()


def test_the_ipadapter_package_goes_with_every_fork_at_the_pinned_commit(tmp_path: Path) -> None:
    """The fork's TensorRT path imports diffusers_ipadapter for every build; setup installs it from the fork's pin,
    and an offline install takes the wheel of that commit by name and version."""
    pinned = "diffusers-ipadapter @ git+https://github.com/livepeer/Diffusers_IPAdapter.git@405f87da42932e30bd55ee8dca3ce502d7834a99"
    for fork in ("forkni", "livepeer", "https://github.com/me/StreamDiffusion@abc123"):
        resolved = resolve_fork(fork)
        assert not isinstance(resolved, Message)
        for offline, wanted in ((False, pinned), (True, "diffusers-ipadapter==0.1.1")):
            request = SetupRequest(target=str(tmp_path / "v"), no_index=offline)
            planned = {s.id: s for s in steps(request, CU128, resolved, tmp_path / "v.partial", tmp_path / "c.txt")}
            assert wanted in planned["fork"].command
            assert planned["fork"].command.index(resolved.requirement()) < planned["fork"].command.index(wanted)
    assert IPADAPTER_PACKAGE.requirement() == pinned


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "error: Failed to fetch: `https://pypi.org/simple/torch/`\n  Caused by: dns error: failed to lookup address",
            "could not be reached",
        ),
        ("error: Git executable not found. Ensure that Git is installed", "git is not installed"),
        ("fatal: couldn't find remote ref refs/heads/nope", "does not exist"),
        ("ModuleNotFoundError: No module named 'tensorrt_bindings'", "half installed"),
        ("ImportError: libcudnn.so.9: cannot open shared object file", "cuDNN"),
        ("[TRT] [E] CUDA initialization failure with error: 35", "driver is too old"),
        ("OSError: [Errno 28] No space left on device", "disk is full"),
    ],
)
def test_known_failures_are_named(text: str, reason: str) -> None:
    explained = explain(text)
    assert explained is not None and reason in word(explained)


# What uv printed on a GPU machine without a network (a real run), after setup's own plan line naming GitHub.
UV_OFFLINE_ON_A_GPU_MACHINE = """Plan: torch 2.8.0+cu128 (cu128), streamdiffusion @ git+https://github.com/forkni/StreamDiffusion@7687
Using Python 3.12.3 environment at: /tmp/vb.partial
error: Request failed after 3 retries in 8.2s
  cause: Failed to fetch: https://download.pytorch.org/whl/cu128/torchvision/
  cause: error sending request for url (https://download.pytorch.org/whl/cu128/torchvision/)
  cause: client error (Connect)
  cause: dns error
  cause: failed to lookup address information: Temporary failure in name resolution"""


def test_a_real_offline_failure_names_the_host_and_package_that_failed() -> None:
    explained = explain(UV_OFFLINE_ON_A_GPU_MACHINE)
    assert explained is not None
    text = word(explained)
    assert "download.pytorch.org" in text and "torchvision" in text and "github.com" not in text


def test_the_driver_version_is_written_as_nvidia_writes_it() -> None:
    from sdprep.setup.driver import parse_version, version_text

    assert version_text(parse_version("580.159.04")) == "580.159.04" and parse_version("580.159.04") == (580, 159, 4)


def test_network_failure_names_the_host_and_package() -> None:
    explained = explain("error: Failed to fetch: `https://download.pytorch.org/whl/cu128/torch/`\n  dns error")
    assert explained is not None and "download.pytorch.org" in word(explained) and "torch" in word(explained)


# --- for real, offline ----------------------------------------------------------------------------------------
def test_setup_installs_self_tests_records_and_is_then_up_to_date(sources: Sources, made: Path) -> None:
    record = json.loads((made / "sdprep-setup.json").read_text())
    assert record["installed"]["torch"] == CU128.torch and record["installed"]["tensorrt-cu12"] == "10.16.1.11"
    assert record["installed"]["streamdiffusion"] and record["cuda"] == "cu128" and record["driver"] == DRIVER
    assert record["installed"]["diffusers-ipadapter"] == IPADAPTER_PACKAGE.version
    assert record["gpu"] == "NVIDIA GeForce RTX 4090" and set(record["steps"]) >= {"venv", "torch", "fork", "tensorrt"}
    assert not made.with_name(made.name + ".partial").exists()
    started = time.monotonic()
    assert record["features"] == ["fp8"] and record["installed"]["nvidia-modelopt"] == "0.43.0"
    assert record["installed"]["numpy"] == "1.26.4" and "features" in record["steps"]
    again = cli(sources, *setup_args(sources, made, "--with", "fp8"))
    seconds = time.monotonic() - started
    assert again.returncode == 0 and "Up to date" in again.stdout, again.stdout + again.stderr
    assert seconds < budget(5), f"up to date took {seconds:.1f} s"


def test_probe_then_picks_the_build_venv_and_a_build_succeeds(sources: Sources, made: Path, tmp_path: Path) -> None:
    env = env_for(sources, SDPREP_BUILD_VENV=str(made), SDPREP_CACHE_DIR=str(tmp_path / "cache"))
    probed = cli(sources, "probe", env=env)
    assert probed.returncode == 0, probed.stderr
    assert str(venv_python(made)) in probed.stdout and "the .venv-build that setup made" in probed.stdout
    built = cli(sources, "build", "--engines-dir", str(tmp_path / "engines"), env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert built.stdout.strip().splitlines()[-1].endswith("config.yaml")
    # The FP8 set setup installed is what the probe imports for FP8.
    assert re.search(r"^installed fp8 +✔", probed.stdout, re.MULTILINE), probed.stdout


def test_doctor_passes_on_it_and_names_a_broken_dependency(sources: Sources, made: Path) -> None:
    ok = cli(sources, "doctor", "--python", str(venv_python(made)))
    assert ok.returncode == 0 and "Self-test passed" in ok.stdout, ok.stdout + ok.stderr
    broken = cli(
        sources,
        "doctor",
        "--python",
        str(venv_python(made)),
        env=env_for(sources, STANDIN_SD_BROKEN_DEP="transformers"),
    )
    assert broken.returncode == 1
    assert "transformers" in broken.stderr and "is installed, but importing it fails" in broken.stderr
    assert "is not installed" not in broken.stderr, "an installed package with a broken dependency is not 'missing'"


def test_a_failed_setup_keeps_the_earlier_environment(sources: Sources, made: Path, tmp_path: Path) -> None:
    target = tmp_path / ".venv-build"
    shutil.copytree(made, target, symlinks=True)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    failed = cli(
        sources,
        "setup",
        "--target",
        str(target),
        "--find-links",
        str(empty),
        "--no-index",
        "--fork",
        sources.fork,
        "--upgrade",
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Installing torch" in failed.stderr
    assert not target.with_name(target.name + ".partial").exists()
    assert (target / "sdprep-setup.json").is_file()
    assert cli(sources, "doctor", "--python", str(venv_python(target))).returncode == 0


def test_a_hand_made_venv_is_not_replaced_without_replace(sources: Sources, tmp_path: Path) -> None:
    target = tmp_path / ".venv-build"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    refused = cli(sources, *setup_args(sources, target))
    assert refused.returncode == 2 and "--replace" in refused.stderr
    assert (target / "mine.txt").read_text() == "keep"


def test_refusals_before_anything_is_installed(sources: Sources, tmp_path: Path) -> None:
    target = tmp_path / "v"
    no_driver = cli(sources, *setup_args(sources, target), env=env_for(sources, UV_CUDA_DRIVER_VERSION=""))
    if no_driver.returncode != 0:  # a machine with a real NVIDIA driver would pass this step
        assert no_driver.returncode == 3 and "No NVIDIA driver" in no_driver.stderr
    bad_fork = cli(sources, "setup", "--target", str(target), "--fork", "not-a-fork")
    assert bad_fork.returncode == 2 and "--fork" in bad_fork.stderr
    no_git = cli(sources, *setup_args(sources, target), env=env_for(sources, PATH=str(Path(sys.executable).parent)))
    assert no_git.returncode == 3 and "git is not installed" in no_git.stderr
    bad_ref = cli(sources, *setup_args(sources, target)[:-2], "--fork", sources.fork.rsplit("@", 1)[0] + "@" + "0" * 40)
    assert bad_ref.returncode == 1 and "Installing the StreamDiffusion fork" in bad_ref.stderr
    no_python = cli(sources, *setup_args(sources, target), "--python-version", "3.99")
    assert no_python.returncode == 1 and "needs Python 3.11" in no_python.stderr
    assert not target.exists() and not target.with_name("v.partial").exists()


def test_cancel_removes_the_partial_environment(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env_for(sources).items():
        monkeypatch.setenv(key, value)
    cancel = threading.Event()

    def on_event(event: JobEvent) -> None:
        if event.stage == "setup_torch":
            cancel.set()

    target = tmp_path / "v"
    request = SetupRequest(str(target), fork=sources.fork, find_links=(str(sources.wheels),), no_index=True)
    result = setup_job.run_setup(request, on_event, cancel)
    assert result.outcome == "cancelled" and "unchanged" in word(result.reason)
    assert not target.exists() and not target.with_name("v.partial").exists()


def test_a_full_disk_is_refused_before_anything_runs(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env_for(sources).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(setup_job, "disk_free", lambda path: 2 * 1024**3)
    events: list[JobEvent] = []
    result = setup_job.run_setup(SetupRequest(str(tmp_path / "v"), fork=sources.fork, no_index=True), events.append)
    assert result.outcome == "refused" and "2.0 GiB" in word(result.reason) and "15.0 GiB" in word(result.reason)
    assert not any(event.stage == "setup_venv" for event in events)


def test_ctrl_c_cancels_the_cli_with_130(sources: Sources, tmp_path: Path) -> None:
    # A git that hangs, so Ctrl-C arrives in the middle of the fork's step (the uv child and its git must stop).
    fake = tmp_path / "bin"
    fake.mkdir()
    started = tmp_path / "git-started"
    (fake / "git").write_text(f"#!/bin/sh\ntouch '{started}'\nsleep 60\n")
    (fake / "git").chmod(0o755)
    env = env_for(sources, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", UV_CACHE_DIR=str(tmp_path / "fresh-cache"))
    process = spawn([sys.executable, str(ROOT / "gradio_prepare.py"), *setup_args(sources, tmp_path / "v")], env=env)
    assert process.stdout is not None
    process.stdout.wait_for("Installing the StreamDiffusion fork")
    wait_until(started.exists, "uv to run the hanging git")
    process.send_signal(signal.SIGINT)
    assert process.wait() == 130 and "cancelled" in process.err().lower()
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.partial").exists()


def test_without_python_311_setup_falls_back_to_312(sources: Sources, tmp_path: Path) -> None:
    """A machine without the asked-for Python, where uv may not download one (a GPU image, say): the fallback version
    (here: the machine's own) is used, and said."""
    from sdprep.setup import pins

    fallback = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = tmp_path / "v"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pins, "PYTHON_FALLBACK", fallback)
        patch.setattr(setup_job, "PYTHON_FALLBACK", fallback)
        patch.setattr(setup_job, "PYTHON_VERSION", "3.99")
        for key, value in env_for(sources).items():
            patch.setenv(key, value)
        events: list[JobEvent] = []
        request = SetupRequest(
            str(target), python="3.99", fork=sources.fork, find_links=(str(sources.wheels),), no_index=True
        )
        result = setup_job.run_setup(request, events.append)
    assert result.outcome == "ready", word(result.reason)
    assert any(event.message.code == "setup_python_fallback" for event in events), "it says so"
    venv_stages = [event for event in events if event.kind == "stage" and event.stage == "setup_venv"]
    assert len(venv_stages) == 1, "the second try is the same stage, not a second one"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_skipped_check_names_the_check_that_failed_by_its_label(lang: str) -> None:
    from sdprep.setup.doctor import CheckReport, diagnose
    from sdprep.text import t

    skipped = CheckReport("tensorrt_build", False, True, 0.0, {}, "skipped: tensorrt_import failed")
    said = word(diagnose(skipped), lang)
    assert t("check_tensorrt_import", lang) in said and "tensorrt_import" not in said
