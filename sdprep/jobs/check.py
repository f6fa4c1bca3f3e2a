"""After the build: load a config's engines as the inference script will, run frames, report the speed.

`run_check(config_path)` probes the machine, takes the GPU lock (a check never runs beside a build), runs
child/check_engines.py in the build Python, and proves that loading rebuilt nothing: the engine files before and
after must be the same. The numbers (load time, mean and p95 frame time, fps, peak memory) and the output image go into
build.json, in the record of the variant the config belongs to, so the engines library can show them.

`build_and_check()` is the build followed by its check, for the CLI's `build --check` and the UI.
Nothing here imports StreamDiffusion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sdprep import manifest as mf
from sdprep.config import ConfigError, RuntimeDefaults, read_config
from sdprep.engines import speed_text
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.environment import ProbeError, probe
from sdprep.jobs.lock import GpuLock
from sdprep.jobs.process import ChildProcess, ChildSpec, describe_exit
from sdprep.jobs.progress import BuildEvent, Progress
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text

CheckOutcome = Literal["passed", "failed", "cancelled", "refused"]
DEFAULT_WARMUP = 10
DEFAULT_FRAMES = 100


@dataclass(frozen=True)
class CheckOptions:
    child: ChildSpec = field(default_factory=ChildSpec)
    warmup: int = DEFAULT_WARMUP
    frames: int = DEFAULT_FRAMES
    wait_for_gpu: bool = True
    refresh_probe: bool = False


@dataclass
class CheckResult:
    outcome: CheckOutcome
    reason: str  # one line for people
    config_path: Path | None = None
    load_seconds: float | None = None
    mean_ms: float | None = None
    p95_ms: float | None = None
    fps: float | None = None
    peak_memory_bytes: int | None = None  # torch.cuda.max_memory_allocated() over load + frames
    device_used_bytes: int | None = None  # memory in use on the whole GPU after the frames (TensorRT included)
    image_path: Path | None = None  # the last timed frame, PNG, beside the config
    rebuilt: list[str] = field(default_factory=list)  # engine files loading created or changed (engine dir relative)
    missing: list[str] = field(default_factory=list)  # engine files the build recorded that are gone
    gpu: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    frames: int = 0
    warmup: int = 0
    variant: str | None = None  # the build.json variant the result was recorded in (None: not recorded)
    log_path: Path | None = None
    log_tail: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"

    @property
    def speed(self) -> str | None:
        """E.g. "512x512, 1 step: 87.0 fps on NVIDIA GeForce RTX 4090"; None without a measured fps."""
        return speed_text(
            {"width": self.width, "height": self.height, "steps": self.steps, "fps": self.fps, "gpu": self.gpu}
        )

    def numbers(self) -> str:
        """One line with every measured number, for logs and the CLI."""
        parts = []
        if self.load_seconds is not None:
            parts.append(f"loaded in {self.load_seconds:.2f} s")
        if self.mean_ms is not None and self.p95_ms is not None:
            timed = f"{self.frames} frames after {self.warmup} warm-up"
            parts.append(f"{timed}: mean {self.mean_ms:.1f} ms, p95 {self.p95_ms:.1f} ms")
        if self.fps is not None:
            parts.append(f"{self.fps:.1f} fps")
        if self.peak_memory_bytes is not None:
            parts.append(f"peak GPU memory {self.peak_memory_bytes / 2**30:.2f} GiB (PyTorch)")
        if self.device_used_bytes is not None:
            parts.append(f"{self.device_used_bytes / 2**30:.2f} GiB in use on the GPU")
        return "; ".join(parts)


def read_check_config(config_path: Path) -> dict[str, Any]:
    """The config as written; ConfigError (for people) when it is not a StreamDiffusion config."""
    if not config_path.is_file():
        raise ConfigError(f"{config_path} does not exist or is not a file.")
    config = read_config(config_path)
    if not config.get("model_id"):
        raise ConfigError(f"{config_path} has no model_id: it is not a StreamDiffusion config.")
    for key in ("width", "height"):
        if key in config and not isinstance(config[key], int):
            raise ConfigError(f"{config_path}: {key} must be a whole number, not {config[key]!r}.")
    return config


def model_folder(config_path: Path) -> Path:
    """The model's folder (build.json, logs): beside config.yaml, or above configs/<variant>.yaml."""
    folder = config_path.parent
    if folder.name == mf.CONFIGS_DIR and (
        (folder.parent / mf.MANIFEST_NAME).exists() or (folder.parent / "config.yaml").exists()
    ):
        return folder.parent
    return folder


def load_location(config: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """(working folder for the child, absolute engine folder StreamDiffusion will use).

    A relative engine_dir is relative to where the inference script runs; the app writes it relative to the folder
    it was started in, so run from the ancestor of the model folder that makes engine_dir point at it.
    """
    raw = Path(str(config.get("engine_dir") or "engines"))
    if raw.is_absolute():
        return Path.cwd(), raw.resolve()
    for base in (folder, *folder.parents):
        if (base / raw).resolve() == folder:
            return base, folder
    return Path.cwd(), (Path.cwd() / raw).resolve()


def image_path_for(config_path: Path) -> Path:
    """check.png beside config.yaml; configs/<variant>.check.png for a variant's own config."""
    if config_path.name == "config.yaml":
        return config_path.with_name("check.png")
    return config_path.with_name(f"{config_path.stem}.check.png")


def stamp_of(engine: mf.EngineFile) -> tuple[int, int]:
    return engine.mtime_ns, engine.size


def find_variant(manifest: dict[str, Any], config_path: Path, config: dict[str, Any]) -> str | None:
    """The build.json variant this config is: the one its file names, if it needs the same engines."""
    variants = manifest.get("variants") or {}
    fingerprint = mf.fingerprint(config)
    named = config_path.stem if config_path.parent.name == mf.CONFIGS_DIR else manifest.get("latest_variant")
    if named in variants and variants[named].get("fingerprint") == fingerprint:
        return str(named)
    same = [name for name, record in variants.items() if record.get("fingerprint") == fingerprint]
    return same[0] if len(same) == 1 else None


class Check:
    """The state of one check; `run()` does it."""

    def __init__(
        self,
        config_path: Path,
        options: CheckOptions,
        on_event: Callable[[BuildEvent], None],
        cancel: threading.Event,
    ) -> None:
        self.config_path = config_path.resolve()
        self.options = options
        self.on_event = on_event
        self.cancel = cancel
        self.progress = Progress(on_event)
        self.event = self.progress.event
        self.folder = model_folder(self.config_path)
        self.config: dict[str, Any] = {}
        self.gpu: str | None = None

    def result(self, outcome: CheckOutcome, reason: str, **extra: Any) -> CheckResult:
        self.progress.close_stage()
        if outcome != "passed":  # a pass is logged by its caller, once its reason holds the numbers
            self.progress.log(f"[{outcome}] {reason}")
        config = self.config
        t_index_list = config.get("t_index_list")
        return CheckResult(
            outcome=outcome,
            reason=reason,
            config_path=self.config_path,
            gpu=extra.pop("gpu", None) or self.gpu,
            width=config.get("width"),
            height=config.get("height"),
            steps=len(t_index_list) if isinstance(t_index_list, list) else None,
            warmup=self.options.warmup,
            frames=self.options.frames,
            log_path=self.progress.path,
            log_tail=self.progress.tail(),
            stages=dict(self.progress.stages),
            duration=round(self.progress.elapsed(), 3),
            **extra,
        )

    # --- the steps -------------------------------------------------------------------------------------------
    def run(self) -> CheckResult:
        try:
            self.config = read_check_config(self.config_path)
        except ConfigError as error:
            return self.result("refused", str(error))
        self.event("stage", "Checking the environment", "probe")
        try:
            environment = probe(self.options.child, refresh=self.options.refresh_probe)
        except ProbeError as error:
            return self.result("refused", str(error))
        missing = environment.missing()
        if missing:
            return self.result("refused", "Cannot check the engines on this machine: " + " ".join(missing))
        self.gpu = environment.gpu_name
        gpu = self.options.child.gpu
        lock = GpuLock(gpu)
        if not lock.acquire(
            what=f"check of {self.config_path}",
            wait=self.options.wait_for_gpu,
            should_stop=self.cancel.is_set,
            on_wait=lambda holder: self.event(
                "waiting",
                f"GPU {gpu} is busy: {holder.get('what', 'a build')} (process {holder.get('pid', '?')}, "
                f"since {holder.get('since', '?')}). Waiting for it to finish.",
            ),
        ):
            if self.cancel.is_set():
                return self.result("cancelled", "Cancelled while waiting for the GPU.")
            return self.result("refused", f"GPU {gpu} is busy with {lock.holder().get('what', 'a build')}.")
        try:
            return self.check_locked()
        finally:
            lock.release()
            self.progress.close_file()

    def open_log(self, stamp: str) -> None:
        logs = self.folder / mf.LOGS_DIR
        try:
            logs.mkdir(parents=True, exist_ok=True)
            self.progress.open_file(logs / f"{stamp}-check.log")
        except OSError as error:
            self.progress.close_file()
            self.progress.path = None
            self.event("log", f"No log file: cannot write in {logs} ({error.strerror or error}).")

    def check_locked(self) -> CheckResult:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.open_log(stamp)
        manifest = mf.read_manifest(self.folder)
        variant = find_variant(manifest, self.config_path, self.config)
        cwd, engine_dir = load_location(self.config, self.folder)
        self.event("log", f"Config {self.config_path}; engines in {engine_dir}")

        if variant is not None and engine_dir == self.folder:
            recorded = (manifest["variants"][variant]).get("engines") or []
            gone = [relative for relative in recorded if not (engine_dir / relative).is_file()]
            if gone:
                # Loading would rebuild these (or stop for want of them): say so now, not after minutes.
                described = "; ".join(f"{self.label(relative)} {engine_dir / relative}" for relative in gone)
                result = self.result(
                    "failed",
                    f"The engines this config needs are missing: {described}. Rebuild them: "
                    f"python gradio_prepare.py build --from-config {self.config_path}",
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
        before = {engine.relative: engine for engine in mf.scan_engines(engine_dir)}
        try:
            atomic_write_text(job_path, json.dumps(job))
        except OSError as error:
            return self.result("failed", f"Cannot write the check job {job_path}: {error.strerror or error}.")
        try:
            outcome = self.run_child(job_path, cwd)
            if isinstance(outcome, CheckResult):
                return outcome  # cancelled, refused (no GPU after all), or the child could not start
            return self.conclude(manifest, variant, engine_dir, before, outcome, partial_image, image_path)
        finally:
            job_path.unlink(missing_ok=True)
            partial_image.unlink(missing_ok=True)

    def conclude(
        self,
        manifest: dict[str, Any],
        variant: str | None,
        engine_dir: Path,
        before: dict[str, mf.EngineFile],
        outcome: tuple[dict[str, Any], str | None],
        partial_image: Path,
        image_path: Path,
    ) -> CheckResult:
        """Pass or fail from the child's answer and the engine files after it; record it."""
        numbers, error = outcome
        after = {engine.relative: engine for engine in mf.scan_engines(engine_dir)}
        rebuilt = sorted(
            relative
            for relative, engine in after.items()
            if relative not in before or stamp_of(before[relative]) != stamp_of(engine)
        )
        removed = sorted(set(before) - set(after))
        measured = self.measured(numbers)
        if rebuilt or removed:
            if error:
                self.event("log", f"The check process also failed: {error}")
            folders = sorted({str((engine_dir / relative).parent) for relative in [*rebuilt, *removed]})
            changes = [f"{relative} (written)" for relative in rebuilt]
            changes += [f"{relative} (deleted)" for relative in removed]
            result = self.result(
                "failed",
                f"Loading changed the engines, so StreamDiffusion would rebuild them: config and engines disagree. "
                f"It looked in {', '.join(folders)} and changed {', '.join(changes)}. Rebuild with: "
                f"python gradio_prepare.py build --from-config {self.config_path} --force",
                rebuilt=rebuilt,
                **measured,
            )
        elif error:
            result = self.result("failed", error, **measured)
        else:
            image: Path | None = None
            if numbers.get("image") and partial_image.is_file():
                try:
                    partial_image.replace(image_path)
                    image = image_path
                except OSError as problem:
                    self.event("log", f"The output image could not be kept at {image_path}: {problem}.")
            result = self.result("passed", "", image_path=image, **measured)
            result.reason = f"Loaded without rebuilding: {result.speed or result.numbers()}."
            self.progress.log(f"[passed] {result.reason}")
        self.record(manifest, variant, result)
        return result

    def label(self, relative: str) -> str:
        kind = Path(relative).stem
        return mf.KIND_LABELS.get(kind, kind)

    def measured(self, numbers: dict[str, Any]) -> dict[str, Any]:
        keys = ("load_seconds", "mean_ms", "p95_ms", "fps", "peak_memory_bytes", "device_used_bytes", "gpu")
        return {key: numbers[key] for key in keys if numbers.get(key) is not None}

    def run_child(self, job_path: Path, cwd: Path) -> CheckResult | tuple[dict[str, Any], str | None]:
        """The child's numbers and its error (None when it passed), or the result that ends the check here."""
        try:
            child = ChildProcess.start(self.options.child, "check_engines.py", [str(job_path)], cwd=cwd)
        except OSError as error:
            return self.result(
                "failed", f"Cannot start the check Python {self.options.child.interpreter()}: {error.strerror}."
            )
        numbers: dict[str, Any] | None = None
        error_event: dict[str, Any] | None = None
        try:
            for line in child.lines():
                if self.cancel.is_set():
                    self.event("log", "Cancelling: stopping the check process and everything it started.")
                    child.stop()
                    return self.result("cancelled", "Check cancelled; nothing was recorded.")
                if line is None:
                    continue
                if line.event is None:
                    self.event("raw", line.text)
                    continue
                kind = line.event.get("event")
                if kind == "stage":
                    self.event("stage", str(line.event.get("message", "")), str(line.event.get("stage", "")))
                elif kind == "log":
                    self.event("log", str(line.event.get("message", "")))
                elif kind == "result":
                    numbers = line.event
                elif kind == "error":
                    error_event = line.event
            code = child.wait(timeout=30)
        finally:
            child.stop(grace=1.0)
        if error_event and error_event.get("no_gpu"):
            return self.result("refused", str(error_event.get("message")))
        if code == 0 and numbers is not None:
            return numbers, None
        if error_event:
            return numbers or {}, self.describe_error(error_event)
        return numbers or {}, f"The check process {describe_exit(code)} before reporting (see the log)."

    def describe_error(self, event: dict[str, Any]) -> str:
        message = str(event.get("message") or "").strip()
        reason = f"{event.get('type', 'Error')}: {message}" if message else str(event.get("type", "Error"))
        items = [str(line).lstrip("-• ").strip() for line in event.get("details") or [] if str(line).startswith("-")]
        if items:
            # StreamDiffusion lists what it looked for on separate lines: keep them, on this one line.
            reason = f"{reason.rstrip(':')}: {'; '.join(items)}"
        if "missing" in reason.lower() and "engine" in reason.lower():
            reason += f". Rebuild them: python gradio_prepare.py build --from-config {self.config_path}"
        return reason

    def record(self, manifest: dict[str, Any], variant: str | None, result: CheckResult) -> None:
        """Into build.json, in the variant's record (re-read under the lock, written atomically)."""
        if variant is None:
            self.event("log", "This config matches no recorded build in build.json: the result is not recorded.")
            return
        fresh = mf.read_manifest(self.folder) or manifest
        record = (fresh.get("variants") or {}).get(variant)
        if record is None:
            return
        entry: dict[str, Any] = {
            "outcome": result.outcome,
            "checked_at": mf.now_iso(),
            "gpu": result.gpu,
            "width": result.width,
            "height": result.height,
            "steps": result.steps,
            "warmup": result.warmup,
            "frames": result.frames,
            "fps": result.fps,
            "mean_ms": result.mean_ms,
            "p95_ms": result.p95_ms,
            "load_seconds": result.load_seconds,
            "peak_memory_bytes": result.peak_memory_bytes,
            "device_used_bytes": result.device_used_bytes,
            "image": self.relative(result.image_path),
            "log": self.relative(result.log_path),
        }
        if result.outcome != "passed":
            entry["reason"] = result.reason
            entry["rebuilt"] = result.rebuilt
            entry["missing"] = result.missing
        record["check"] = entry
        try:
            mf.write_manifest(self.folder, fresh)
        except OSError as error:
            self.event("log", f"build.json could not be written ({error.strerror or error}); the result is not kept.")
            return
        result.variant = variant

    def relative(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return path.resolve().relative_to(self.folder).as_posix()
        except ValueError:
            return str(path)


def run_check(
    config_path: Path,
    options: CheckOptions | None = None,
    on_event: Callable[[BuildEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> CheckResult:
    """Load the engines of this config.yaml (or configs/<variant>.yaml), time frames, record the result."""
    return Check(Path(config_path), options or CheckOptions(), on_event, cancel or threading.Event()).run()


def recorded_check(build: BuildResult) -> CheckResult | None:
    """For an up-to-date build, the passed check already recorded on these very engines, instead of a new one.

    "Up to date" proved the engine files unchanged since their build on this GPU and TensorRT; a check passed
    after that build measured them. Running it again would only delay the answer (loading engines takes long on
    a GPU). `python gradio_prepare.py check` always measures anew.
    """
    if build.outcome != "up_to_date" or build.config_path is None or build.variant is None:
        return None
    folder = build.config_path.parent
    record = (mf.read_manifest(folder).get("variants") or {}).get(build.variant) or {}
    check = record.get("check") or {}
    image = folder / str(check.get("image") or "")
    if check.get("outcome") != "passed" or str(check.get("checked_at", "")) < str(record.get("built_at", "~")):
        return None
    if check.get("gpu") != (record.get("environment") or {}).get("gpu") or not image.is_file():
        return None
    return CheckResult(
        outcome="passed",
        reason=f"Checked at {check.get('checked_at')} on these unchanged engines; not run again.",
        config_path=build.config_path,
        load_seconds=check.get("load_seconds"),
        mean_ms=check.get("mean_ms"),
        p95_ms=check.get("p95_ms"),
        fps=check.get("fps"),
        peak_memory_bytes=check.get("peak_memory_bytes"),
        device_used_bytes=check.get("device_used_bytes"),
        image_path=image,
        gpu=check.get("gpu"),
        width=check.get("width"),
        height=check.get("height"),
        steps=check.get("steps"),
        frames=int(check.get("frames") or 0),
        warmup=int(check.get("warmup") or 0),
        variant=build.variant,
    )


def build_and_check(
    params: BakedParams,
    runtime: RuntimeDefaults,
    options: BuildOptions | None = None,
    on_event: Callable[[BuildEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
    check_options: CheckOptions | None = None,
    on_built: Callable[[BuildResult], None] = lambda build: None,
) -> tuple[BuildResult, CheckResult | None]:
    """The build, then (when options.check and the engines are proven) its check; elapsed times run on.

    `on_built` gets the build's result as soon as it is known, before the check starts (to show it meanwhile).
    """
    options = options or BuildOptions()
    cancel = cancel or threading.Event()
    build = run_build(params, runtime, options, on_event, cancel)
    on_built(build)
    if not (options.check and build.ok and build.config_path) or cancel.is_set():
        return build, None
    earlier = recorded_check(build)
    if earlier is not None:
        on_event(BuildEvent("log", build.duration, earlier.reason))
        return build, earlier
    check_options = check_options or CheckOptions()
    check_options = replace(check_options, child=options.child, wait_for_gpu=options.wait_for_gpu)
    offset = build.duration
    check = run_check(
        build.config_path,
        check_options,
        lambda event: on_event(replace(event, elapsed=event.elapsed + offset)),
        cancel,
    )
    return build, check
