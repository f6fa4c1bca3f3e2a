"""What the build Python can do: run the probe child, cache its answer, and say what is missing and why.

The probe takes seconds (it imports torch), so its answer is cached on disk and reused while the files of
torch, TensorRT, StreamDiffusion and the interpreter are unchanged. A stale cache after a driver or GPU swap
is the one case the cache cannot see: `--refresh` or the Environment panel's refresh button re-probes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.jobs.process import ChildProcess, ChildSpec
from sdprep.paths import atomic_write_text
from sdprep.validate import CONFIG_ROUTE_MAX_BATCH, Problem

CACHE_DIR_ENV = "SDPREP_CACHE_DIR"
CACHE_MAX_AGE = 24 * 3600
PROBE_TIMEOUT = 120.0
# With min/max batch passed through the config, TensorRT still needs a sane profile; 8 covers 4 steps x full.
WIDE_MAX_BATCH = 16


class ProbeError(RuntimeError):
    """The probe child could not run or answer; the message says why and what to do."""


@dataclass(frozen=True)
class Environment:
    report: dict[str, Any]
    probed_at: float = field(default_factory=time.time)

    def _part(self, name: str) -> dict[str, Any]:
        return self.report.get(name) or {}

    @property
    def torch(self) -> dict[str, Any]:
        return self._part("torch")

    @property
    def tensorrt(self) -> dict[str, Any]:
        return self._part("tensorrt")

    @property
    def streamdiffusion(self) -> dict[str, Any]:
        return self._part("streamdiffusion")

    @property
    def features(self) -> dict[str, Any]:
        return self.streamdiffusion.get("features") or {}

    @property
    def gpu_name(self) -> str | None:
        return self.torch.get("gpu_name")

    @property
    def compute_capability(self) -> str | None:
        return self.torch.get("compute_capability")

    @property
    def tensorrt_version(self) -> str | None:
        return self.tensorrt.get("version")

    def summary(self) -> dict[str, Any]:
        """The facts a build manifest keeps about the machine."""
        return {
            "python": (self.report.get("python") or {}).get("version"),
            "torch": self.torch.get("version"),
            "cuda": self.torch.get("cuda"),
            "gpu": self.gpu_name,
            "compute_capability": self.compute_capability,
            "vram_total": self.torch.get("vram_total"),
            "tensorrt": self.tensorrt_version,
            "streamdiffusion": self.streamdiffusion.get("version"),
            "streamdiffusion_location": self.streamdiffusion.get("location"),
        }

    def engine_key(self) -> str:
        """Engines are specific to the GPU, its compute capability, the TensorRT version and the fork."""
        parts = (self.gpu_name, self.compute_capability, self.tensorrt_version, self.streamdiffusion.get("version"))
        return "|".join(str(part) for part in parts)

    def max_unet_batch(self) -> int:
        return WIDE_MAX_BATCH if self.features.get("config_batch_bounds") else CONFIG_ROUTE_MAX_BATCH

    def missing(self) -> list[str]:
        """What stops any build on this machine, each with what to install or do."""
        problems: list[str] = []
        torch, trt, sd = self.torch, self.tensorrt, self.streamdiffusion
        if torch.get("error"):
            problems.append(
                f"PyTorch cannot be imported ({torch['error']}). Install a CUDA build of torch in the build Python "
                "(e.g. pip install torch --index-url <the PyTorch CUDA index for your CUDA version>)."
            )
        elif not torch.get("cuda_available"):
            problems.append(
                f"No CUDA GPU is visible to PyTorch {torch.get('version')} (CUDA {torch.get('cuda') or 'none'}). "
                "TensorRT engines need an NVIDIA GPU, its driver, and a CUDA build of torch."
            )
        if trt.get("error"):
            problems.append(
                f"TensorRT cannot be imported ({trt['error']}). Install it in the build Python, "
                "e.g. pip install tensorrt (StreamDiffusion's tools/install-tensorrt.py picks the right version)."
            )
        if sd.get("error") and not sd.get("wrapper_params"):
            problems.append(
                f"StreamDiffusion cannot be imported ({sd['error']}). Install it in the build Python "
                "(pip install -e <StreamDiffusion checkout>) or pass --streamdiffusion-src <checkout>/src."
            )
        elif sd and not sd.get("has_config_loader", False):
            problems.append(
                "This StreamDiffusion has no create_wrapper_from_config (streamdiffusion.config); "
                "use a fork that has it (forkni or livepeer)."
            )
        return problems

    def refusals(self, params_view: dict[str, Any]) -> list[Problem]:
        """Chosen features this StreamDiffusion cannot build, tied to their fields."""
        features = self.features
        checks = (
            ("use_cached_attn", params_view.get("use_cached_attn"), "cached_attention", "cached attention"),
            ("use_controlnet", params_view.get("use_controlnet"), "controlnet", "ControlNet"),
            ("use_ipadapter", params_view.get("use_ipadapter"), "ipadapter", "IP-Adapter"),
            ("scheduler", params_view.get("scheduler") == "tcd", "scheduler", "the TCD scheduler"),
        )
        problems = [
            Problem(field, "error", f"The installed StreamDiffusion cannot build {label}: its wrapper lacks it.")
            for field, chosen, feature, label in checks
            if chosen and features.get(feature) is False
        ]
        if params_view.get("use_safety_checker") and features.get("safety_checker_engine") is False:
            problems.append(
                Problem(
                    "use_safety_checker",
                    "warning",
                    "This StreamDiffusion has no TensorRT safety-checker engine; the checker will run in PyTorch.",
                )
            )
        tokens = params_view.get("ipadapter_tokens")
        if params_view.get("use_ipadapter") and tokens == 16 and features.get("config_ipadapter_tokens") is False:
            problems.append(
                Problem("ipadapter_tokens", "error", "This StreamDiffusion's config loader drops num_image_tokens.")
            )
        return problems


def _cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "sdprep"


def _cache_file(spec: ChildSpec) -> Path:
    identity = json.dumps([spec.interpreter(), spec.source_dir(), spec.gpu, os.environ.get("PYTHONPATH")])
    return _cache_dir() / f"probe-{hashlib.sha1(identity.encode()).hexdigest()[:16]}.json"


def _watched_files(report: dict[str, Any]) -> list[str]:
    paths = [(report.get("python") or {}).get("executable")]
    paths += [(report.get(name) or {}).get("location") for name in ("torch", "tensorrt", "streamdiffusion")]
    return [path for path in paths if path]


def _stamp(paths: list[str]) -> dict[str, float | None]:
    stamps: dict[str, float | None] = {}
    for path in paths:
        try:
            stamps[path] = os.stat(path).st_mtime
        except OSError:
            stamps[path] = None
    return stamps


def cached(spec: ChildSpec) -> Environment | None:
    try:
        entry = json.loads(_cache_file(spec).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if time.time() - entry.get("probed_at", 0) > CACHE_MAX_AGE:
        return None
    if _stamp(list(entry.get("stamps", {}))) != entry.get("stamps"):
        return None
    return Environment(entry["report"], entry["probed_at"])


def probe(spec: ChildSpec, refresh: bool = False, timeout: float = PROBE_TIMEOUT) -> Environment:
    """The build Python's environment, from the cache unless `refresh` or anything changed."""
    if not refresh:
        hit = cached(spec)
        if hit is not None:
            return hit
    environment = _run_probe(spec, timeout)
    entry = {
        "probed_at": environment.probed_at,
        "report": environment.report,
        "stamps": _stamp(_watched_files(environment.report)),
    }
    try:
        atomic_write_text(_cache_file(spec), json.dumps(entry))
    except OSError:
        pass  # a read-only home only costs a slower next start
    return environment


def _run_probe(spec: ChildSpec, timeout: float) -> Environment:
    interpreter = spec.interpreter()
    try:
        child = ChildProcess.start(spec, "probe_environment.py", [])
    except OSError as error:
        raise ProbeError(f"Cannot start the build Python {interpreter}: {error.strerror or error}.") from None
    deadline = time.monotonic() + timeout
    report: dict[str, Any] | None = None
    tail: list[str] = []
    try:
        for line in child.lines():
            if time.monotonic() > deadline:
                raise ProbeError(
                    f"The environment probe did not answer within {timeout:.0f} s (importing torch or "
                    "StreamDiffusion hangs?). Run it by hand: "
                    f"{interpreter} -c 'import torch, streamdiffusion'."
                )
            if line is None:
                continue
            if line.event and line.event.get("event") == "result":
                report = line.event.get("report")
            elif not line.event:
                tail = [*tail[-9:], line.text]
        child.wait(timeout=5)
    finally:
        child.stop(grace=1.0)
    if report is None:
        detail = " | ".join(tail[-3:]) or "no output"
        raise ProbeError(f"The build Python {interpreter} could not run the environment probe: {detail}")
    return Environment(report)
