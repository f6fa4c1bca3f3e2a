"""One build, start to proof: probe, lock the model and the GPU, guard against stale engines, run the child, stream
its progress, prove the engines exist, and only then write config.yaml and build.json.

Used by the CLI directly and by the UI through jobs/board.py. Nothing here imports StreamDiffusion.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdprep import derive, timing_cache
from sdprep.config import RuntimeDefaults, make_config
from sdprep.config_write import config_to_write, write_configs
from sdprep.engine_files import EngineFile, EngineSlot, expected_slots, fingerprint, slot_key, variant_id
from sdprep.estimate import (
    Estimate,
    disk_problem,
    estimate,
    free_space,
    load_history,
    past_engine_json,
    shape_of,
    time_words,
    vram_problem,
)
from sdprep.fork_stats import profile_problems, read_stats
from sdprep.fork_stats import seconds as stats_seconds
from sdprep.jobs.aside import AsideGuard, describe, remove_stale_temp_files, restore_leftovers
from sdprep.jobs.environment import WIDE_MAX_BATCH, Environment, ProbeError, probe
from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent, engine_message
from sdprep.jobs.rehearsal import Rehearsal, rehearse_by_default
from sdprep.locks import gpu_lock, model_lock
from sdprep.manifest import EngineRecord, Manifest, ManifestUnreadable, VariantRecord, now_iso, trusted_record
from sdprep.messages import Duration, Message, Problem, Size, has_errors, msg, os_reason
from sdprep.model_folder import (
    CONFIGS_DIR,
    LOGS_DIR,
    MANIFEST_NAME,
    by_relative,
    outside,
    read_manifest,
    read_manifest_or_empty,
    set_aside_unreadable,
    write_manifest,
)
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text
from sdprep.profiles import profile_of
from sdprep.runtime import Runtime
from sdprep.validate import check_unet_batch, validate

# The same as --allow-low-disk, for every build of a process (scripts; the tests, whose engines are a few bytes while
# the estimate is for real ones).
ALLOW_LOW_DISK_ENV = "SDPREP_ALLOW_LOW_DISK"


@dataclass(frozen=True)
class BuildOptions:
    child: ChildSpec = field(default_factory=ChildSpec)
    force: bool = False
    wait_for_gpu: bool = True  # also: wait for the model folder when another build of it runs
    refresh_probe: bool = False
    # Load the engines and time frames after a proven build; run by jobs/pipeline.py, not here.
    check: bool = False
    # Build although the engines folder has less free space than the estimate asks (--allow-low-disk). Not --force:
    # that rebuilds up-to-date engines, a different risk, and a forced rebuild must keep the disk check.
    allow_low_disk: bool = False
    # The runtime values of the config being rebuilt or loaded (--from-config, Load config): they win over those of
    # the model folder's config.yaml (sdprep/runtime.py says the order).
    runtime_from: Runtime | None = None
    # Rehearse these parameters with a tiny model first (jobs/rehearsal.py): seconds, remembered once passed. None:
    # as the process says when the build runs ($SDPREP_REHEARSE, on unless "0").
    rehearse: bool | None = None
    # Only the rehearsal, anew, holding the GPU: the page's Rehearse button (`doctor --rehearse` on the command line).
    rehearse_only: bool = False


@dataclass
class BuildResult(JobResult):
    config_path: Path | None = None
    manifest_path: Path | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)
    variant: str | None = None


class Build(Job[BuildResult]):
    """The state of one build; `run()` does it, step by step, each step proving one thing."""

    result_type = BuildResult
    kind = "build"

    def __init__(
        self,
        params: BakedParams,
        runtime: RuntimeDefaults,
        options: BuildOptions,
        on_event: Callable[[JobEvent], None],
        cancel: threading.Event,
    ) -> None:
        super().__init__(options.child, on_event, cancel)
        self.params = params
        self.options = options
        # What the child builds from and the engines' identity: the baked part, with RUNTIME_DEFAULTS. The config
        # written after the build has the same baked part and the runtime values config_write.py chooses.
        self.config = make_config(params, runtime)  # valid params only: run_build() validates first
        self.runtime_defaults = runtime
        self.fingerprint = fingerprint(self.config)
        self.engine_dir = derive.engine_dir(params)
        self.variant = variant_id(derive.variant_name(params), self.config)
        self.guard = AsideGuard(self.engine_dir, time.strftime("%Y%m%d-%H%M%S"), self.say)
        self.estimate: Estimate | None = None  # what this build promises (sdprep/estimate/)
        self.space_checked = False
        self.warnings: list[Problem] = []  # found during the build (free VRAM, what the fork reports)
        self.child_started: tuple[float, float] | None = None  # (elapsed, wall clock) when StreamDiffusion started
        self.timing_cache: timing_cache.Seeded | None = None  # the TensorRT timing cache this build started with

    def result(self, outcome: Any, reason: Any, **extra: Any) -> BuildResult:
        extra.setdefault("problems", list(self.warnings))
        return super().result(outcome, reason, variant=self.variant, **extra)

    def run(self, problems: list[Problem]) -> BuildResult:
        """Build parameters that passed validate() (its warnings in `problems`)."""
        try:
            return self._run(problems)
        except OSError as problem:
            # A read-only or full engines folder is a reason for people, not an internal error.
            try:
                self.guard.put_back(superseded=set())
            except OSError:
                pass
            where = problem.filename or self.engine_dir
            return self.result("failed", msg("build_cannot_write", path=where, reason=os_reason(problem)))
        finally:
            self.progress.close_file()

    def _run(self, problems: list[Problem]) -> BuildResult:
        root = Path(self.params.engines_dir)
        if outside(root, self.engine_dir):  # a model folder that links out of the engines folder: never written
            return self.result("refused", msg("model_folder_outside", folder=self.engine_dir, root=root))
        # Before anything runs or is written: a build that cannot fit on the disk is refused now, unless it may be
        # up to date (that needs no space; the probe decides, and the space is checked after it).
        if self.options.force or not self.recorded():
            refused = self.check_space(problems, environment=None)
            if refused is not None:
                return refused
        self.progress.stage("probe")
        try:
            environment = probe(self.options.child, refresh=self.options.refresh_probe)
        except ProbeError as problem:
            return self.result("unavailable", problem.message)
        self.progress.event("log", environment.machine_line())
        missing = environment.missing()
        if missing and not self.options.rehearse_only:  # a rehearsal says itself how far this machine gets
            reason = missing[0] if environment.no_nvidia else msg("env_cannot_build", missing=missing)
            return self.result("unavailable", reason)
        problems += check_unet_batch(self.params, environment.max_unet_batch())
        problems += environment.refusals(self.params)
        if has_errors(problems):
            return self.result("refused", msg("build_refused_fork"), problems=problems)
        if self.options.rehearse_only:
            return self.rehearse_only(environment, problems)
        model = model_lock(self.engine_dir)
        ended = self.acquire(
            model, f"build of {self.params.model} ({self.variant})", self.options.wait_for_gpu, "model_waiting"
        )
        if ended is not None:
            return ended
        try:
            return self._run_model_locked(environment)
        finally:
            model.release()

    def _run_model_locked(self, environment: Environment) -> BuildResult:
        manifest = self.manifest()
        if not self.options.force:
            ready = self.up_to_date(environment, manifest)
            if ready is not None:
                return ready
        if not self.space_checked:
            refused = self.check_space([], environment)
            if refused is not None:
                return refused
        self.fit_gpu(environment)
        return self.holding_gpu(
            f"{self.params.model} ({self.variant})", lambda: self.build_locked(environment, manifest)
        )

    def holding_gpu(self, what: str, work: Callable[[], BuildResult]) -> BuildResult:
        """`work` while this build holds its GPU (waiting for it, or refused, as the options say)."""
        gpu = gpu_lock(self.options.child.gpu)
        ended = self.acquire(gpu, what, self.options.wait_for_gpu, "gpu_waiting", gpu=self.options.child.gpu)
        if ended is not None:
            return ended
        try:
            return work()
        finally:
            gpu.release()

    def recorded(self) -> bool:
        """Whether build.json has a build of exactly these parameters (so this one may be up to date)."""
        record = read_manifest_or_empty(self.engine_dir).variants.get(self.variant)
        return record is not None and record.fingerprint == self.fingerprint

    def make_estimate(self, environment: Environment | None) -> Estimate:
        """What this build will take, from the table and this machine's earlier builds (times: on its GPU)."""
        safety = environment is None or environment.features.get("safety_checker_engine", True) is not False
        root = Path(self.params.engines_dir)
        gpu = environment.gpu_name if environment else None
        warm = timing_cache.expect_warm(environment, root)  # timed from builds of the same cache state
        self.estimate = estimate(shape_of(self.params, safety), load_history(root), gpu, warm)
        return self.estimate

    def check_space(self, problems: list[Problem], environment: Environment | None) -> BuildResult | None:
        """The refusal when the engines folder has less free space than the estimate asks (with its margin)."""
        self.space_checked = True
        promised = self.make_estimate(environment)
        free = free_space(self.engine_dir)
        problem = disk_problem(promised, free, Path(self.params.engines_dir))
        if problem is None:
            return None
        if self.options.allow_low_disk or os.environ.get(ALLOW_LOW_DISK_ENV) == "1":
            self.say("disk_low_allowed", free=Size(free or 0), need=Size(promised.disk_needed))
            return None
        return self.result("refused", msg("build_refused_disk"), problems=[*problems, problem])

    def fit_gpu(self, environment: Environment) -> None:
        """The estimate for this GPU; a warning (kept with the result, said in the log) when its free memory, as
        the probe saw it, is below what building needs."""
        promised = self.make_estimate(environment)
        free = environment.torch.get("vram_free")
        problem = vram_problem(promised, free if isinstance(free, int) else None, self.params.fp8)
        if problem is not None:
            self.warnings.append(problem)
            self.progress.event("log", problem.message)

    def manifest(self) -> Manifest:
        """This model's build.json; a broken one is kept aside under another name and a new one begun."""
        try:
            return read_manifest(self.engine_dir)
        except ManifestUnreadable as problem:
            kept = set_aside_unreadable(self.engine_dir)
            self.say("manifest_set_aside", reason=problem.reason, kept=kept)
            return Manifest()

    def up_to_date(self, environment: Environment, manifest: Manifest) -> BuildResult | None:
        record = manifest.variants.get(self.variant)
        if record is None or record.fingerprint != self.fingerprint:
            return None
        if record.engine_key != environment.engine_key():
            self.say(
                "rebuild_other_machine",
                variant=self.variant,
                gpu=record.environment.get("gpu"),
                tensorrt=record.environment.get("tensorrt"),
            )
            return None
        if record.stale:
            self.say("rebuild_stale", variant=self.variant)
            return None
        engines = by_relative(self.engine_dir)
        for relative in record.engines:
            engine = engines.get(relative)
            if engine is None or trusted_record(manifest, engine) is None:
                self.say("rebuild_changed", path=relative)
                return None
        config_path = self.write_configs()
        manifest.config, manifest.latest_variant, manifest.model = config_path.name, self.variant, self.params.model
        write_manifest(self.engine_dir, manifest)
        return self.result(
            "up_to_date",
            msg("build_up_to_date", built_at=record.built_at),
            config_path=config_path,
            manifest_path=self.engine_dir / MANIFEST_NAME,
            engines=[describe(engines[relative], reused=True) for relative in record.engines],
        )

    def build_locked(self, environment: Environment, manifest: Manifest) -> BuildResult:
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        logs = self.engine_dir / LOGS_DIR
        logs.mkdir(exist_ok=True)
        self.progress.open_file(logs / f"{self.guard.stamp}-{self.variant}.log")
        if rehearse_by_default() if self.options.rehearse is None else self.options.rehearse:
            ended = self.rehearse(environment)
            if ended is not None:
                return ended
        restore_leftovers(self.engine_dir)
        remove_stale_temp_files(self.engine_dir)

        engine_key = environment.engine_key()
        slots = expected_slots(self.config, environment.features.get("safety_checker_engine", True) is not False)
        keys = {slot.id: slot_key(slot, self.config) for slot in slots}
        before = by_relative(self.engine_dir)
        reusable = self.guard.set_aside_foreign(before, slots, keys, engine_key, manifest, force=self.options.force)

        job = logs / f"{self.guard.stamp}-{self.variant}.config.json"
        atomic_write_text(job, json.dumps(self.config))
        # The shared timing cache of this GPU model into the places the fork looks (sdprep/timing_cache.py).
        root, origins = Path(self.params.engines_dir), manifest.timing_caches
        self.timing_cache = timing_cache.seed(environment, root, self.engine_dir, self.params.model, origins, self.say)
        self.child_started = (self.progress.elapsed(), time.time())
        try:
            try:
                run = self.run_child("build_engines.py", [str(job)], on_record=self.on_child_record)
            except OSError as problem:
                return self.result(
                    "failed", msg("child_cannot_start", python=self.child.interpreter(), reason=os_reason(problem))
                )
        finally:
            job.unlink(missing_ok=True)
        timing_cache.note_built(self.timing_cache, manifest.timing_caches)
        after = by_relative(self.engine_dir)
        fresh = {rel: engine for rel, engine in after.items() if rel not in before or before[rel].stamp != engine.stamp}
        # Complete engines a failed build left are still good engines: record them so a retry can reuse them.
        self.record_engines(manifest, fresh, slots, keys, engine_key)
        if run.cancelled or not run.ok:
            self.guard.put_back(superseded=set())
            write_manifest(self.engine_dir, manifest)
            if run.cancelled:
                return self.result("cancelled", msg("build_cancelled"))
            return self.result("failed", self.child_failure(run, "build_exit"))

        used: dict[str, EngineFile] = {}
        missing = []
        for slot in slots:
            chosen = [e for e in fresh.values() if e.matches(slot)] or [
                after[r] for r in reusable.get(slot.id, []) if r in after
            ]
            if not chosen:
                missing.append(msg(f"engine_{slot.kind}", name=slot.controlnet or ""))
            used.update({engine.relative: engine for engine in chosen})
        if missing:
            self.guard.put_back(superseded=set())
            write_manifest(self.engine_dir, manifest)
            return self.result(
                "failed",
                msg("build_no_engine", engines=missing, folder=self.engine_dir),
                manifest_path=self.engine_dir / MANIFEST_NAME,
            )
        superseded = self.guard.put_back(superseded=set(fresh))
        timing_cache.keep(self.timing_cache, self.say)  # a proven build only: its grown cache becomes the shared one
        return self.finish(manifest, environment, used, fresh, superseded, slots)

    def rehearse_only(self, environment: Environment, problems: list[Problem]) -> BuildResult:
        """The rehearsal alone, run anew (a remembered pass is what the button is pressed to doubt), on the GPU."""

        def rehearse_anew() -> BuildResult:
            done = self.rehearsal(environment, use_cache=False).run()
            return self.result(done.outcome, done.reason, problems=[*problems, *done.problems])

        return self.holding_gpu(f"rehearsal of {self.params.model} ({self.variant})", rehearse_anew)

    def rehearsal(self, environment: Environment, use_cache: bool = True) -> Rehearsal:
        """The rehearsal of this build's parameters, in this build's log and clock."""
        rehearsal = Rehearsal(
            self.params, self.config, self.child, self.progress.on_event, self.cancel, environment, use_cache=use_cache
        )
        rehearsal.progress = self.progress
        return rehearsal

    def rehearse(self, environment: Environment) -> BuildResult | None:
        """The rehearsal as this build's first stage, in its log; None when it passed (or passed before)."""
        done = self.rehearsal(environment).run()
        if done.ok:
            self.progress.event("log", done.reason)
            return None
        if done.failed_stage == "tiny_model":
            # Making the tiny model is the rehearsal's own machinery, not this build's path: said, not a refusal.
            self.say("rehearsal_not_made", reason=done.reason)
            return None
        if done.outcome == "cancelled":
            return self.result("cancelled", msg("build_cancelled"))
        return self.result(done.outcome, msg("build_rehearsal_failed", reason=done.reason))

    def on_child_record(self, event: dict[str, Any]) -> None:
        if event.get("event") == "engine_written" and isinstance(event.get("bytes"), int):
            stage = str(event.get("stage") or "engine:unet")
            self.say("engine_written", engine=engine_message(stage), file=event.get("file"), size=Size(event["bytes"]))

    def record_engines(
        self, manifest: Manifest, fresh: dict[str, EngineFile], slots: list[Any], keys: dict[str, str], engine_key: str
    ) -> None:
        for relative, engine in fresh.items():
            slot = next((slot for slot in slots if engine.matches(slot)), None)
            if slot is not None:
                manifest.engines[relative] = EngineRecord(
                    kind=engine.kind,
                    size=engine.size,
                    mtime_ns=engine.mtime_ns,
                    key=keys[slot.id],
                    engine_key=engine_key,
                    built_at=now_iso(),
                    fingerprint=self.fingerprint,
                )

    def finish(
        self,
        manifest: Manifest,
        environment: Environment,
        used: dict[str, EngineFile],
        fresh: dict[str, EngineFile],
        superseded: set[str],
        slots: list[EngineSlot],
    ) -> BuildResult:
        for name, other in manifest.variants.items():
            if name != self.variant and superseded & set(other.engines):
                other.stale = True
                self.say("variant_stale", variant=name)
        try:
            config_path = self.write_configs()
        except OSError as problem:
            return self.result("failed", msg("build_config_unwritten", reason=os_reason(problem)))
        self.progress.stage("done")
        self.progress.close_stage()
        actual = self.measure(fresh, slots)
        manifest.variants[self.variant] = VariantRecord(
            fingerprint=self.fingerprint,
            engine_key=environment.engine_key(),
            environment=environment.summary(),
            config=f"{CONFIGS_DIR}/{self.variant}.yaml",
            built_at=now_iso(),
            params=asdict(self.params),
            engines=sorted(used),
            stages=dict(self.progress.stages),
            duration=round(self.progress.elapsed(), 3),
            log=self.progress.path.relative_to(self.engine_dir).as_posix() if self.progress.path else None,
            profile=profile_of(self.params),
            estimate=self.estimate.as_json() if self.estimate else None,
            actual=actual,
            timing_cache=self.timing_cache.use if self.timing_cache else None,
        )
        manifest.model, manifest.config, manifest.latest_variant = self.params.model, config_path.name, self.variant
        try:
            write_manifest(self.engine_dir, manifest)
        except OSError as problem:
            self.say("manifest_unwritten", reason=os_reason(problem))
        engines = [describe(engine, reused=engine.relative not in fresh) for engine in used.values()]
        return self.result(
            "built",
            self.built_message(len(used), actual["seconds"]),
            config_path=config_path,
            manifest_path=self.engine_dir / MANIFEST_NAME,
            engines=engines,
        )

    def measure(self, fresh: dict[str, EngineFile], slots: list[EngineSlot]) -> dict[str, Any]:
        """What the build took, for build.json beside its estimate: its seconds, and each engine it wrote with its
        size and the seconds the fork's build_stats.json reports. Where the fork reports it, whether the profile was
        honoured becomes a warning."""
        started, since = self.child_started or (0.0, None)
        shape = shape_of(self.params)
        engines: list[dict[str, Any]] = []
        built: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for relative, engine in sorted(fresh.items()):
            slot = next((slot for slot in slots if engine.matches(slot)), None)
            if slot is None:
                continue
            stats = read_stats(engine.path, since)
            built[relative] = (engine.kind, stats)
            engines.append(
                past_engine_json(slot.id, engine.kind, slot.controlnet, shape, engine.size, stats_seconds(stats))
            )
        if built and all(stats is None for _, stats in built.values()) and profile_of(self.params) != "flexible":
            self.say("stats_missing")
        for problem in profile_problems(self.params, built):
            self.warnings.append(problem)
            self.progress.event("log", problem.message)
        seconds = round(self.progress.elapsed() - started, 3)
        return {"seconds": seconds, "bytes": sum(item["bytes"] for item in engines), "engines": engines}

    def built_message(self, count: int, seconds: float) -> Message:
        """ "Built 3 engines in 6 min 12 s; estimated 5-7 min.", and what the fork's stats warn about."""
        took = Duration(seconds)
        if self.estimate is None:
            built = msg("build_built", count=count, took=took)
        else:
            built = msg("build_built_estimated", count=count, took=took, estimated=time_words(self.estimate.time))
        reported = [problem.message for problem in self.warnings if problem.message.code != "vram_low"]
        return msg("build_built_warned", built=built, warnings=reported) if reported else built

    def write_configs(self) -> Path:
        """config.yaml and configs/<variant>.yaml by the one rule (config_write.py); says what it noted and kept."""
        written = write_configs(
            config_to_write(self.params, self.runtime_defaults, self.options.runtime_from), self.variant
        )
        for note in written.notes:
            self.progress.event("log", note)
        if not written.wrote_config:
            self.say("config_kept", path=written.config_path)
        return written.config_path


def run_build(
    params: BakedParams,
    runtime: RuntimeDefaults,
    options: BuildOptions | None = None,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    # Validated before anything else: nothing is probed, locked or written for parameters with errors, and the
    # config is only ever made from valid ones (the batch limit is checked once the probe says it).
    problems = validate(params, max_unet_batch=WIDE_MAX_BATCH)
    if has_errors(problems):
        return BuildResult("refused", msg("build_params_invalid"), problems=problems)
    return Build(params, runtime, options or BuildOptions(), on_event, cancel or threading.Event()).run(problems)
