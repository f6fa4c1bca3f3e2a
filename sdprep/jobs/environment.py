"""What the build Python can do: run the probe child, cache its answer, and say what is missing and why.

The probe takes seconds (it imports torch), so its answer is cached on disk and reused while the files of
torch, TensorRT, StreamDiffusion and the interpreter are unchanged. A stale cache after a driver or GPU swap
is the one case the cache cannot see: `--refresh` or the Environment panel's refresh button re-probes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import derive
from sdprep.features import FEATURES, Feature, fix_argument, probe_modules
from sdprep.jobs.process import ChildProcess, ChildSpec, InterpreterSource
from sdprep.messages import Message, Problem, Quote, Size, cut, error, msg, os_reason, warning
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text
from sdprep.profiles import FP8_MIN_COMPUTE_CAPABILITY, PROFILES
from sdprep.setup.driver import driver_version, version_text
from sdprep.setup.pins import CFG_TYPES_NEEDING_FORK_DIFFUSERS, FORK_DIFFUSERS_COMMIT, FORK_DIFFUSERS_URL
from sdprep.validate import CONFIG_ROUTE_MAX_BATCH

CACHE_DIR_ENV = "SDPREP_CACHE_DIR"
CACHE_MAX_AGE = 24 * 3600
PROBE_TIMEOUT = 120.0
# With min/max batch passed through the config, TensorRT still needs a sane profile; 8 covers 4 steps x full.
WIDE_MAX_BATCH = 16
# Features a choice needs: (field, whether it is chosen, feature the probe reports, its label's code).
_FEATURE_CHOICES = (
    ("use_cached_attn", lambda p: p.use_cached_attn, "cached_attention", "feat_cached_attention"),
    ("use_controlnet", lambda p: p.use_controlnet, "controlnet", "feat_controlnet"),
    ("use_ipadapter", lambda p: p.use_ipadapter, "ipadapter", "feat_ipadapter"),
    ("scheduler", lambda p: derive.scheduler(p) == "tcd", "scheduler", "feat_scheduler"),
)


class ProbeError(RuntimeError):
    """The probe child could not run or answer; `message` says why and what to do."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


@dataclass(frozen=True)
class Environment:
    report: dict[str, Any]
    probed_at: float = field(default_factory=time.time)

    def _part(self, name: str) -> dict[str, Any]:
        part = self.report.get(name)
        return part if isinstance(part, dict) else {}

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
    def python(self) -> dict[str, Any]:
        return self._part("python")

    @property
    def features(self) -> dict[str, Any]:
        features = self.streamdiffusion.get("features")
        return features if isinstance(features, dict) else {}

    @property
    def modules(self) -> dict[str, Any]:
        """What importing each module of the feature table did in the build Python (sdprep/features.py)."""
        modules = self.report.get("modules")
        return modules if isinstance(modules, dict) else {}

    def feature_gap(self, feature: Feature) -> tuple[str, str] | None:
        """The first module of `feature` that the build Python could not import, with why; None when all imported
        (or the probe did not try: an answer cached before the table had the module)."""
        for module in feature.modules:
            answer = self.modules.get(module)
            if isinstance(answer, dict) and answer.get("ok") is False:
                return module, str(answer.get("error") or "?")
        return None

    def installed(self) -> list[tuple[Feature, Message | None]]:
        """Each feature of the table with why it cannot be built here (what failed, the command that installs it), or
        None when its modules imported; empty when the probe did not check (an answer from before the table)."""
        if not self.modules:
            return []
        rows: list[tuple[Feature, Message | None]] = []
        for feature in FEATURES:
            gap = self.feature_gap(feature)
            reason = None
            if gap is not None:
                reason = msg("env_installed_no", module=gap[0], error=Quote(gap[1]), fix=fix_argument(feature))
            rows.append((feature, reason))
        return rows

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
            "python": self.python.get("version"),
            "torch": self.torch.get("version"),
            "cuda": self.torch.get("cuda"),
            "gpu": self.gpu_name,
            "compute_capability": self.compute_capability,
            "vram_total": self.torch.get("vram_total"),
            "tensorrt": self.tensorrt_version,
            "streamdiffusion": self.streamdiffusion.get("version"),
            "streamdiffusion_location": self.streamdiffusion.get("location"),
        }

    def machine_line(self) -> Message:
        """One line for a job's log: the GPU and versions that will build (no "None" anywhere)."""
        return msg(
            "env_line",
            gpu=self.gpu_name or msg("env_no_gpu"),
            vram=Size(self.torch["vram_total"]) if self.torch.get("vram_total") else msg("unknown"),
            torch=self.torch.get("version") or msg("env_none"),
            tensorrt=self.tensorrt_version or msg("env_none"),
            streamdiffusion=self.streamdiffusion.get("version") or msg("unknown"),
            python=self.python.get("executable") or msg("unknown"),
        )

    def engine_key(self) -> str:
        """Engines are specific to the GPU, its compute capability, the TensorRT version and the fork."""
        parts = (self.gpu_name, self.compute_capability, self.tensorrt_version, self.streamdiffusion.get("version"))
        return "|".join(str(part) for part in parts)

    def max_unet_batch(self) -> int:
        return WIDE_MAX_BATCH if self.features.get("config_batch_bounds") else CONFIG_ROUTE_MAX_BATCH

    @property
    def no_nvidia(self) -> bool:
        """No NVIDIA driver answered (as setup asks it) and torch sees no GPU: the root cause, which nothing installed
        here fixes. Unknown (an environment not probed by `probe`) counts as a driver."""
        driver = self.report.get("driver")
        return isinstance(driver, dict) and not driver.get("version") and not self.torch.get("cuda_available")

    def missing(self) -> list[Message]:
        """What stops any build on this machine, each with what to do; without an NVIDIA GPU only that."""
        if self.no_nvidia:
            return [msg("env_no_nvidia")]
        problems: list[Message] = []
        torch, trt, sd = self.torch, self.tensorrt, self.streamdiffusion
        if torch.get("error"):
            problems.append(msg("env_torch_import", error=Quote(torch["error"])))
        elif not torch.get("cuda"):
            problems.append(msg("env_cpu_torch", version=torch.get("version") or "?"))
        elif not torch.get("cuda_available"):
            problems.append(msg("env_no_cuda", version=torch.get("version") or "?", cuda=torch.get("cuda")))
        if trt.get("error"):
            problems.append(msg("env_tensorrt_import", error=Quote(trt["error"])))
        if sd.get("error") and not sd.get("wrapper_params"):
            if sd.get("installed") and sd.get("failed_module") not in (None, "streamdiffusion"):
                problems.append(msg("env_sd_broken", module=sd["failed_module"], error=Quote(sd["error"])))
            elif sd.get("installed") is False or "No module named 'streamdiffusion'" in str(sd["error"]):
                problems.append(msg("env_sd_missing"))
            else:
                problems.append(msg("env_sd_import", error=Quote(sd["error"])))
        elif sd and not sd.get("has_config_loader", False):
            problems.append(msg("env_no_config_loader"))
        return problems

    def diffusers_mismatch(self) -> Message | None:
        """When the installed diffusers is not the git build the fork pins: which it is, which the fork wants, and the
        cfg types that fail with it. None when it is, when the fork pins none, or when nothing can be said."""
        found = self._part("diffusers")
        if not found.get("installed"):
            return None  # not installed: StreamDiffusion's import fails, and missing() says so
        wanted = found.get("wanted")
        pin = _git_pin(wanted)
        if pin is None:
            if wanted is not None or self.features.get("cached_attention") is not True:
                return None  # the fork asks for a released diffusers, or it is not the fork whose patch needs one
            pin = (FORK_DIFFUSERS_URL, FORK_DIFFUSERS_COMMIT)  # a source checkout: no metadata, the forkni pin
        url, ref = pin
        commit = str(found.get("commit") or "")
        if (
            commit
            and _same_repository(str(found.get("url") or ""), url)
            and (commit.startswith(ref) or ref.startswith(commit))
        ):
            return None
        origin = found.get("url")
        installed = (
            msg(
                "diffusers_from",
                version=found.get("version") or "?",
                origin=f"{origin}@{commit[:12]}" if commit else origin,
            )
            if origin
            else msg("diffusers_from_index", version=found.get("version") or "?")
        )
        return msg(
            "env_diffusers_not_pinned",
            installed=installed,
            wanted=f"{_repository_name(url)}@{ref[:12]}",
            cfg_types=list(CFG_TYPES_NEEDING_FORK_DIFFUSERS),
        )

    def refusals(self, params: BakedParams) -> list[Problem]:
        """Chosen features this StreamDiffusion or this GPU cannot build, tied to their fields. None on a machine
        without an NVIDIA GPU: nothing builds here (said once, first), and a config saved for another machine may
        ask for anything that machine can build."""
        if self.no_nvidia:
            return []
        features = self.features
        problems = [
            error(name, "feature_missing", feature=msg(label))
            for name, chosen, feature, label in _FEATURE_CHOICES
            if chosen(params) and features.get(feature) is False
        ]
        if params.use_safety_checker and features.get("safety_checker_engine") is False:
            problems.append(warning("use_safety_checker", "safety_in_pytorch"))
        if params.use_ipadapter and params.ipadapter_tokens == 16 and features.get("config_ipadapter_tokens") is False:
            problems.append(error("ipadapter_tokens", "tokens_dropped"))
        if params.cfg_type in CFG_TYPES_NEEDING_FORK_DIFFUSERS:
            mismatch = self.diffusers_mismatch()
            if mismatch is not None:
                problems.append(warning("cfg_type", "cfg_needs_fork_diffusers", cfg=params.cfg_type, why=mismatch))
        problems += self.profile_refusals(params)
        return problems + self.install_refusals(params, {p.field for p in problems if p.severity == "error"})

    def install_refusals(self, params: BakedParams, refused: Collection[str] = ()) -> list[Problem]:
        """Chosen features whose modules the build Python cannot import, each with the setup command that installs
        them; a field already refused for another reason (FP8 on an older GPU) and a module already named are not
        repeated."""
        problems: list[Problem] = []
        named: set[str] = set()
        for feature in FEATURES:
            fields = [name for name in feature.fields(params) if name not in refused]
            gap = self.feature_gap(feature) if fields else None
            if gap is None or gap[0] in named:
                continue
            named.add(gap[0])
            problems += [
                error(
                    name,
                    "feature_not_installed",
                    feature=msg(f"feat_{feature.name}"),
                    module=gap[0],
                    error=Quote(gap[1]),
                    fix=fix_argument(feature),
                )
                for name in fields
            ]
        return problems

    def profile_refusals(self, params: BakedParams) -> list[Problem]:
        """A profile other than Flexible needs a loader that reads its keys; FP8 needs its GPU (its quantiser: a
        feature of sdprep/features.py, in install_refusals)."""
        problems: list[Problem] = []
        flexible = PROFILES["flexible"]
        if (params.static_shapes, params.opt_level) != (flexible.static_shapes, flexible.opt_level) and (
            self.features.get("config_profile_keys") is False
        ):
            problems.append(error("static_shapes", "profile_keys_ignored"))
        if params.fp8:
            if self.features.get("config_fp8") is False:
                problems.append(error("fp8", "fp8_not_in_fork"))
            capability = _capability(self.compute_capability)
            if capability is not None and capability < FP8_MIN_COMPUTE_CAPABILITY:
                problems.append(
                    error("fp8", "fp8_old_gpu", gpu=self.gpu_name or "?", capability=self.compute_capability or "?")
                )
        return problems


def _git_pin(requirement: object) -> tuple[str, str] | None:
    """(repository URL, ref) of "name @ git+URL@REF [; marker]", or None for any other requirement."""
    text = str(requirement or "").split(";", 1)[0].strip()
    match = re.search(r"@\s*git\+(\S+)@([^@/\s]+)$", text)
    return (match.group(1), match.group(2)) if match else None


def _repository_name(url: str) -> str:
    """https://github.com/varshith15/diffusers.git -> varshith15/diffusers (for people)."""
    return re.sub(r"\.git$", "", url.rstrip("/")).split("github.com/", 1)[-1]


def _same_repository(a: str, b: str) -> bool:
    def plain(url: str) -> str:
        return re.sub(r"\.git$", "", url.strip().lower().removeprefix("git+").rstrip("/"))

    return bool(a) and plain(a) == plain(b)


def _capability(text: str | None) -> tuple[int, int] | None:
    try:
        major, minor = (text or "").split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def cache_dir() -> Path:
    """Where the probe's answers (and what is kept beside them, such as passed rehearsals) are cached."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "sdprep"


def _cache_file(spec: ChildSpec) -> Path:
    # The modules the probe imports are part of the question: a new feature table asks again.
    identity = json.dumps(
        [spec.interpreter(), spec.source_dir(), spec.gpu, os.environ.get("PYTHONPATH"), probe_modules()]
    )
    return cache_dir() / f"probe-{hashlib.sha1(identity.encode()).hexdigest()[:16]}.json"


def _watched_files(report: dict[str, Any]) -> list[str]:
    paths = [(report.get("python") or {}).get("executable")]
    paths += [(report.get(name) or {}).get("location") for name in ("torch", "tensorrt", "streamdiffusion")]
    return [path for path in paths if isinstance(path, str) and path]


def _stamp(paths: list[str]) -> dict[str, float | None]:
    stamps: dict[str, float | None] = {}
    for path in paths:
        try:
            stamps[path] = os.stat(path).st_mtime
        except OSError:
            stamps[path] = None
    return stamps


def _with_choice(report: dict[str, Any], spec: ChildSpec) -> dict[str, Any]:
    """The report with which build Python answered and why it was chosen, and the NVIDIA driver as setup reads it
    (not cached: the choice can change, and a driver can be installed since)."""
    interpreter, source = spec.choice()
    chosen: dict[str, Any] = {"interpreter": interpreter, "chosen_by": source}
    driver = {"version": version_text(driver_version())}
    return {**report, "python": {**(report.get("python") or {}), **chosen}, "driver": driver}


def cached(spec: ChildSpec) -> Environment | None:
    try:
        entry = json.loads(_cache_file(spec).read_text(encoding="utf-8"))
        if time.time() - entry.get("probed_at", 0) > CACHE_MAX_AGE:
            return None
        if _stamp(list(entry.get("stamps", {}))) != entry.get("stamps"):
            return None
        return Environment(_with_choice(entry["report"], spec), entry["probed_at"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def chosen_by(environment: Environment) -> InterpreterSource | None:
    source = environment.python.get("chosen_by")
    return source if source in ("flag", "environment", "build_venv", "app") else None


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
    return Environment(_with_choice(environment.report, spec), environment.probed_at)


class ProbeLane:
    """A server's probes, one at a time, with duplicates merged: a request while a probe runs shares the next one
    (all requests that arrive meanwhile share it too), so 20 "probe again" clicks cost two probes, not twenty.

    Requests return a Future and hold no thread while they wait (the page's handlers await it); the probes run in
    the lane's own thread. Page loads never come here while an answer is known (the remembered or cached one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Future[Environment] | None = None
        self._next: Future[Environment] | None = None

    def request(self, spec: ChildSpec, fresh: bool = True) -> Future[Environment]:
        """The probe that answers this request. `fresh`: one that starts after this call (Probe again: the
        machine may have just changed); otherwise a running probe will do."""
        with self._lock:
            if self._running is None:
                self._running = Future()
                threading.Thread(target=self._drain, args=(spec,), name="sdprep-probe", daemon=True).start()
                return self._running
            if not fresh:
                return self._running
            if self._next is None:
                self._next = Future()
            return self._next

    def busy(self) -> bool:
        with self._lock:
            return self._running is not None

    def _drain(self, spec: ChildSpec) -> None:
        with self._lock:
            future = self._running
        while future is not None:
            try:
                future.set_result(probe(spec, refresh=True))
            except BaseException as problem:  # whatever it is, every waiting request hears of it
                future.set_exception(problem)
            with self._lock:
                self._running, self._next = self._next, None
                future = self._running


def _run_probe(spec: ChildSpec, timeout: float) -> Environment:
    interpreter = spec.interpreter()
    if spec.source_dir() and not Path(spec.source_dir() or "").is_dir():
        raise ProbeError(msg("probe_no_source_dir", path=spec.source_dir()))
    try:
        child = ChildProcess.start(spec, "probe_environment.py", probe_modules())
    except OSError as problem:
        raise ProbeError(msg("probe_cannot_start", python=interpreter, reason=os_reason(problem))) from None
    deadline = time.monotonic() + timeout
    report: dict[str, Any] | None = None
    tail: list[str] = []
    try:
        for line in child.lines():
            if time.monotonic() > deadline:
                raise ProbeError(msg("probe_timeout", seconds=round(timeout), python=interpreter))
            if line is None:
                continue
            if line.event and line.event.get("event") == "result":
                report = line.event.get("report")
            elif not line.event:
                tail = [*tail[-9:], cut(line.text)]
        child.wait(timeout=5)
    finally:
        child.stop(grace=1.0)
    if not isinstance(report, dict):
        raise ProbeError(msg("probe_no_answer", python=interpreter, detail=" | ".join(tail[-3:]) or msg("no_output")))
    return Environment(report)
