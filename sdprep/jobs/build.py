"""One build, start to proof, as five stages in order (each a module of its own, testable alone; jobs/build_stage.py
lists them): preflight (the form against this machine, the disk), admission (the model's lock, the GPU's), engine reuse
(up to date? engines StreamDiffusion would wrongly reuse set aside), the child run (the rehearsal, the build child,
its progress streamed) and proof and record (the engines exist; only then config.yaml and build.json).

This module holds the job's state (its log, its clock, its warnings, the set-aside guard) and the order; the stages
say what each one adds. Used by the CLI directly and by the UI through jobs/board.py. Nothing here imports
StreamDiffusion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import timing_cache
from sdprep.config import RuntimeDefaults
from sdprep.estimate import Estimate
from sdprep.jobs.aside import AsideGuard
from sdprep.jobs.build_admission import holding_gpu, holding_model
from sdprep.jobs.build_child import ChildEnded, open_log, rehearsal, rehearse_first, run_build_child
from sdprep.jobs.build_preflight import (
    check_space,
    fit_gpu,
    fit_machine,
    outside_engines,
    probe_machine,
    validate_request,
)
from sdprep.jobs.build_record import (
    fresh_engines,
    prove,
    record_built,
    record_engines,
    record_up_to_date,
    unproven,
)
from sdprep.jobs.build_reuse import FolderBefore, read_records, recorded, set_aside_foreign, up_to_date
from sdprep.jobs.build_stage import BuildPlan, Ended
from sdprep.jobs.environment import Environment
from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.manifest import Manifest
from sdprep.messages import Problem, has_errors, msg, os_reason
from sdprep.model_folder import by_relative, write_manifest
from sdprep.params import BakedParams
from sdprep.runtime import Runtime


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
    """The state of one build; `run()` runs its stages, each proving one thing."""

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
        self.plan = BuildPlan.of(params, runtime)
        self.options = options
        self.guard = AsideGuard(self.plan.engine_dir, time.strftime("%Y%m%d-%H%M%S"), self.say)
        self.estimate: Estimate | None = None  # what this build promises (sdprep/estimate/)
        self.space_checked = False
        self.warnings: list[Problem] = []  # found during the build (free VRAM, what the fork reports)
        self.timing_cache: timing_cache.Seeded | None = None  # the TensorRT timing cache this build started with

    def result(self, outcome: Any, reason: Any, **extra: Any) -> BuildResult:
        extra.setdefault("problems", list(self.warnings))
        return super().result(outcome, reason, variant=self.plan.variant, **extra)

    def end(self, ended: Ended) -> BuildResult:
        """The result of a stage's end of the build."""
        extra: dict[str, Any] = {} if ended.problems is None else {"problems": ended.problems}
        return self.result(
            ended.outcome,
            ended.reason,
            config_path=ended.config_path,
            manifest_path=ended.manifest_path,
            engines=ended.engines,
            **extra,
        )

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
            where = problem.filename or self.plan.engine_dir
            return self.result("failed", msg("build_cannot_write", path=where, reason=os_reason(problem)))
        finally:
            self.progress.close_file()

    # --- preflight (jobs/build_preflight.py), then admission's model lock ---------------------------------------

    def _run(self, problems: list[Problem]) -> BuildResult:
        outside = outside_engines(self.plan)
        if outside is not None:
            return self.end(outside)
        # Before anything runs or is written: a build that cannot fit on the disk is refused now, unless it may be
        # up to date (that needs no space; the probe decides, and the space is checked after it).
        if self.options.force or not recorded(self.plan):
            refused = self.check_space(problems, environment=None)
            if refused is not None:
                return refused
        probed = probe_machine(
            self.options.child, self.options.refresh_probe, self.options.rehearse_only, self.progress
        )
        if isinstance(probed, Ended):
            return self.end(probed)
        environment = probed
        fit = fit_machine(self.plan.params, environment, problems)
        if fit.refusal is not None:
            return self.end(fit.refusal)
        if self.options.rehearse_only:
            return self.rehearse_only(environment, fit.problems)
        return holding_model(self, self.plan, self.options.wait_for_gpu, lambda: self._run_model_locked(environment))

    def check_space(self, problems: list[Problem], environment: Environment | None) -> BuildResult | None:
        """The refusal when the engines folder has less free space than the estimate asks (with its margin)."""
        self.space_checked = True
        checked = check_space(self.plan, problems, environment, self.options.allow_low_disk, self.progress)
        self.estimate = checked.estimate
        return None if checked.refusal is None else self.end(checked.refusal)

    # --- engine reuse (jobs/build_reuse.py), the rest of preflight, then admission's GPU lock -------------------

    def _run_model_locked(self, environment: Environment) -> BuildResult:
        manifest = read_records(self.plan, self.progress)
        if not self.options.force:
            ready = up_to_date(self.plan, environment, manifest, self.progress)
            if ready is not None:
                return self.end(record_up_to_date(self.plan, manifest, ready, self.options.runtime_from, self.progress))
        if not self.space_checked:
            refused = self.check_space([], environment)
            if refused is not None:
                return refused
        gpu = fit_gpu(self.plan.params, environment, self.progress)
        self.estimate = gpu.estimate
        if gpu.warning is not None:
            self.warnings.append(gpu.warning)
        return holding_gpu(
            self,
            self.options.child.gpu,
            self.plan.name,
            self.options.wait_for_gpu,
            lambda: self.build_locked(environment, manifest),
        )

    # --- the child run (jobs/build_child.py), then proof and record (jobs/build_record.py) ----------------------

    def build_locked(self, environment: Environment, manifest: Manifest) -> BuildResult:
        ran = self.child_run(environment, manifest)
        if isinstance(ran, Ended):
            return self.end(ran)
        child, folder = ran
        return self.prove_and_record(environment, manifest, child, folder)

    def child_run(self, environment: Environment, manifest: Manifest) -> tuple[ChildEnded, FolderBefore] | Ended:
        """The build's log opened, the rehearsal, the folder made safe for the child, and the child."""
        logs = open_log(self.plan, self.guard.stamp, self.progress)
        rehearsed = rehearse_first(self, self.plan, environment, self.options.rehearse)
        if rehearsed is not None:
            return rehearsed
        folder = set_aside_foreign(self.plan, environment, manifest, self.guard, self.options.force)
        # Before the child runs: steps that prepare what it reads go here (the set-aside guard above is one). The
        # shared timing cache of this GPU model goes where the fork looks (sdprep/timing_cache.py).
        self.timing_cache = timing_cache.seed(
            environment,
            self.plan.engines_root,
            self.plan.engine_dir,
            self.plan.params.model,
            manifest.timing_caches,
            self.say,
        )
        child = run_build_child(self, self.plan, logs, self.guard.stamp)
        # After it ended, whatever its end: the caches it saved are this GPU model's (the fork saves after each engine).
        timing_cache.note_built(self.timing_cache, manifest.timing_caches)
        if isinstance(child, Ended):
            return child
        return child, folder

    def prove_and_record(
        self, environment: Environment, manifest: Manifest, child: ChildEnded, folder: FolderBefore
    ) -> BuildResult:
        """The engines the child wrote recorded (a failed child's too: a retry reuses complete engines), each slot's
        engine proven, and only then the configs and the build's record; set-aside engines put back unless
        replaced."""
        after = by_relative(self.plan.engine_dir)
        fresh = fresh_engines(folder.before, after)
        # Complete engines a failed build left are still good engines: record them so a retry can reuse them.
        record_engines(manifest, fresh, folder, self.plan.fingerprint)
        if child.run.cancelled or not child.run.ok:
            self.guard.put_back(superseded=set())
            write_manifest(self.plan.engine_dir, manifest)
            if child.run.cancelled:
                return self.result("cancelled", msg("build_cancelled"))
            return self.result("failed", self.child_failure(child.run, "build_exit"))
        proof = prove(folder, fresh, after)
        if proof.missing:
            self.guard.put_back(superseded=set())
            write_manifest(self.plan.engine_dir, manifest)
            return self.end(unproven(self.plan, proof))
        superseded = self.guard.put_back(superseded=set(fresh))
        timing_cache.keep(self.timing_cache, self.say)  # a proven build only: its grown cache becomes the shared one
        recorded_build = record_built(
            self.plan,
            manifest,
            environment,
            proof,
            fresh,
            superseded,
            folder.slots,
            child.started,
            self.estimate,
            self.options.runtime_from,
            self.warnings,
            self.progress,
            self.timing_cache.use if self.timing_cache else None,
        )
        return self.end(recorded_build)

    # --- the rehearsal alone (the page's Rehearse button, `doctor --rehearse`) ----------------------------------

    def rehearse_only(self, environment: Environment, problems: list[Problem]) -> BuildResult:
        """The rehearsal alone, run anew (a remembered pass is what the button is pressed to doubt), on the GPU."""

        def rehearse_anew() -> BuildResult:
            done = rehearsal(self, self.plan, environment, use_cache=False).run()
            return self.result(done.outcome, done.reason, problems=[*problems, *done.problems])

        what = f"rehearsal of {self.plan.name}"
        return holding_gpu(self, self.options.child.gpu, what, self.options.wait_for_gpu, rehearse_anew)


def run_build(
    params: BakedParams,
    runtime: RuntimeDefaults,
    options: BuildOptions | None = None,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    # Validated before anything else (jobs/build_preflight.py says what this adds to the front end's validation and
    # what the probe adds to it): nothing is probed, locked or written for parameters with errors, and the config is
    # only ever made from valid ones.
    problems = validate_request(params)
    if has_errors(problems):
        return BuildResult("refused", msg("build_params_invalid"), problems=problems)
    return Build(params, runtime, options or BuildOptions(), on_event, cancel or threading.Event()).run(problems)
