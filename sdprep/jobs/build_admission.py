"""Admission: a build holds its model's folder, then its GPU, for as long as it works there.

The model's lock is taken first (checks, Save and the library's actions take it too); the GPU's only once engine
reuse has found that engines must be built (an up-to-date build never waits for the GPU). Each waits when the options
say so (the page, and the command line unless --no-wait) and stops waiting on Cancel; else the build ends "busy". The
messages name the job that holds the lock, from the note its holder left (sdprep/locks.py): "build of <model>
(<variant>)", a check, a rehearsal, with its pid and since when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sdprep.jobs.build_stage import BuildPlan
from sdprep.jobs.job import Job, JobResult
from sdprep.locks import NamedLock, gpu_lock, model_lock

R = TypeVar("R", bound=JobResult)


def holding(
    job: Job[R], lock: NamedLock, what: str, wait: bool, waiting_code: str, work: Callable[[], R], **params: Any
) -> R:
    """`work` while `job` holds `lock` (noted as `what`); the job's end instead when it cannot have it."""
    ended = job.acquire(lock, what, wait, waiting_code, **params)
    if ended is not None:
        return ended
    try:
        return work()
    finally:
        lock.release()


def holding_model(job: Job[R], plan: BuildPlan, wait: bool, work: Callable[[], R]) -> R:
    """`work` while `job` holds the model's folder (the lock file lives outside it)."""
    return holding(job, model_lock(plan.engine_dir), f"build of {plan.name}", wait, "model_waiting", work)


def holding_gpu(job: Job[R], gpu: int, what: str, wait: bool, work: Callable[[], R]) -> R:
    """`work` while `job` holds GPU `gpu` (a build and a rehearsal alike)."""
    return holding(job, gpu_lock(gpu), what, wait, "gpu_waiting", work, gpu=gpu)
