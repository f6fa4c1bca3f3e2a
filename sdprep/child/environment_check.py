"""Child script: prove in seconds that this Python can build and run TensorRT engines for StreamDiffusion.

Run by path with the build Python: `python environment_check.py [JOB.json]`; the optional job holds options, e.g.
{"skip_streamdiffusion": true}. Standard library at import time: torch, tensorrt and streamdiffusion are imported
inside the checks, so a broken one is a finding, never a crash of this script.

The checks run in order, each announced by a "stage" event and answered by one "check" event:
  torch            import torch
  cuda             a GPU through torch (name, compute capability, VRAM; the driver as the OS sees it)
  tensorrt_import  import tensorrt; which TensorRT distributions are installed and the CUDA major they name
  tensorrt_build   build a two-layer engine (relu(x) + x on a 1x8 float32 input) with the TensorRT 10 API
  tensorrt_run     deserialize it, run it on torch CUDA tensors on a CUDA stream, compare with Python's answer
  streamdiffusion  import it and its config loader, read the wrapper's signature (unless the job skips it)
  build_path       import what a TensorRT build imports: streamdiffusion.acceleration.tensorrt (the forkni fork's
                   reaches diffusers_ipadapter through its export wrappers), its engine manager, utilities and the
                   UNet export wrapper the wrapper imports for every TensorRT UNet build (skipped with streamdiffusion)
A check whose prerequisite failed is reported as failed with error "skipped: <code> failed", without running.
The exit code is 0 whenever the script itself worked: the parent reads the events, not the exit code, to learn
what is broken.

Events (protocol.emit: one JSON line after EVENT_PREFIX, each with "event" and "time"):
  stage   stage=<code>, message=<what runs now, for people>
  check   name=<code>, ok=<bool>, skipped=<bool: not run because a prerequisite failed>, seconds=<float>,
          details=<dict, below>, error=<"ExceptionType: first line" | "skipped: <code> failed" | None>,
          traceback_tail=<last lines of the traceback; [] when ok or skipped>
  result  passed=<every emitted check ok>, seconds=<total>, checks=<{code: ok} in order>,
          not_run=<codes the job left out>, python=<{version, executable, platform}>
details, by check (keys present when known; a failed import adds failed_module, the top-level module that broke,
and import_name, ImportError.name):
  torch            distribution, version, cuda (torch.version.cuda), location
  cuda             torch_cuda, driver {visible, version, cuda_version}, available, device_count, name,
                   compute_capability "major.minor", vram_total, vram_free (bytes)
  tensorrt_import  distributions {normalized name: version}, cuda_majors, cuda_major (one major, else None),
                   torch_cuda_major, version, location, cuda_major_matches_torch (None when either is unknown)
  tensorrt_build   tensorrt_log (TensorRT's warnings and errors), network_flag, network, engine_bytes,
                   build_seconds, workspace_bytes
  tensorrt_run     tensorrt_log, io_tensors {name: INPUT|OUTPUT}, run_seconds, input, output, expected,
                   max_abs_error, tolerance
  streamdiffusion  distribution, found_at, installed (distribution or importable spec: "not installed" vs
                   "installed but broken"), location, version, has_config_loader, wrapper_params, features,
                   diffusers (fork_inspect.diffusers_origin: the installed build's origin and the one the fork wants)
  build_path       modules {name: "imported" | "not in this fork"}, failed_module, import_name
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fork_inspect import (
    diffusers_origin,
    distribution_version,
    failed_module,
    features,
    package_version,
    presence,
)
from protocol import emit, end_with_parent  # run by path: sys.path[0] is this folder

CHECKS: tuple[str, ...] = (
    "torch",
    "cuda",
    "tensorrt_import",
    "tensorrt_build",
    "tensorrt_run",
    "streamdiffusion",
    "build_path",
)
# What `create_wrapper_from_config(..., compile_engines_only=True)` imports on its way to TensorRT
# (docs/streamdiffusion-facts.md §13): the first is every fork's; the others are imported where this fork has them (a
# fork without one never imports it).
BUILD_PATH_MODULES: tuple[str, ...] = (
    "streamdiffusion.acceleration.tensorrt",
    "streamdiffusion.acceleration.tensorrt.engine_manager",
    "streamdiffusion.acceleration.tensorrt.utilities",
    "streamdiffusion.acceleration.tensorrt.export_wrappers.unet_unified_export",
)
# What each check needs to have passed; a later check never runs on a broken earlier one (its error would only
# repeat the first one in a more confusing form).
DEPENDS: dict[str, tuple[str, ...]] = {
    "torch": (),
    "cuda": ("torch",),
    "tensorrt_import": (),
    "tensorrt_build": ("tensorrt_import", "cuda"),
    "tensorrt_run": ("tensorrt_build",),
    "streamdiffusion": ("torch",),
    "build_path": ("streamdiffusion", "tensorrt_import"),
}
MESSAGES: dict[str, str] = {
    "torch": "Importing PyTorch",
    "cuda": "Looking for a CUDA GPU",
    "tensorrt_import": "Importing TensorRT",
    "tensorrt_build": "Building a tiny TensorRT engine",
    "tensorrt_run": "Running the tiny engine on the GPU",
    "streamdiffusion": "Importing StreamDiffusion",
    "build_path": "Importing StreamDiffusion's TensorRT build path",
}

# The test network's input: both signs, a zero and fractions, so a wrong activation or a dropped layer shows.
INPUT_VALUES: tuple[float, ...] = (-4.0, -2.5, -1.0, -0.25, 0.0, 0.5, 2.0, 3.75)
WORKSPACE_BYTES = 16 * 1024 * 1024  # a tiny network needs almost nothing; a small pool keeps the build fast
TOLERANCE = 1e-3
TRACEBACK_LINES = 12
TRT_LOG_LINES = 20


class CheckFailed(RuntimeError):
    """A check found the environment wrong without any library raising (e.g. no GPU, a wrong result)."""


class TensorRTFailed(RuntimeError):
    """A TensorRT call failed; the message quotes what TensorRT logged, which says why."""


def expected_output(values: tuple[float, ...]) -> list[float]:
    """What the test network computes, in plain Python on the CPU: relu(x) + x."""
    return [max(value, 0.0) + value for value in values]


# ------------------------------------------------------------------------------------------------ import failures


def describe(error: BaseException) -> str:
    """The error as "ExceptionType: first line" (the rest of the message and the traceback go to traceback_tail)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def traceback_tail(error: BaseException) -> list[str]:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return [line.rstrip() for line in text.splitlines() if line.strip()][-TRACEBACK_LINES:]


def import_module(name: str, details: dict[str, Any]) -> Any:
    """Import `name`; on failure record which module broke before re-raising."""
    try:
        return importlib.import_module(name)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        details["failed_module"] = failed_module(error)
        details["import_name"] = getattr(error, "name", None)
        raise


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------------------------------------------- checks


def check_torch(state: dict[str, Any], details: dict[str, Any]) -> None:
    details["distribution"] = distribution_version("torch")
    torch = import_module("torch", details)
    state["torch"] = torch
    details.update(
        version=str(getattr(torch, "__version__", "")),
        cuda=getattr(getattr(torch, "version", None), "cuda", None),
        location=getattr(torch, "__file__", None),
    )


def driver_info() -> dict[str, Any]:
    """The NVIDIA driver as the OS shows it, independent of torch: a CPU-only torch on a GPU PC still sees it."""
    info: dict[str, Any] = {"visible": False, "version": None, "cuda_version": None}
    proc = Path("/proc/driver/nvidia/version")
    try:
        text = proc.read_text(encoding="utf-8", errors="replace") if proc.exists() else ""
    except OSError:
        text = ""
    match = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", text)
    if match:
        info.update(visible=True, version=match.group(1))
    try:
        # cuDriverGetVersion needs no cuInit and no GPU context: it only asks the driver library what CUDA it serves.
        library = ctypes.CDLL("nvcuda.dll" if os.name == "nt" else "libcuda.so.1")
        value = ctypes.c_int(0)
        if library.cuDriverGetVersion(ctypes.byref(value)) == 0 and value.value > 0:
            info.update(visible=True, cuda_version=f"{value.value // 1000}.{value.value % 1000 // 10}")
    except (OSError, AttributeError):
        pass
    return info


def check_cuda(state: dict[str, Any], details: dict[str, Any]) -> None:
    torch = state["torch"]
    details["torch_cuda"] = getattr(torch.version, "cuda", None)
    details["driver"] = driver_info()
    available = bool(torch.cuda.is_available())
    details["available"] = available
    details["device_count"] = int(torch.cuda.device_count()) if available else 0
    if not available:
        # torch.cuda.init() raises the precise reason ("Torch not compiled with CUDA enabled" for a CPU-only wheel,
        # "Found no NVIDIA driver on your system" without a driver); is_available() only says False.
        init = getattr(torch.cuda, "init", None)
        if init is not None:
            init()
        if details["torch_cuda"] is None:
            raise CheckFailed(f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)")
        raise CheckFailed("torch.cuda.is_available() is False: no CUDA GPU is visible to PyTorch")
    index = 0  # the parent sets CUDA_VISIBLE_DEVICES, so the chosen GPU is always device 0 here
    major, minor = torch.cuda.get_device_capability(index)
    free, total = torch.cuda.mem_get_info(index)
    details.update(
        name=str(torch.cuda.get_device_name(index)),
        compute_capability=f"{major}.{minor}",
        vram_total=int(total),
        vram_free=int(free),
    )


def tensorrt_distributions() -> dict[str, str]:
    """Installed distributions whose name starts with "tensorrt" (normalized name -> version); no import needed."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and _normalized(name).startswith("tensorrt"):
            found[_normalized(name)] = str(dist.version)
    return dict(sorted(found.items()))


def cuda_majors(distributions: dict[str, str]) -> list[int]:
    """CUDA majors named by TensorRT distributions: tensorrt-cu12, tensorrt-cu12-libs, tensorrt-cu13-bindings, ..."""
    majors = set()
    for name in distributions:
        match = re.match(r"^tensorrt-cu(\d+)(?:-|$)", name)
        if match:
            majors.add(int(match.group(1)))
    return sorted(majors)


def check_tensorrt_import(state: dict[str, Any], details: dict[str, Any]) -> None:
    distributions = tensorrt_distributions()
    majors = cuda_majors(distributions)
    details.update(
        distributions=distributions,
        cuda_majors=majors,
        # One major is the normal case; two (cu12 and cu13 side by side) is itself a broken install.
        cuda_major=majors[0] if len(majors) == 1 else None,
    )
    torch = state.get("torch")
    torch_cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    details["torch_cuda_major"] = int(str(torch_cuda).split(".", 1)[0]) if torch_cuda else None
    trt = import_module("tensorrt", details)
    state["tensorrt"] = trt
    details.update(version=str(getattr(trt, "__version__", "")), location=getattr(trt, "__file__", None))
    if details["cuda_major"] is not None and details["torch_cuda_major"] is not None:
        details["cuda_major_matches_torch"] = details["cuda_major"] == details["torch_cuda_major"]
    else:
        details["cuda_major_matches_torch"] = None


def capturing_logger(trt: Any, messages: list[str]) -> Any:
    """A TensorRT logger that keeps warnings and errors (they say why a call failed) and prints everything."""

    class CapturingLogger(trt.ILogger):  # type: ignore[misc]  # trt is untyped: its ILogger is Any
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            print(f"[TRT] [{getattr(severity, 'name', severity)}] {msg}", flush=True)  # the raw log keeps all
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                messages.append(str(msg))

    return CapturingLogger()


def _trt_call(messages: list[str], what: str, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` into TensorRT; a failure becomes TensorRTFailed quoting TensorRT's own last message, if any.

    TensorRT reports most failures by returning None/False and logging why, and a failed object creation surfaces
    only as pybind11's "factory function returned nullptr": the logged line is the part worth showing.
    """
    before = len(messages)
    try:
        result = call(*args)
    except Exception as error:
        logged = messages[before:]
        if logged:
            raise TensorRTFailed(f"{what} failed: {logged[-1]}") from error
        raise
    if result is None or result is False:
        logged = messages[before:]
        reason = logged[-1] if logged else "TensorRT logged no reason"
        raise TensorRTFailed(f"{what} returned {result}: {reason}")
    return result


def check_tensorrt_build(state: dict[str, Any], details: dict[str, Any]) -> None:
    trt = state["tensorrt"]
    messages: list[str] = []
    details["tensorrt_log"] = messages
    logger = capturing_logger(trt, messages)
    state["trt_logger"], state["trt_messages"] = logger, messages  # TensorRT keeps a pointer: keep it alive
    started = time.perf_counter()
    builder = _trt_call(messages, "trt.Builder(logger)", trt.Builder, logger)
    # TensorRT 10 networks are always explicit batch; strongly typed says every tensor keeps the input's float32.
    # TensorRT 8.x has no STRONGLY_TYPED and needs EXPLICIT_BATCH instead: say so in the details, don't crash.
    creation = trt.NetworkDefinitionCreationFlag
    flag = "STRONGLY_TYPED" if hasattr(creation, "STRONGLY_TYPED") else "EXPLICIT_BATCH"
    details["network_flag"] = flag
    flags = 1 << int(getattr(creation, flag))
    network = _trt_call(messages, "create_network", builder.create_network, flags)
    source = network.add_input("input", trt.float32, (1, len(INPUT_VALUES)))
    relu = network.add_activation(source, trt.ActivationType.RELU)
    total = network.add_elementwise(relu.get_output(0), source, trt.ElementWiseOperation.SUM)
    output = total.get_output(0)
    output.name = "output"
    network.mark_output(output)
    config = _trt_call(messages, "create_builder_config", builder.create_builder_config)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    plan = _trt_call(messages, "build_serialized_network", builder.build_serialized_network, network, config)
    seconds = time.perf_counter() - started
    state["plan"] = plan
    size = getattr(plan, "nbytes", None)
    details.update(
        network="relu(x) + x, input 1x8 float32",
        engine_bytes=int(size) if size is not None else len(bytes(plan)),
        build_seconds=round(seconds, 3),
        workspace_bytes=WORKSPACE_BYTES,
    )


def check_tensorrt_run(state: dict[str, Any], details: dict[str, Any]) -> None:
    trt, torch = state["tensorrt"], state["torch"]
    messages: list[str] = state["trt_messages"]
    first = len(messages)
    details["tensorrt_log"] = messages[first:]  # refreshed below: only what this check's calls logged
    try:
        runtime = _trt_call(messages, "trt.Runtime(logger)", trt.Runtime, state["trt_logger"])
        engine = _trt_call(messages, "deserialize_cuda_engine", runtime.deserialize_cuda_engine, state["plan"])
        io = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
        details["io_tensors"] = {name: getattr(engine.get_tensor_mode(name), "name", "?") for name in io}
        if sorted(io) != ["input", "output"]:
            raise CheckFailed(f"the engine's tensors are {io}, not the network's input and output")
        context = _trt_call(messages, "create_execution_context", engine.create_execution_context)
        source = torch.tensor([list(INPUT_VALUES)], dtype=torch.float32, device="cuda")
        result = torch.empty((1, len(INPUT_VALUES)), dtype=torch.float32, device="cuda")
        # The inputs were written on the default stream and the engine runs on its own one: order them.
        torch.cuda.synchronize()
        for name, tensor in (("input", source), ("output", result)):
            _trt_call(messages, f"set_tensor_address({name})", context.set_tensor_address, name, tensor.data_ptr())
        stream = torch.cuda.Stream()
        started = time.perf_counter()
        _trt_call(messages, "execute_async_v3", context.execute_async_v3, stream.cuda_stream)
        stream.synchronize()
        details["run_seconds"] = round(time.perf_counter() - started, 4)
        got = [float(value) for value in result.cpu().tolist()[0]]
    finally:
        details["tensorrt_log"] = messages[first:]
    want = expected_output(INPUT_VALUES)
    error = max(abs(a - b) for a, b in zip(got, want, strict=True))
    details.update(input=list(INPUT_VALUES), output=got, expected=want, max_abs_error=error, tolerance=TOLERANCE)
    if not error <= TOLERANCE:  # also catches NaN
        raise CheckFailed(f"the engine computed {got}, expected {want} (max abs error {error:g} > {TOLERANCE:g})")


def streamdiffusion_presence(details: dict[str, Any]) -> None:
    """Whether StreamDiffusion is there at all, without importing it: "not installed" vs "installed but broken"."""
    details.update(presence("streamdiffusion"))


def check_streamdiffusion(state: dict[str, Any], details: dict[str, Any]) -> None:
    streamdiffusion_presence(details)
    package = import_module("streamdiffusion", details)
    details.update(location=getattr(package, "__file__", None), version=package_version(package, "streamdiffusion"))
    config_module = import_module("streamdiffusion.config", details)
    details["has_config_loader"] = hasattr(config_module, "create_wrapper_from_config")
    if not details["has_config_loader"]:
        raise CheckFailed("streamdiffusion.config has no create_wrapper_from_config: this app builds from a config")
    wrapper = getattr(package, "StreamDiffusionWrapper", None)
    if wrapper is None:
        wrapper = import_module("streamdiffusion.wrapper", details).StreamDiffusionWrapper
    names = [name for name in inspect.signature(wrapper.__init__).parameters if name != "self"]
    details["wrapper_params"] = names
    details["features"] = features(set(names), config_module)
    details["diffusers"] = diffusers_origin()


def in_this_fork(name: str) -> bool:
    """Whether the fork has module `name` (its parent package is imported already; a missing parent: no)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def check_build_path(state: dict[str, Any], details: dict[str, Any]) -> None:
    modules: dict[str, str] = {}
    details["modules"] = modules
    for index, name in enumerate(BUILD_PATH_MODULES):
        if index and not in_this_fork(name):
            modules[name] = "not in this fork"
            continue
        import_module(name, details)
        modules[name] = "imported"


CHECK_FUNCTIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "torch": check_torch,
    "cuda": check_cuda,
    "tensorrt_import": check_tensorrt_import,
    "tensorrt_build": check_tensorrt_build,
    "tensorrt_run": check_tensorrt_run,
    "streamdiffusion": check_streamdiffusion,
    "build_path": check_build_path,
}


# ------------------------------------------------------------------------------------------------------- runner


def run_check(code: str, state: dict[str, Any], outcomes: dict[str, bool]) -> bool:
    emit("stage", stage=code, message=MESSAGES[code])
    details: dict[str, Any] = {}
    blocked = next((need for need in DEPENDS[code] if not outcomes.get(need, False)), None)
    if blocked is not None:
        if code == "streamdiffusion":
            streamdiffusion_presence(details)  # cheap and import-free: still worth telling
        emit(
            "check",
            name=code,
            ok=False,
            skipped=True,
            seconds=0.0,
            details=details,
            error=f"skipped: {blocked} failed",
            traceback_tail=[],
        )
        return False
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        CHECK_FUNCTIONS[code](state, details)
    except (Exception, SystemExit) as caught:  # a library may even sys.exit() on import; Ctrl-C still stops us
        error = caught
        traceback.print_exception(type(caught), caught, caught.__traceback__, file=sys.stdout)
        sys.stdout.flush()
    emit(
        "check",
        name=code,
        ok=error is None,
        skipped=False,
        seconds=round(time.perf_counter() - started, 3),
        details=details,
        error=describe(error) if error is not None else None,
        traceback_tail=traceback_tail(error) if error is not None else [],
    )
    return error is None


def load_job(argv: list[str]) -> dict[str, Any]:
    if len(argv) < 2:
        return {}
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    if not isinstance(job, dict):
        raise ValueError(f"{argv[1]}: the job must be a JSON object")
    return job


def main(argv: list[str]) -> int:
    end_with_parent()  # a self-test left behind by a closed app must not hold the GPU
    job = load_job(argv)
    started = time.perf_counter()
    skipped = {"streamdiffusion", "build_path"} if job.get("skip_streamdiffusion") else set()
    codes = [code for code in CHECKS if code not in skipped]
    state: dict[str, Any] = {}
    outcomes: dict[str, bool] = {}
    for code in codes:
        outcomes[code] = run_check(code, state, outcomes)
    emit(
        "result",
        passed=all(outcomes.values()),
        seconds=round(time.perf_counter() - started, 3),
        checks=outcomes,
        not_run=[code for code in CHECKS if code not in outcomes],
        python={"version": platform.python_version(), "executable": sys.executable, "platform": platform.platform()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
