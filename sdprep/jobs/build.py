"""One build, start to proof: validate, probe, lock the GPU, guard against stale engines, run the child,
stream its progress, prove the engines exist, and only then write config.yaml and the manifest.

Used by the CLI directly and by the UI through jobs/board.py. Nothing here imports StreamDiffusion.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdprep import derive
from sdprep import manifest as mf
from sdprep.config import RuntimeDefaults, config_header, dump_yaml, make_config
from sdprep.jobs.environment import WIDE_MAX_BATCH, Environment, ProbeError, probe
from sdprep.jobs.lock import GpuLock
from sdprep.jobs.process import ChildProcess, ChildSpec, describe_exit
from sdprep.jobs.progress import BuildEvent, Progress
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text
from sdprep.validate import Problem, check_unet_batch, has_errors, validate

Outcome = Literal["built", "up_to_date", "failed", "cancelled", "refused"]
# A temp file of an atomic write older than this was left by a killed process (a live write takes milliseconds).
STALE_TEMP_SECONDS = 600.0


@dataclass(frozen=True)
class BuildOptions:
    child: ChildSpec = field(default_factory=ChildSpec)
    force: bool = False
    wait_for_gpu: bool = True
    refresh_probe: bool = False
    # Load the engines and time frames after a proven build; run by build_and_check (jobs/check.py), not here.
    check: bool = False


@dataclass
class BuildResult:
    outcome: Outcome
    reason: str  # one line for people
    config_path: Path | None = None
    manifest_path: Path | None = None
    log_path: Path | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    duration: float = 0.0
    variant: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("built", "up_to_date")


class BuildCancelled(Exception):
    pass


class Build:
    """The state of one build; `run()` does it. Split into steps so each reads as what it proves."""

    def __init__(
        self,
        params: BakedParams,
        runtime: RuntimeDefaults,
        options: BuildOptions,
        on_event: Callable[[BuildEvent], None],
        cancel: threading.Event,
    ) -> None:
        self.params = params
        self.options = options
        self.on_event = on_event
        self.cancel = cancel
        self.progress = Progress(on_event)
        self.event = self.progress.event
        self.config = make_config(params, runtime)  # valid params only: run_build() validates first
        self.fingerprint = mf.fingerprint(self.config)
        self.engine_dir = derive.engine_dir(params)
        self.variant = f"{derive.variant_name(params)}-{self.fingerprint[:6]}"
        self.aside: list[tuple[Path, Path]] = []  # (original, aside copy)

    def result(self, outcome: Outcome, reason: str, **extra: Any) -> BuildResult:
        self.progress.close_stage()
        if outcome not in ("built", "up_to_date", "refused"):
            self.progress.log(f"[{outcome}] {reason}")
        return BuildResult(
            outcome=outcome,
            reason=reason,
            log_path=self.progress.path,
            stages=dict(self.progress.stages),
            log_tail=self.progress.tail(),
            duration=round(self.progress.elapsed(), 3),
            variant=self.variant,
            **extra,
        )

    # --- the steps -----------------------------------------------------------------------------------------
    def run(self, problems: list[Problem]) -> BuildResult:
        """Build parameters that passed validate() (its warnings in `problems`)."""
        try:
            return self._run(problems)
        except OSError as error:
            # A read-only or full engines folder is a reason for people, not an internal error.
            with contextlib.suppress(OSError):
                self.put_back(superseded=set())
            where = error.filename or self.engine_dir
            return self.result(
                "failed",
                f"Cannot write {where}: {error.strerror or error}. Check that the folder is writable and the disk "
                "has free space; the earlier config.yaml is unchanged.",
            )

    def _run(self, problems: list[Problem]) -> BuildResult:
        try:
            environment = self.probe()
        except ProbeError as error:
            return self.result("refused", str(error))
        missing = environment.missing()
        if missing:
            return self.result("refused", " ".join(missing))
        problems += check_unet_batch(self.params, environment.max_unet_batch())
        problems += environment.refusals({**self.params.__dict__, "scheduler": derive.scheduler(self.params)})
        if has_errors(problems):
            return self.result("refused", "This StreamDiffusion cannot build these parameters.", problems=problems)

        if not self.options.force:
            ready = self.up_to_date(environment)
            if ready is not None:
                return ready
        lock = GpuLock(self.options.child.gpu)
        if not lock.acquire(
            what=f"{self.params.model} ({self.variant})",
            wait=self.options.wait_for_gpu,
            should_stop=self.cancel.is_set,
            on_wait=lambda holder: self.event(
                "waiting",
                f"GPU {self.options.child.gpu} is busy: {holder.get('what', 'another build')} "
                f"(process {holder.get('pid', '?')}, since {holder.get('since', '?')}). Waiting for it to finish.",
            ),
        ):
            if self.cancel.is_set():
                return self.result("cancelled", "Cancelled while waiting for the GPU.")
            holder = lock.holder()
            return self.result(
                "refused", f"GPU {self.options.child.gpu} is busy with {holder.get('what', 'another build')}."
            )
        try:
            return self.build_locked(environment)
        finally:
            lock.release()
            self.progress.close_file()

    def probe(self) -> Environment:
        self.event("stage", "Checking the build environment", "probe")
        environment = probe(self.options.child, refresh=self.options.refresh_probe)
        gpu = environment.gpu_name or "no GPU"
        self.event(
            "log",
            f"{gpu}, torch {environment.torch.get('version')}, TensorRT {environment.tensorrt_version}, "
            f"StreamDiffusion {environment.streamdiffusion.get('version') or ''} "
            f"at {environment.streamdiffusion.get('location')}",
        )
        return environment

    def up_to_date(self, environment: Environment) -> BuildResult | None:
        manifest = mf.read_manifest(self.engine_dir)
        record = (manifest.get("variants") or {}).get(self.variant)
        if not record or record.get("fingerprint") != self.fingerprint:
            return None
        if record.get("engine_key") != environment.engine_key():
            self.event(
                "log",
                f"The engines of {self.variant} were built on {record.get('environment', {}).get('gpu')} with "
                f"TensorRT {record.get('environment', {}).get('tensorrt')}: stale here, rebuilding.",
            )
            return None
        if record.get("stale"):
            self.event("log", f"Engines of {self.variant} were replaced by a later build: rebuilding.")
            return None
        engines = {engine.relative: engine for engine in mf.scan_engines(self.engine_dir)}
        for relative in record.get("engines", []):
            engine = engines.get(relative)
            if engine is None or mf.trusted_record(manifest, engine) is None:
                self.event("log", f"{relative} is missing or changed since it was built: rebuilding.")
                return None
        config_path = self.write_configs()
        manifest["config"] = config_path.name
        manifest["latest_variant"] = self.variant
        mf.write_manifest(self.engine_dir, manifest)
        return self.result(
            "up_to_date",
            f"Already built ({record.get('built_at')}); engines verified, nothing to do.",
            config_path=config_path,
            manifest_path=self.engine_dir / mf.MANIFEST_NAME,
            engines=[self.describe(engines[relative], reused=True) for relative in record.get("engines", [])],
        )

    def build_locked(self, environment: Environment) -> BuildResult:
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        logs = self.engine_dir / mf.LOGS_DIR
        logs.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.progress.open_file(logs / f"{stamp}-{self.variant}.log")
        restore_leftovers(self.engine_dir)
        remove_stale_temp_files(self.engine_dir)

        manifest = mf.read_manifest(self.engine_dir)
        engine_key = environment.engine_key()
        slots = mf.expected_slots(self.config, environment.features.get("safety_checker_engine", True) is not False)
        keys = {slot.id: mf.slot_key(slot, self.config) for slot in slots}
        before = {engine.relative: engine for engine in mf.scan_engines(self.engine_dir)}
        reusable = self.set_aside_foreign(before, slots, keys, engine_key, manifest, stamp)

        job = logs / f"{stamp}-{self.variant}.config.json"
        atomic_write_text(job, json.dumps(self.config))
        try:
            failure = self.run_child(job)
        finally:
            job.unlink(missing_ok=True)
        after = {engine.relative: engine for engine in mf.scan_engines(self.engine_dir)}
        fresh = {
            relative: engine
            for relative, engine in after.items()
            if relative not in before
            or (before[relative].mtime_ns, before[relative].size) != (engine.mtime_ns, engine.size)
        }
        # Complete engines a failed build left are still good engines: record them so a retry can reuse them.
        self.record_engines(manifest, fresh, slots, keys, engine_key)
        if failure is not None:
            self.put_back(superseded=set())
            mf.write_manifest(self.engine_dir, manifest)
            return failure

        used: dict[str, mf.EngineFile] = {}
        missing: list[str] = []
        for slot in slots:
            built = [engine for engine in fresh.values() if engine.matches(slot)]
            kept = [after[rel] for rel in reusable.get(slot.id, []) if rel in after]
            chosen = built or kept
            if not chosen:
                missing.append(slot.label)
            for engine in chosen:
                used[engine.relative] = engine
        if missing:
            self.put_back(superseded=set())
            mf.write_manifest(self.engine_dir, manifest)
            return self.result(
                "failed",
                f"StreamDiffusion finished but no {', '.join(missing)} engine was built in {self.engine_dir} — "
                "most often it ran out of GPU memory and fell back to PyTorch (see the log).",
                manifest_path=self.engine_dir / mf.MANIFEST_NAME,
            )
        superseded = self.put_back(superseded=set(fresh))
        return self.finish(manifest, environment, used, fresh, superseded)

    def set_aside_foreign(
        self,
        before: dict[str, mf.EngineFile],
        slots: list[mf.EngineSlot],
        keys: dict[str, str],
        engine_key: str,
        manifest: dict[str, Any],
        stamp: str,
    ) -> dict[str, list[str]]:
        """Move away every engine StreamDiffusion might wrongly reuse; return the ones safe to reuse."""
        reusable: dict[str, list[str]] = {}
        for engine in before.values():
            slot = next((slot for slot in slots if engine.matches(slot)), None)
            if slot is None:
                continue  # another ControlNet's engine or a safety checker that is off: not ours to touch
            record = mf.trusted_record(manifest, engine)
            if record and record.get("key") == keys[slot.id] and record.get("engine_key") == engine_key:
                reusable.setdefault(slot.id, []).append(engine.relative)
                self.event("log", f"Reusing {engine.relative}: built from the same parameters on this machine.")
                continue
            if record is None:
                why = "its origin is unknown (not built by this app, or changed since)"
            elif record.get("engine_key") != engine_key:
                why = "it was built on another GPU or TensorRT version"
            else:
                why = "it was built from other parameters that StreamDiffusion does not put in folder names"
            target = self.engine_dir / mf.ASIDE_DIR / stamp / engine.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(engine.path, target)
            self.aside.append((engine.path, target))
            self.event("log", f"Setting aside {engine.relative} and rebuilding it: {why}.")
        return reusable

    def run_child(self, job: Path) -> BuildResult | None:
        """Run child/build_engines.py; None when it exited 0 with a result, else the failed/cancelled result."""
        try:
            child = ChildProcess.start(self.options.child, "build_engines.py", [str(job)])
        except OSError as error:
            return self.result(
                "failed", f"Cannot start the build Python {self.options.child.interpreter()}: {error.strerror}."
            )
        got_result = False
        error_event: dict[str, Any] | None = None
        try:
            for line in child.lines():
                if self.cancel.is_set():
                    self.event("log", "Cancelling: stopping the build process and everything it started.")
                    child.stop()
                    return self.result("cancelled", "Build cancelled; earlier engines and config are untouched.")
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
                    got_result = True
                elif kind == "error":
                    error_event = line.event
            code = child.wait(timeout=30)
        finally:
            child.stop(grace=1.0)
        if code != 0 or not got_result:
            if error_event:
                detail = error_event.get("message") or ""
                reason = f"{error_event.get('type', 'Error')}: {detail}" if detail else str(error_event.get("type"))
            else:
                reason = f"The build process {describe_exit(code)}."
            return self.result("failed", reason)
        return None

    def record_engines(
        self,
        manifest: dict[str, Any],
        fresh: dict[str, mf.EngineFile],
        slots: list[mf.EngineSlot],
        keys: dict[str, str],
        engine_key: str,
    ) -> None:
        registry = manifest.setdefault("engines", {})
        for relative, engine in fresh.items():
            slot = next((slot for slot in slots if engine.matches(slot)), None)
            if slot is None:
                continue
            registry[relative] = {
                **mf.file_record(engine),
                "key": keys[slot.id],
                "engine_key": engine_key,
                "built_at": mf.now_iso(),
                "fingerprint": self.fingerprint,
            }

    def put_back(self, superseded: set[str]) -> set[str]:
        """Return set-aside engines to their place, except those a proven build replaced (then drop them)."""
        replaced: set[str] = set()
        for original, aside in self.aside:
            relative = original.relative_to(self.engine_dir).as_posix()
            if relative in superseded:
                aside.unlink(missing_ok=True)
                replaced.add(relative)
            else:
                original.unlink(missing_ok=True)  # an unproven new file at the old place
                original.parent.mkdir(parents=True, exist_ok=True)
                os.replace(aside, original)
        self.aside.clear()
        remove_empty_aside(self.engine_dir)
        return replaced

    def finish(
        self,
        manifest: dict[str, Any],
        environment: Environment,
        used: dict[str, mf.EngineFile],
        fresh: dict[str, mf.EngineFile],
        superseded: set[str],
    ) -> BuildResult:
        for name, record in (manifest.get("variants") or {}).items():
            if name != self.variant and superseded & set(record.get("engines", [])):
                record["stale"] = True
                self.event("log", f"Variant {name} shared an engine folder with this build; it needs a rebuild.")
        try:
            config_path = self.write_configs()
        except OSError as error:
            return self.result(
                "failed",
                f"The engines were built, but config.yaml could not be written: {error.strerror or error}. "
                "The earlier config.yaml is unchanged.",
            )
        built_at = mf.now_iso()
        record = {
            "fingerprint": self.fingerprint,
            "engine_key": environment.engine_key(),
            "environment": environment.summary(),
            "config": f"{mf.CONFIGS_DIR}/{self.variant}.yaml",
            "built_at": built_at,
            "params": asdict(self.params),
            "engines": sorted(used),
            "stages": dict(self.progress.stages),
            "duration": round(self.progress.elapsed(), 3),
            "log": self.progress.path.relative_to(self.engine_dir).as_posix() if self.progress.path else None,
            "outcome": "built",
        }
        manifest.update(
            {
                "format": 1,
                "model": self.params.model,
                "config": config_path.name,
                "latest_variant": self.variant,
                **{key: record[key] for key in ("fingerprint", "environment", "built_at", "stages", "outcome")},
            }
        )
        manifest.setdefault("variants", {})[self.variant] = record
        engines = [self.describe(engine, reused=engine.relative not in fresh) for engine in used.values()]
        manifest["files"] = engines
        try:
            mf.write_manifest(self.engine_dir, manifest)
        except OSError as error:
            self.event("log", f"build.json could not be written ({error.strerror}); the next build rebuilds.")
        self.event("stage", "Done", "done")
        return self.result(
            "built",
            f"Built {len(used)} engine(s) in {self.progress.elapsed():.1f} s.",
            config_path=config_path,
            manifest_path=self.engine_dir / mf.MANIFEST_NAME,
            engines=engines,
        )

    def describe(self, engine: mf.EngineFile, reused: bool) -> dict[str, Any]:
        return {
            "path": engine.relative,
            "kind": engine.kind,
            "size": engine.size,
            "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(engine.mtime_ns / 1e9)),
            "reused": reused,
        }

    def write_configs(self) -> Path:
        text = dump_yaml(self.config, config_header(self.params))
        atomic_write_text(self.engine_dir / mf.CONFIGS_DIR / f"{self.variant}.yaml", text)
        config_path = self.engine_dir / "config.yaml"
        atomic_write_text(config_path, text)
        return config_path


def remove_stale_temp_files(engine_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Temp files of atomic writes a killed app left (`.config.yaml.k3j2.tmp`): never read, so removed once old."""
    now = time.time()
    for folder in (engine_dir, engine_dir / mf.CONFIGS_DIR, engine_dir / mf.LOGS_DIR):
        for path in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > older_than:
                    path.unlink()


def restore_leftovers(engine_dir: Path) -> None:
    """Engines a killed app left aside go back where they were (unless something newer took the place)."""
    aside_root = engine_dir / mf.ASIDE_DIR
    if not aside_root.is_dir():
        return
    for stamp in aside_root.iterdir():
        for path in sorted(stamp.rglob("*")):
            if path.is_file():
                original = engine_dir / path.relative_to(stamp)
                if original.exists():
                    path.unlink()
                else:
                    original.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, original)
    remove_empty_aside(engine_dir)


def remove_empty_aside(engine_dir: Path) -> None:
    aside_root = engine_dir / mf.ASIDE_DIR
    if not aside_root.is_dir():
        return
    for folder in sorted(aside_root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if not any(aside_root.iterdir()):
        aside_root.rmdir()


def run_build(
    params: BakedParams,
    runtime: RuntimeDefaults,
    options: BuildOptions | None = None,
    on_event: Callable[[BuildEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    # Validated before anything else: nothing is probed, locked or written for parameters with errors, and
    # the config is only ever made from valid ones (the batch limit is checked once the probe says it).
    problems = validate(params, max_unet_batch=WIDE_MAX_BATCH)
    if has_errors(problems):
        return BuildResult("refused", "The parameters have errors; nothing was built.", problems=problems)
    return Build(params, runtime, options or BuildOptions(), on_event, cancel or threading.Event()).run(problems)
