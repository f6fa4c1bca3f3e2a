"""After the build: load a config's engines as the inference script will, run frames, report the speed.

`run_check(config_path)` probes the machine, takes the model's and the GPU's locks (a check never runs beside a
build), runs child/check_engines.py in the build Python, and proves that loading rebuilt nothing: the engine files
before and after must be the same. The numbers (load time, mean and p95 frame time, fps, peak memory) and the
output image go into build.json, in the record of the variant the config belongs to, so the library shows them.
Nothing here imports StreamDiffusion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.config_load import ConfigError
from sdprep.engine_files import EngineFile
from sdprep.engines import speed_message
from sdprep.jobs.check_files import (
    find_variant,
    image_path_for,
    load_location,
    model_folder,
    read_check_config,
    relative_to,
)
from sdprep.jobs.environment import ProbeError, probe
from sdprep.jobs.job import ChildRun, Job, JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.locks import gpu_lock, model_lock
from sdprep.manifest import CheckRecord, Manifest, now_iso
from sdprep.messages import Message, Size, msg, os_reason, to_json
from sdprep.model_folder import LOGS_DIR, by_relative, read_manifest_or_empty, write_manifest
from sdprep.paths import atomic_write_text

DEFAULT_WARMUP = 10
DEFAULT_FRAMES = 100
MEASURED = ("load_seconds", "mean_ms", "p95_ms", "fps", "peak_memory_bytes", "device_used_bytes", "gpu")


@dataclass(frozen=True)
class CheckOptions:
    child: ChildSpec = field(default_factory=ChildSpec)
    warmup: int = DEFAULT_WARMUP
    frames: int = DEFAULT_FRAMES
    wait_for_gpu: bool = True
    refresh_probe: bool = False


@dataclass
class CheckResult(JobResult):
    config_path: Path | None = None
    load_seconds: float | None = None
    mean_ms: float | None = None
    p95_ms: float | None = None
    fps: float | None = None
    peak_memory_bytes: int | None = None  # torch.cuda.max_memory_allocated() over load + frames
    device_used_bytes: int | None = None  # memory in use on the whole GPU after the frames (TensorRT included)
    image_path: Path | None = None  # the last timed frame, PNG, beside the config
    rebuilt: list[str] = field(default_factory=list)  # engine files loading created or changed
    missing: list[str] = field(default_factory=list)  # engine files the build recorded that are gone
    gpu: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    frames: int = 0
    warmup: int = 0
    variant: str | None = None  # the build.json variant the result was recorded in (None: not recorded)

    @property
    def speed(self) -> Message | None:
        """E.g. "512x512, 1 step: 87.0 fps on NVIDIA GeForce RTX 4090"; None without a measured fps."""
        return speed_message(self.width, self.height, self.steps, self.fps, self.gpu)

    def numbers(self) -> list[Message]:
        """Every measured number, each a phrase (joined with "; " when worded)."""
        parts: list[Message] = []
        if self.load_seconds is not None:
            parts.append(msg("num_loaded", seconds=f"{self.load_seconds:.2f}"))
        if self.mean_ms is not None and self.p95_ms is not None:
            parts.append(
                msg(
                    "num_frames",
                    frames=self.frames,
                    warmup=self.warmup,
                    mean=f"{self.mean_ms:.1f}",
                    p95=f"{self.p95_ms:.1f}",
                )
            )
        if self.fps is not None:
            parts.append(msg("num_fps", fps=f"{self.fps:.1f}"))
        if self.peak_memory_bytes is not None:
            parts.append(msg("num_peak_memory", size=Size(self.peak_memory_bytes)))
        if self.device_used_bytes is not None:
            parts.append(msg("num_device_memory", size=Size(self.device_used_bytes)))
        return parts


class Check(Job[CheckResult]):
    """The state of one check; `run()` does it."""

    result_type = CheckResult
    kind = "check"

    def __init__(
        self, config_path: Path, options: CheckOptions, on_event: Callable[[JobEvent], None], cancel: threading.Event
    ) -> None:
        super().__init__(options.child, on_event, cancel)
        self.config_path = config_path.resolve()
        self.options = options
        self.folder = model_folder(self.config_path)
        self.config: dict[str, Any] = {}
        self.gpu: str | None = None

    def result(self, outcome: Any, reason: Message, **extra: Any) -> CheckResult:
        t_index_list = self.config.get("t_index_list")
        return super().result(
            outcome,
            reason,
            config_path=self.config_path,
            gpu=extra.pop("gpu", None) or self.gpu,
            width=self.config.get("width"),
            height=self.config.get("height"),
            steps=len(t_index_list) if isinstance(t_index_list, list) else None,
            warmup=self.options.warmup,
            frames=self.options.frames,
            **extra,
        )

    def run(self) -> CheckResult:
        try:
            return self._run()
        finally:
            self.progress.close_file()

    def _run(self) -> CheckResult:
        try:
            self.config = read_check_config(self.config_path)
        except ConfigError as problem:
            return self.result("refused", problem.message)
        self.progress.stage("probe")
        try:
            environment = probe(self.options.child, refresh=self.options.refresh_probe)
        except ProbeError as problem:
            return self.result("unavailable", problem.message)
        missing = environment.missing()
        if missing:
            reason = missing[0] if environment.no_nvidia else msg("env_cannot_check", missing=missing)
            return self.result("unavailable", reason)
        self.gpu = environment.gpu_name
        locks = (model_lock(self.folder), gpu_lock(self.options.child.gpu))
        what = f"check of {self.config_path}"
        held = []
        try:
            for lock, code in zip(locks, ("model_waiting", "gpu_waiting"), strict=True):
                ended = self.acquire(lock, what, self.options.wait_for_gpu, code, gpu=self.options.child.gpu)
                if ended is not None:
                    return ended
                held.append(lock)
            return self.check_locked()
        finally:
            for lock in reversed(held):
                lock.release()

    def open_log(self, stamp: str) -> None:
        logs = self.folder / LOGS_DIR
        try:
            logs.mkdir(parents=True, exist_ok=True)
            self.progress.open_file(logs / f"{stamp}-check.log")
        except OSError as problem:
            self.progress.close_file()
            self.progress.path = None
            self.say("no_log_file", folder=logs, reason=os_reason(problem))

    def check_locked(self) -> CheckResult:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.open_log(stamp)
        manifest = read_manifest_or_empty(self.folder)
        variant = find_variant(manifest, self.config_path, self.config)
        cwd, engine_dir = load_location(self.config, self.folder)
        self.say("check_where", config=self.config_path, engines=engine_dir)
        if variant is not None and engine_dir == self.folder:
            gone = [rel for rel in manifest.variants[variant].engines if not (engine_dir / rel).is_file()]
            if gone:
                # Loading would rebuild these (or stop for want of them): say so now, not after minutes.
                result = self.result(
                    "failed",
                    msg("check_engines_missing", files=[engine_dir / rel for rel in gone], config=self.config_path),
                    missing=gone,
                )
                self.record(manifest, variant, result)
                return result
        image_path = image_path_for(self.config_path)
        # The child writes beside it; only a passed check puts its image in place (no picture from a failure).
        partial_image = image_path.with_name(f".{image_path.stem}-{stamp}.png")
        job = {
            "config": self.config,
            "warmup": self.options.warmup,
            "frames": self.options.frames,
            "image_path": str(partial_image),
        }
        job_path = (self.progress.path.parent if self.progress.path else self.folder) / f"{stamp}-check.json"
        before = by_relative(engine_dir)
        try:
            atomic_write_text(job_path, json.dumps(job))
            try:
                run = self.run_child("check_engines.py", [str(job_path)], cwd=cwd, stop_code="stopping_check")
            except OSError as problem:
                return self.result(
                    "failed", msg("child_cannot_start", python=self.child.interpreter(), reason=os_reason(problem))
                )
            if run.cancelled:
                return self.result("cancelled", msg("check_cancelled"))
            if run.error and run.error.get("no_gpu"):
                no_cuda = msg("env_no_cuda", version=run.error.get("torch") or "?", cuda=run.error.get("cuda"))
                return self.result("unavailable", msg("env_cannot_check", missing=[no_cuda]))
            return self.conclude(manifest, variant, engine_dir, before, run, partial_image, image_path)
        except OSError as problem:
            return self.result(
                "failed", msg("check_cannot_write", path=problem.filename or job_path, reason=os_reason(problem))
            )
        finally:
            job_path.unlink(missing_ok=True)
            partial_image.unlink(missing_ok=True)

    def conclude(
        self,
        manifest: Manifest,
        variant: str | None,
        engine_dir: Path,
        before: dict[str, EngineFile],
        run: ChildRun,
        partial_image: Path,
        image_path: Path,
    ) -> CheckResult:
        """Pass or fail from the child's answer and the engine files after it; record it."""
        after = by_relative(engine_dir)
        rebuilt = sorted(rel for rel, engine in after.items() if rel not in before or before[rel].stamp != engine.stamp)
        removed = sorted(set(before) - set(after))
        numbers = run.result or {}
        measured = {key: numbers[key] for key in MEASURED if numbers.get(key) is not None}
        if rebuilt or removed:
            if not run.ok:
                self.say("check_child_also_failed", reason=self.describe_error(run))
            folders = sorted({(engine_dir / rel).parent for rel in [*rebuilt, *removed]})
            result = self.result(
                "failed",
                msg("check_rebuilt", folders=folders, written=rebuilt, deleted=removed, config=self.config_path),
                rebuilt=rebuilt,
                **measured,
            )
        elif not run.ok:
            result = self.result("failed", self.describe_error(run), **measured)
        else:
            image: Path | None = None
            if numbers.get("image") and partial_image.is_file():
                try:
                    partial_image.replace(image_path)
                    image = image_path
                except OSError as problem:
                    self.say("check_image_not_kept", path=image_path, reason=os_reason(problem))
            result = self.result("passed", msg("check_passed_quick"), image_path=image, **measured)
            result.reason = msg("check_passed", speed=result.speed or result.numbers())
        self.record(manifest, variant, result)
        return result

    def describe_error(self, run: ChildRun) -> Message:
        if not run.error:
            return self.child_failure(run, "check_exit")
        message = str(run.error.get("message") or "").strip()
        details = [
            str(line).lstrip("-• ").strip() for line in run.error.get("details") or [] if str(line).startswith("-")
        ]
        missing_engines = "missing" in message.lower() and "engine" in message.lower()
        # StreamDiffusion lists what it looked for on separate lines: keep them, on this one line.
        return msg(
            "check_child_error",
            type=run.error.get("type") or "Error",
            detail=message.rstrip(":"),
            items=details,
            hint=msg("hint_rebuild_from_config", config=self.config_path) if missing_engines else "",
        )

    def record(self, manifest: Manifest, variant: str | None, result: CheckResult) -> None:
        """Into build.json, in the variant's record (re-read under the lock, written atomically)."""
        if variant is None:
            self.say("check_not_recorded")
            return
        fresh = read_manifest_or_empty(self.folder)
        record = fresh.variants.get(variant) or manifest.variants.get(variant)
        if record is None or variant not in fresh.variants:
            return
        record.check = CheckRecord(
            outcome=result.outcome,
            checked_at=now_iso(),
            gpu=result.gpu,
            width=result.width,
            height=result.height,
            steps=result.steps,
            warmup=result.warmup,
            frames=result.frames,
            fps=result.fps,
            mean_ms=result.mean_ms,
            p95_ms=result.p95_ms,
            load_seconds=result.load_seconds,
            peak_memory_bytes=result.peak_memory_bytes,
            device_used_bytes=result.device_used_bytes,
            image=relative_to(self.folder, result.image_path),
            log=relative_to(self.folder, result.log_path),
            reason=None if result.ok else to_json(result.reason),
            rebuilt=result.rebuilt,
            missing=result.missing,
        )
        try:
            write_manifest(self.folder, fresh)
        except OSError as problem:
            self.say("check_record_unwritten", reason=os_reason(problem))
            return
        result.variant = variant


def run_check(
    config_path: Path,
    options: CheckOptions | None = None,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> CheckResult:
    """Load the engines of this config.yaml (or configs/<variant>.yaml), time frames, record the result."""
    return Check(Path(config_path), options or CheckOptions(), on_event, cancel or threading.Event()).run()
