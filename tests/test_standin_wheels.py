"""The stand-in wheels and git repository install with uv, offline, and the self-test proves the result.

This is the `setup` command's path end to end, without a network or a GPU: a wheelhouse of stand-in torch,
TensorRT, transformers and placeholder pins (tests/standin_wheels.py), a local git repository of the stand-in
StreamDiffusion built by its in-tree stdlib backend, `uv venv` + `uv pip install --no-index --find-links
--offline`, then sdprep/child/environment_check.py run by the new venv's Python. Each field failure must surface the same
way it does with the plain stand-ins, now with real distributions and site-packages paths behind it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sdprep.child.protocol import EVENT_PREFIX
from testkit.processes import run as run_process
from testkit.timing import SUITE_TIMEOUT
from tests.standin_wheels import build_wheelhouse, make_streamdiffusion_repo

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sdprep" / "child" / "environment_check.py"
TORCH_VERSIONS = ("2.5.1+cu124", "2.5.1+cpu", "2.9.0+cu130")
TRT = "10.13.3.9"

pytestmark = pytest.mark.slow


def uv_env(cache: Path) -> dict[str, str]:
    """uv isolated from this machine's settings: no config files, no index variables, no Python downloads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "STANDIN_"))}
    env.pop("PYTHONPATH", None)
    env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(cache), UV_NO_PROGRESS="1")
    return env


def uv(cache: Path, *args: str, timeout: float = SUITE_TIMEOUT) -> subprocess.CompletedProcess[str]:
    done = run_process([sys.executable, "-m", "uv", *args], env=uv_env(cache), timeout=timeout)
    assert done.returncode == 0, f"uv {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@dataclass
class Venv:
    path: Path
    python: Path
    install_seconds: float
    install_log: str


@dataclass
class House:
    wheels: Path
    sd_spec: str  # "streamdiffusion @ git+file:///...@sha"
    sd_repo: Path
    cache: Path
    root: Path

    def venv(self, name: str, *requirements: str) -> Venv:
        path = self.root / name
        uv(self.cache, "venv", "--python", sys.executable, str(path))
        python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        started = time.perf_counter()
        done = uv(
            self.cache,
            "pip",
            "install",
            "--python",
            str(python),
            "--no-index",
            "--offline",
            "--find-links",
            str(self.wheels),
            *requirements,
        )
        return Venv(path, python, time.perf_counter() - started, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Iterator[House]:
    root = tmp_path_factory.mktemp("wheelhouse")
    wheels = build_wheelhouse(root / "wheels", torch_versions=TORCH_VERSIONS, tensorrt=((TRT, 12), (TRT, 13)))
    spec = make_streamdiffusion_repo(root / "sd-repo")
    yield House(wheels, spec, root / "sd-repo", root / "uv-cache", root)


def sd_with(extra: str, spec: str) -> str:
    name, _, url = spec.partition(" @ ")
    return f"{name}[{extra}] @ {url}"


def self_test(venv: Venv, env: dict[str, str] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    child_env.pop("PYTHONPATH", None)  # only what the venv installed may be imported
    child_env.update(env or {})
    proc = run_process([str(venv.python), str(SCRIPT)], env=child_env, cwd=venv.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [
        json.loads(line[len(EVENT_PREFIX) :]) for line in proc.stdout.splitlines() if line.startswith(EVENT_PREFIX)
    ]
    checks = {event["name"]: event for event in events if event["event"] == "check"}
    assert events[-1]["event"] == "result"
    return checks, events[-1]


# ------------------------------------------------------------------------------------------------------ wheels


def test_wheels_carry_valid_records(house: House) -> None:
    names = sorted(path.name for path in house.wheels.glob("*.whl"))
    assert "torch-2.5.1+cu124-py3-none-any.whl" in names and "tensorrt_cu13_libs-10.13.3.9-py3-none-any.whl" in names
    for wheel in house.wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            (record,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            info = record.rsplit("/", 1)[0]
            assert {f"{info}/METADATA", f"{info}/WHEEL"} <= set(archive.namelist())
            listed = set()
            for line in archive.read(record).decode().splitlines():
                path, digest, size = line.rsplit(",", 2)
                listed.add(path)
                if path == record:
                    assert (digest, size) == ("", "")
                    continue
                data = archive.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert (digest, int(size)) == (f"sha256={expected}", len(data)), f"{wheel.name}: {path}"
            assert listed == set(archive.namelist())
            metadata = archive.read(f"{info}/METADATA").decode()
            assert metadata.startswith("Metadata-Version: 2.1\nName: ")


def test_wheels_bake_what_their_names_say(house: House) -> None:
    def baked(wheel: str, module: str) -> str:
        with zipfile.ZipFile(house.wheels / wheel) as archive:
            return archive.read(f"{module}/_baked.py").decode()

    assert "'cuda': '13.0'" in baked("torch-2.9.0+cu130-py3-none-any.whl", "torch")
    assert "'cuda': None" in baked("torch-2.5.1+cpu-py3-none-any.whl", "torch")
    assert "'cuda_major': 12" in baked("tensorrt_cu12-10.13.3.9-py3-none-any.whl", "tensorrt")


def test_builds_are_reproducible(tmp_path: Path) -> None:
    first = build_wheelhouse(tmp_path / "a", torch_versions=("2.5.1+cu124",), tensorrt=((TRT, 12),))
    second = build_wheelhouse(tmp_path / "b", torch_versions=("2.5.1+cu124",), tensorrt=((TRT, 12),))
    for wheel in first.glob("*.whl"):
        assert wheel.read_bytes() == (second / wheel.name).read_bytes()
    spec_a = make_streamdiffusion_repo(tmp_path / "repo-a")
    spec_b = make_streamdiffusion_repo(tmp_path / "repo-b")
    assert spec_a.rsplit("@", 1)[1] == spec_b.rsplit("@", 1)[1]  # same tree, same identity and date: same commit


# ------------------------------------------------------------------------------------------------- installs


@pytest.fixture(scope="module")
def cu12(house: House) -> Venv:
    return house.venv(
        "cu12", "torch==2.5.1+cu124", "tensorrt-cu12", sd_with("tensorrt", house.sd_spec), "diffusers-ipadapter"
    )


def test_a_cu12_setup_installs_offline_in_seconds_and_passes(cu12: Venv, house: House) -> None:
    print(f"\nuv pip install of the stand-in set: {cu12.install_seconds:.2f} s")
    assert cu12.install_seconds < 60, cu12.install_log
    assert f"Built {house.sd_spec}" in cu12.install_log  # from the git repository, by its in-tree backend
    checks, result = self_test(cu12)
    assert result["passed"] is True, {name: check["error"] for name, check in checks.items()}
    site = "site-packages"
    torch = checks["torch"]["details"]
    assert (torch["distribution"], torch["version"], torch["cuda"]) == ("2.5.1+cu124", "2.5.1+cu124", "12.4")
    assert site in torch["location"] and str(cu12.path) in torch["location"]
    trt = checks["tensorrt_import"]["details"]
    assert trt["distributions"] == {"tensorrt-cu12": TRT, "tensorrt-cu12-libs": TRT}
    assert (trt["cuda_major"], trt["torch_cuda_major"], trt["cuda_major_matches_torch"]) == (12, 12, True)
    assert trt["version"] == TRT
    sd = checks["streamdiffusion"]["details"]
    assert (sd["distribution"], sd["installed"], sd["version"]) == ("0.4.0", True, "0.4.0")
    assert str(cu12.path) in sd["location"] and site in sd["location"]
    assert checks["tensorrt_run"]["details"]["max_abs_error"] <= 1e-3


@pytest.mark.parametrize(
    ("env", "check", "error", "details"),
    [
        (
            {"STANDIN_TRT_BINDINGS_MISSING": "1"},
            "tensorrt_import",
            "ModuleNotFoundError: No module named 'tensorrt_bindings'",
            {"failed_module": "tensorrt_bindings"},
        ),
        (
            {"STANDIN_CUDNN_BROKEN": "1"},
            "torch",
            "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory",
            {"failed_module": "torch", "distribution": "2.5.1+cu124"},
        ),
        (
            {"STANDIN_SD_BROKEN_DEP": "transformers"},
            "streamdiffusion",
            "ImportError: tokenizers>=0.21,<0.22 is required for a normal functioning of this module, "
            "but found tokenizers==0.23.2.",
            {"failed_module": "transformers", "installed": True, "distribution": "0.4.0"},
        ),
        (
            # The controlnet extra was not installed: its dependency is missing although StreamDiffusion is there.
            {"STANDIN_SD_BROKEN_DEP": "controlnet_aux"},
            "streamdiffusion",
            "ModuleNotFoundError: No module named 'controlnet_aux'",
            {"failed_module": "controlnet_aux", "installed": True},
        ),
        (
            {"STANDIN_CUDA": "0"},
            "cuda",
            "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and "
            "installed a driver from http://www.nvidia.com/Download/index.aspx",
            {"torch_cuda": "12.4"},
        ),
    ],
    ids=["bindings-missing", "cudnn-broken", "transformers-pin", "controlnet-aux-missing", "no-gpu"],
)
def test_failure_switches_in_an_installed_venv(
    cu12: Venv, env: dict[str, str], check: str, error: str, details: dict[str, Any]
) -> None:
    checks, result = self_test(cu12, env)
    assert result["passed"] is False
    assert checks[check]["error"] == error
    assert checks[check]["skipped"] is False
    assert {key: checks[check]["details"].get(key) for key in details} == details
    failed = [name for name, event in checks.items() if not event["ok"] and not event["skipped"]]
    assert failed == [check]  # everything else passed or was skipped because of it


def test_pip_install_tensorrt_pulls_cu13_beside_a_cu12_torch(house: House) -> None:
    venv = house.venv("mismatch", "torch==2.5.1+cu124", "tensorrt", sd_with("tensorrt", house.sd_spec))
    checks, result = self_test(venv)
    trt = checks["tensorrt_import"]
    assert trt["ok"] is True
    assert trt["details"]["distributions"] == {"tensorrt": TRT, "tensorrt-cu13": TRT, "tensorrt-cu13-libs": TRT}
    assert (trt["details"]["cuda_major"], trt["details"]["cuda_major_matches_torch"]) == (13, False)
    build = checks["tensorrt_build"]
    assert "CUDA initialization failure with error: 35." in build["error"]
    assert checks["tensorrt_run"]["error"] == "skipped: tensorrt_build failed"
    assert result["passed"] is False


def test_cu12_and_cu13_side_by_side_are_reported(house: House) -> None:
    venv = house.venv("both", "torch==2.5.1+cu124", "tensorrt-cu12", "tensorrt-cu13")
    checks, _ = self_test(venv)
    details = checks["tensorrt_import"]["details"]
    assert (details["cuda_majors"], details["cuda_major"], details["cuda_major_matches_torch"]) == (
        [12, 13],
        None,
        None,
    )


def test_a_cu13_setup_passes(house: House) -> None:
    venv = house.venv(
        "cu13",
        "torch==2.9.0+cu130",
        "torchvision",
        "tensorrt-cu13",
        sd_with("tensorrt", house.sd_spec),
        "diffusers-ipadapter",
    )
    assert "torchvision==0.24.0+cu130" in venv.install_log
    checks, result = self_test(venv)
    assert result["passed"] is True, {name: check["error"] for name, check in checks.items()}
    assert checks["torch"]["details"]["cuda"] == "13.0"
    assert checks["tensorrt_import"]["details"]["cuda_major"] == 13


def test_a_cpu_torch_setup_fails_at_cuda(house: House) -> None:
    venv = house.venv("cpu", "torch==2.5.1+cpu", "tensorrt-cu12", sd_with("tensorrt", house.sd_spec))
    checks, result = self_test(venv)
    assert checks["cuda"]["error"] == "AssertionError: Torch not compiled with CUDA enabled"
    assert checks["tensorrt_import"]["details"]["torch_cuda_major"] is None
    assert checks["tensorrt_build"]["error"] == "skipped: cuda failed"
    assert checks["streamdiffusion"]["ok"] is True
    assert result["passed"] is False


def test_without_the_ipadapter_package_the_build_path_fails_naming_it(house: House) -> None:
    """What setup installed before it added diffusers-ipadapter: StreamDiffusion imports, a build cannot."""
    venv = house.venv("no-ipadapter", "torch==2.5.1+cu124", "tensorrt-cu12", sd_with("tensorrt", house.sd_spec))
    checks, result = self_test(venv)
    assert checks["streamdiffusion"]["ok"] is True and result["passed"] is False
    build_path = checks["build_path"]
    assert build_path["error"] == "ModuleNotFoundError: No module named 'diffusers_ipadapter'"
    assert build_path["details"]["failed_module"] == "diffusers_ipadapter"


def test_streamdiffusion_not_installed_in_a_venv(house: House) -> None:
    venv = house.venv("no-sd", "torch==2.5.1+cu124", "tensorrt-cu12")
    checks, _ = self_test(venv)
    sd = checks["streamdiffusion"]
    assert sd["error"] == "ModuleNotFoundError: No module named 'streamdiffusion'"
    assert (sd["details"]["installed"], sd["details"]["distribution"], sd["details"]["failed_module"]) == (
        False,
        None,
        "streamdiffusion",
    )


def test_an_editable_install_of_the_repository_builds_offline(house: House) -> None:
    venv = house.venv(
        "editable", "torch==2.5.1+cu124", "tensorrt-cu12", "diffusers-ipadapter", "-e", str(house.sd_repo)
    )
    checks, result = self_test(venv)
    assert result["passed"] is True
    assert checks["streamdiffusion"]["details"]["location"] == str(
        house.sd_repo / "src" / "streamdiffusion" / "__init__.py"
    )


# ---------------------------------------------------------------------------------------------- uv on its own


def test_uv_venv_finds_this_python_by_version_offline(tmp_path: Path) -> None:
    # What `setup` relies on: asking for a version picks an installed interpreter, never a download.
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    done = uv(
        tmp_path / "cache",
        "venv",
        "--offline",
        "--python-preference",
        "only-system",
        "--python",
        wanted,
        str(tmp_path / "v"),
    )
    python = tmp_path / "v" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    version = run_process([str(python), "-c", "import sys; print(sys.version_info[:2])"])
    assert version.stdout.strip() == str(tuple(sys.version_info[:2])), done.stderr
