"""Preflight: what a build checks before it holds a lock or writes a file; the GPU's free memory, and the disk of a
build that may be up to date, once engine reuse has found that it is not (jobs/build.py says the order).

The form is validated three times on the way to the child, each time adding what the one before could not know:

1. The front end, as the form changes (ui/components/preview.check; cli/commands.build): validate() with the batch
   limit of the last probe the page saw, the Hub's answer about the model id, the choices that fork refuses. For
   people: each problem beside its field, Build disabled. It may be stale (the machine changed since) or skipped
   (run_build called by a script, the API, the tests).
2. `validate_request`, in run_build before anything else: validate() again in the core, which trusts no front end,
   with the widest UNet batch any fork takes (the probe has not said yet which one this is). Nothing is probed,
   locked or written for parameters with errors, and the plan (the config, the engines' identity) is only ever made
   from valid ones. No Hub and no probe: nothing waits.
3. `fit_machine`, after this build's own probe: what only the probed build Python knows, fresh (not the page's
   remembered probe): the UNet batch this fork's engines take, and what its features refuse.

(The rehearsal validates once more: it is a job of its own too, `doctor --rehearse`; jobs/rehearsal.py.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdprep import timing_cache
from sdprep.estimate import Estimate, disk_problem, estimate, free_space, load_history, shape_of, vram_problem
from sdprep.jobs.build_stage import BuildPlan, Ended, say
from sdprep.jobs.environment import WIDE_MAX_BATCH, Environment, ProbeError, probe
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import Progress
from sdprep.messages import Problem, Size, has_errors, msg
from sdprep.model_folder import outside
from sdprep.params import BakedParams
from sdprep.validate import check_unet_batch, validate

# The same as --allow-low-disk, for every build of a process (scripts; the tests, whose engines are a few bytes while
# the estimate is for real ones).
ALLOW_LOW_DISK_ENV = "SDPREP_ALLOW_LOW_DISK"


@dataclass(frozen=True)
class SpaceCheck:
    """What the build was promised to take, and the refusal when the disk cannot hold it."""

    estimate: Estimate
    refusal: Ended | None


@dataclass(frozen=True)
class MachineFit:
    """The form's problems with this machine's added (warnings the build goes ahead with), and the refusal when one is
    an error."""

    problems: list[Problem]
    refusal: Ended | None


@dataclass(frozen=True)
class GpuFit:
    """The estimate for the probed GPU, and the warning when its free memory is below what building needs."""

    estimate: Estimate
    warning: Problem | None


def validate_request(params: BakedParams) -> list[Problem]:
    """The second validation (see above): the core's own, before anything runs."""
    return validate(params, max_unet_batch=WIDE_MAX_BATCH)


def outside_engines(plan: BuildPlan) -> Ended | None:
    """A model folder that links out of the engines folder is never written (as Save refuses it)."""
    if outside(plan.engines_root, plan.engine_dir):
        return Ended("refused", msg("model_folder_outside", folder=plan.engine_dir, root=plan.engines_root))
    return None


def make_estimate(params: BakedParams, environment: Environment | None) -> Estimate:
    """What this build will take, from the table and this machine's earlier builds (times: on its GPU)."""
    safety = environment is None or environment.features.get("safety_checker_engine", True) is not False
    root = Path(params.engines_dir)
    gpu = environment.gpu_name if environment else None
    warm = timing_cache.expect_warm(environment, root)  # timed from builds of the same cache state
    return estimate(shape_of(params, safety), load_history(root), gpu, warm)


def check_space(
    plan: BuildPlan,
    problems: list[Problem],
    environment: Environment | None,
    allow_low_disk: bool,
    progress: Progress,
) -> SpaceCheck:
    """The refusal when the engines folder has less free space than the estimate asks (with its margin); allowed
    (and said) with --allow-low-disk or $SDPREP_ALLOW_LOW_DISK=1."""
    promised = make_estimate(plan.params, environment)
    free = free_space(plan.engine_dir)
    problem = disk_problem(promised, free, plan.engines_root)
    if problem is None:
        return SpaceCheck(promised, None)
    if allow_low_disk or os.environ.get(ALLOW_LOW_DISK_ENV) == "1":
        say(progress, "disk_low_allowed", free=Size(free or 0), need=Size(promised.disk_needed))
        return SpaceCheck(promised, None)
    return SpaceCheck(promised, Ended("refused", msg("build_refused_disk"), problems=[*problems, problem]))


def probe_machine(child: ChildSpec, refresh: bool, rehearse_only: bool, progress: Progress) -> Environment | Ended:
    """The build Python, probed (cached unless `refresh`), and whether it can build at all. A rehearsal alone goes on
    where it cannot: it says itself how far this machine gets."""
    progress.stage("probe")
    try:
        environment = probe(child, refresh=refresh)
    except ProbeError as problem:
        return Ended("unavailable", problem.message)
    progress.event("log", environment.machine_line())
    missing = environment.missing()
    if missing and not rehearse_only:
        reason = missing[0] if environment.no_nvidia else msg("env_cannot_build", missing=missing)
        return Ended("unavailable", reason)
    return environment


def fit_machine(params: BakedParams, environment: Environment, problems: list[Problem]) -> MachineFit:
    """The third validation (see above): the probed fork's UNet batch limit and what its features refuse."""
    found = [*problems, *check_unet_batch(params, environment.max_unet_batch()), *environment.refusals(params)]
    if has_errors(found):
        return MachineFit(found, Ended("refused", msg("build_refused_fork"), problems=found))
    return MachineFit(found, None)


def fit_gpu(params: BakedParams, environment: Environment, progress: Progress) -> GpuFit:
    """The estimate for this GPU; a warning (said in the log, kept with the result by the build) when its free memory,
    as the probe saw it, is below what building needs."""
    promised = make_estimate(params, environment)
    free = environment.torch.get("vram_free")
    problem = vram_problem(promised, free if isinstance(free, int) else None, params.fp8)
    if problem is not None:
        progress.event("log", problem.message)
    return GpuFit(promised, problem)
