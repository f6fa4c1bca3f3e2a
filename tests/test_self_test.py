"""sdprep/child/environment_check.py against the stand-in torch/TensorRT/StreamDiffusion (PYTHONPATH=tests/standin).

Each field failure the stand-ins can simulate (tests/standin/README.md) must show up as the right failing check,
with the library's own error text, the module that broke, and the checks after it skipped; everything else must
still be checked and reported. The script must always end with a result event and exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sdprep.child.protocol import EVENT_PREFIX
from sdprep.setup.doctor import CheckReport, diagnose
from sdprep.text import word
from testkit.processes import run as run_process

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sdprep" / "child" / "environment_check.py"
STANDIN = ROOT / "tests" / "standin"
CODES = ["torch", "cuda", "tensorrt_import", "tensorrt_build", "tensorrt_run", "streamdiffusion", "build_path"]
BEFORE_SD = CODES[: CODES.index("streamdiffusion")]
CHECK_FIELDS = {"event", "time", "name", "ok", "skipped", "seconds", "details", "error", "traceback_tail"}


def run_self_test(
    env: dict[str, str] | None = None, job: dict[str, Any] | None = None, path: Path = STANDIN, tmp: Path | None = None
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    child_env.update(PYTHONPATH=str(path), PYTHONUNBUFFERED="1", **(env or {}))
    args = [sys.executable, str(SCRIPT)]
    if job is not None:
        assert tmp is not None
        job_file = tmp / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        args.append(str(job_file))
    proc = run_process(args, env=child_env)
    events = [
        json.loads(line[len(EVENT_PREFIX) :]) for line in proc.stdout.splitlines() if line.startswith(EVENT_PREFIX)
    ]
    return events, proc


def checks(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["name"]: event for event in events if event["event"] == "check"}


def assert_well_formed(events: list[dict[str, Any]], proc: subprocess.CompletedProcess[str], codes: list[str]) -> None:
    """The contract every run keeps, whatever it found: stage then check per code, in order, then one result."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected: list[tuple[str, str]] = []
    for code in codes:
        expected += [("stage", code), ("check", code)]
    got = [(e["event"], e.get("stage") or e.get("name")) for e in events if e["event"] in ("stage", "check")]
    assert got == expected
    assert events[-1]["event"] == "result"
    for event in checks(events).values():
        assert set(event) == CHECK_FIELDS
        assert isinstance(event["seconds"], float) and event["seconds"] >= 0
        assert isinstance(event["details"], dict)
        if event["ok"]:
            assert event["error"] is None and event["traceback_tail"] == [] and not event["skipped"]
        else:
            assert isinstance(event["error"], str) and event["error"]
    result = events[-1]
    assert result["passed"] == all(event["ok"] for event in checks(events).values())
    assert result["checks"] == {code: checks(events)[code]["ok"] for code in codes}


def assert_skipped(event: dict[str, Any], because: str) -> None:
    assert event["ok"] is False and event["skipped"] is True
    assert event["error"] == f"skipped: {because} failed"
    assert event["seconds"] == 0.0 and event["traceback_tail"] == []


# ------------------------------------------------------------------------------------------------------ passing


def test_everything_passes_on_a_good_machine() -> None:
    events, proc = run_self_test()
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert all(found[code]["ok"] for code in CODES)
    assert events[-1]["passed"] is True and events[-1]["not_run"] == []
    assert events[-1]["python"]["executable"] == sys.executable

    torch = found["torch"]["details"]
    assert (torch["version"], torch["cuda"]) == ("2.5.1+cu124", "12.4")
    assert torch["location"] == str(STANDIN / "torch" / "__init__.py")
    cuda = found["cuda"]["details"]
    assert cuda["available"] is True and cuda["device_count"] == 1
    assert (cuda["name"], cuda["compute_capability"]) == ("NVIDIA GeForce RTX 4090", "8.9")
    assert cuda["vram_total"] == 24 * 1024**3 and 0 < cuda["vram_free"] <= cuda["vram_total"]
    assert set(cuda["driver"]) == {"visible", "version", "cuda_version"}
    trt = found["tensorrt_import"]["details"]
    assert trt["version"] == "10.16.1.11" and trt["torch_cuda_major"] == 12
    # No distributions on a bare PYTHONPATH: the CUDA major is unknown, not guessed.
    assert (trt["distributions"], trt["cuda_major"], trt["cuda_major_matches_torch"]) == ({}, None, None)
    build = found["tensorrt_build"]["details"]
    assert build["engine_bytes"] > 0 and build["build_seconds"] >= 0 and build["tensorrt_log"] == []
    assert build["network_flag"] == "STRONGLY_TYPED"
    run = found["tensorrt_run"]["details"]
    assert run["io_tensors"] == {"input": "INPUT", "output": "OUTPUT"}
    assert run["output"] == run["expected"] == [max(x, 0.0) + x for x in run["input"]]
    assert run["max_abs_error"] <= 1e-3
    sd = found["streamdiffusion"]["details"]
    assert sd["installed"] is True and sd["distribution"] is None
    assert sd["version"] == "0.4.0" and sd["has_config_loader"] is True
    assert sd["features"]["compile_engines_only"] is True and sd["features"]["config_ipadapter_tokens"] is True
    assert "model_id_or_path" in sd["wrapper_params"] and "self" not in sd["wrapper_params"]
    modules = found["build_path"]["details"]["modules"]
    assert modules["streamdiffusion.acceleration.tensorrt"] == "imported"
    assert modules["streamdiffusion.acceleration.tensorrt.export_wrappers.unet_unified_export"] == "imported"
    assert (
        modules["streamdiffusion.acceleration.tensorrt.utilities"] == "imported"
    )  # the raw-API build (docs/streamdiffusion-facts.md §14)


def test_the_job_can_skip_streamdiffusion(tmp_path: Path) -> None:
    events, proc = run_self_test(job={"skip_streamdiffusion": True}, tmp=tmp_path)
    assert_well_formed(events, proc, BEFORE_SD)
    assert events[-1]["passed"] is True and events[-1]["not_run"] == ["streamdiffusion", "build_path"]


def test_a_matching_cuda_13_pair_passes() -> None:
    events, proc = run_self_test({"STANDIN_CUDA_VERSION": "13.0", "STANDIN_TRT_CUDA_MAJOR": "13"})
    assert_well_formed(events, proc, CODES)
    assert events[-1]["passed"] is True


def test_the_script_imports_only_the_standard_library() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import environment_check; "
        "print(sorted(m for m in ('torch', 'tensorrt', 'streamdiffusion') if m in sys.modules))"
    )
    proc = run_process([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------------ failing


def test_cpu_only_torch() -> None:
    events, proc = run_self_test({"STANDIN_CUDA_VERSION": "none", "STANDIN_TORCH_VERSION": "2.5.1+cpu"})
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert found["torch"]["ok"] and found["torch"]["details"]["cuda"] is None
    cuda = found["cuda"]
    assert cuda["ok"] is False and cuda["skipped"] is False
    assert cuda["error"] == "AssertionError: Torch not compiled with CUDA enabled"
    assert cuda["details"]["torch_cuda"] is None and cuda["details"]["available"] is False
    assert any("AssertionError" in line for line in cuda["traceback_tail"])
    assert found["tensorrt_import"]["ok"]  # TensorRT is independent of torch's wheel
    assert_skipped(found["tensorrt_build"], "cuda")
    assert_skipped(found["tensorrt_run"], "tensorrt_build")
    assert found["streamdiffusion"]["ok"]
    assert events[-1]["passed"] is False


def test_no_gpu() -> None:
    events, proc = run_self_test({"STANDIN_CUDA": "0"})
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert found["cuda"]["error"].startswith("RuntimeError: Found no NVIDIA driver on your system.")
    assert found["cuda"]["details"]["torch_cuda"] == "12.4"
    assert_skipped(found["tensorrt_build"], "cuda")
    assert_skipped(found["tensorrt_run"], "tensorrt_build")
    assert events[-1]["passed"] is False


def test_tensorrt_missing() -> None:
    events, proc = run_self_test({"STANDIN_NO_TRT": "1"})
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    trt = found["tensorrt_import"]
    assert trt["error"] == "ModuleNotFoundError: No module named 'tensorrt'"
    assert trt["details"]["failed_module"] == "tensorrt" and trt["details"]["distributions"] == {}
    assert found["cuda"]["ok"] and found["streamdiffusion"]["ok"]
    assert_skipped(found["tensorrt_build"], "tensorrt_import")
    assert_skipped(found["tensorrt_run"], "tensorrt_build")


def test_tensorrt_bindings_missing() -> None:
    events, proc = run_self_test({"STANDIN_TRT_BINDINGS_MISSING": "1"})
    assert_well_formed(events, proc, CODES)
    trt = checks(events)["tensorrt_import"]
    assert trt["error"] == "ModuleNotFoundError: No module named 'tensorrt_bindings'"
    assert trt["details"]["failed_module"] == "tensorrt_bindings"
    assert trt["details"]["import_name"] == "tensorrt_bindings"
    assert any("tensorrt/__init__.py" in line for line in trt["traceback_tail"])
    assert_skipped(checks(events)["tensorrt_build"], "tensorrt_import")


def test_tensorrt_built_for_another_cuda_major() -> None:
    events, proc = run_self_test({"STANDIN_TRT_CUDA_MAJOR": "13"})  # torch is cu124
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert found["tensorrt_import"]["ok"]  # importing works; CUDA starts only when TensorRT first needs it
    build = found["tensorrt_build"]
    assert build["error"].startswith(
        "TensorRTFailed: trt.Builder(logger) failed: CUDA initialization failure with error: 35."
    )
    assert build["details"]["tensorrt_log"] == [
        "CUDA initialization failure with error: 35. Please check your CUDA installation:  "
        "http://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html"
    ]
    assert any("TypeError: pybind11::init(): factory function returned nullptr" in x for x in build["traceback_tail"])
    assert "[TRT] [WARNING] CUDA initialization failure with error: 35." in proc.stdout  # the raw log keeps it
    assert_skipped(found["tensorrt_run"], "tensorrt_build")
    assert found["streamdiffusion"]["ok"]


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("1", "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory"),
        ("windows", "OSError: [WinError 126] The specified module could not be found. Error loading"),
    ],
)
def test_cudnn_broken(mode: str, error: str) -> None:
    events, proc = run_self_test({"STANDIN_CUDNN_BROKEN": mode})
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    torch = found["torch"]
    assert torch["error"].startswith(error)
    assert torch["details"]["failed_module"] == "torch"
    assert_skipped(found["cuda"], "torch")
    assert found["tensorrt_import"]["ok"]
    assert_skipped(found["tensorrt_build"], "cuda")
    assert_skipped(found["tensorrt_run"], "tensorrt_build")
    sd = found["streamdiffusion"]
    assert_skipped(sd, "torch")
    assert sd["details"]["installed"] is True  # said without importing it


def test_streamdiffusion_dependency_with_a_wrong_pin() -> None:
    events, proc = run_self_test({"STANDIN_SD_BROKEN_DEP": "transformers"})
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert all(found[code]["ok"] for code in BEFORE_SD)
    sd = found["streamdiffusion"]
    assert sd["error"] == (
        "ImportError: tokenizers>=0.21,<0.22 is required for a normal functioning of this module, "
        "but found tokenizers==0.23.2."
    )
    assert sd["details"]["failed_module"] == "transformers"
    assert sd["details"]["installed"] is True
    tail = "\n".join(sd["traceback_tail"])
    assert "transformers/utils/versions.py" in tail and "Try: `pip install transformers -U`" in tail


def test_streamdiffusion_dependency_in_range_imports() -> None:
    events, proc = run_self_test({"STANDIN_SD_BROKEN_DEP": "transformers", "STANDIN_TOKENIZERS_VERSION": "0.21.4"})
    assert_well_formed(events, proc, CODES)
    assert events[-1]["passed"] is True


def test_streamdiffusion_dependency_missing() -> None:
    events, proc = run_self_test({"STANDIN_SD_BROKEN_DEP": "controlnet_aux"})
    assert_well_formed(events, proc, CODES)
    sd = checks(events)["streamdiffusion"]
    assert sd["error"] == "ModuleNotFoundError: No module named 'controlnet_aux'"
    assert (sd["details"]["failed_module"], sd["details"]["installed"]) == ("controlnet_aux", True)


def test_streamdiffusion_not_installed(tmp_path: Path) -> None:
    # A machine with torch and TensorRT but no StreamDiffusion at all: nothing to find, not even a spec.
    for name in ("torch", "tensorrt"):
        shutil.copytree(STANDIN / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    events, proc = run_self_test(path=tmp_path)
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert all(found[code]["ok"] for code in BEFORE_SD)
    sd = found["streamdiffusion"]
    assert sd["error"] == "ModuleNotFoundError: No module named 'streamdiffusion'"
    assert sd["details"]["failed_module"] == "streamdiffusion"
    assert (sd["details"]["installed"], sd["details"]["distribution"], sd["details"]["found_at"]) == (False, None, None)


def test_without_diffusers_ipadapter_the_build_path_fails_naming_it(tmp_path: Path) -> None:
    """The package setup once left out: StreamDiffusion imports, its TensorRT path does not (docs/streamdiffusion-facts.md §13)."""
    shutil.copytree(STANDIN, tmp_path / "standin", ignore=shutil.ignore_patterns("__pycache__", "diffusers_ipadapter"))
    events, proc = run_self_test(path=tmp_path / "standin")
    assert_well_formed(events, proc, CODES)
    found = checks(events)
    assert all(found[code]["ok"] for code in CODES[:-1])
    failed = found["build_path"]
    assert failed["error"] == "ModuleNotFoundError: No module named 'diffusers_ipadapter'"
    assert failed["details"]["failed_module"] == "diffusers_ipadapter"
    assert "unet_ipadapter_export.py" in "\n".join(failed["traceback_tail"])
    assert events[-1]["passed"] is False
    report = CheckReport("build_path", False, False, failed["seconds"], failed["details"], failed["error"])
    said = word(diagnose(report))
    assert "diffusers_ipadapter" in said and "every build" in said and "setup --upgrade" in said, said


def test_without_tensorrt_the_build_path_is_skipped() -> None:
    events, proc = run_self_test({"STANDIN_NO_TRT": "1"})
    assert_well_formed(events, proc, CODES)
    assert_skipped(checks(events)["build_path"], "tensorrt_import")


# ------------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def self_test_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports `protocol` as its sibling
    import environment_check  # type: ignore[import-not-found]

    return environment_check


def test_failed_module_follows_the_traceback_into_site_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, self_test_module: Any
) -> None:
    site = tmp_path / "lib" / "site-packages"
    (site / "fakedep" / "utils").mkdir(parents=True)
    (site / "fakedep" / "__init__.py").write_text("from .utils import check\n")
    (site / "fakedep" / "utils" / "__init__.py").write_text("")
    (site / "fakedep" / "utils" / "check.py").write_text("raise ImportError('fakedep needs other>=2')\n")
    (site / "fakepkg").mkdir()
    (site / "fakepkg" / "__init__.py").write_text("import fakedep\n")
    monkeypatch.syspath_prepend(str(site))
    for name, expected in (("fakepkg", "fakedep"), ("fakedep", "fakedep")):
        with pytest.raises(ImportError) as caught:
            __import__(name)
        assert self_test_module.failed_module(caught.value) == expected
        for module in [m for m in sys.modules if m.startswith("fake")]:
            del sys.modules[module]
    with pytest.raises(ModuleNotFoundError) as missing:
        __import__("nosuchpackage_for_self_test.sub")
    assert self_test_module.failed_module(missing.value) == "nosuchpackage_for_self_test"


def test_failed_module_ignores_the_standard_library(self_test_module: Any) -> None:
    try:
        json.loads("{not json")
    except ValueError as error:
        # Raised inside json/decoder.py, called from this test file: the stdlib is skipped, not blamed.
        assert self_test_module.failed_module(error) != "json"


def test_cuda_majors_from_distribution_names(self_test_module: Any) -> None:
    majors = self_test_module.cuda_majors
    assert majors({"tensorrt": "10.13.3.9", "tensorrt-cu12": "10.13.3.9", "tensorrt-cu12-libs": "10.13.3.9"}) == [12]
    assert majors({"tensorrt-cu13-bindings": "10.14.1"}) == [13]
    assert majors({"tensorrt-cu12-libs": "10.13", "tensorrt-cu13-libs": "10.14"}) == [12, 13]
    assert majors({"tensorrt": "10.0", "tensorrt-llm": "1.0"}) == []
