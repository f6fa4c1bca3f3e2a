"""Child run: the build's log opened in the model's folder, the rehearsal (first, unless skipped: jobs/rehearsal.py),
then the build child (child/build_engines.py) in the build Python, its stages and log streamed as it runs.

Build.child_run (jobs/build.py) puts them in order, with engine reuse's set-aside guard between the rehearsal and the
child; steps that prepare what the child reads go right before `run_build_child` there, and steps that keep what a
successful child left right after it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdprep.jobs.build_stage import BuildPlan, Ended, say
from sdprep.jobs.environment import Environment
from sdprep.jobs.job import ChildRun, Job
from sdprep.jobs.progress import Progress, engine_message
from sdprep.jobs.rehearsal import Rehearsal, rehearse_by_default
from sdprep.messages import Size, msg, os_reason
from sdprep.model_folder import LOGS_DIR
from sdprep.paths import atomic_write_text

BUILD_SCRIPT = "build_engines.py"


@dataclass(frozen=True)
class ChildEnded:
    """How the build child ended, and when it started: (seconds into the build, wall clock), for the measure."""

    run: ChildRun
    started: tuple[float, float]


def open_log(plan: BuildPlan, stamp: str, progress: Progress) -> Path:
    """The model's folder and its logs/ made, and the build's log written there from now on (every line so far
    first); the logs folder."""
    plan.engine_dir.mkdir(parents=True, exist_ok=True)
    logs = plan.engine_dir / LOGS_DIR
    logs.mkdir(exist_ok=True)
    progress.open_file(logs / f"{stamp}-{plan.variant}.log")
    return logs


def rehearsal(job: Job[Any], plan: BuildPlan, environment: Environment, use_cache: bool = True) -> Rehearsal:
    """The rehearsal of this build's parameters, in `job`'s log and clock."""
    rehearsal = Rehearsal(
        plan.params, plan.config, job.child, job.progress.on_event, job.cancel, environment, use_cache=use_cache
    )
    rehearsal.progress = job.progress
    return rehearsal


def rehearse_first(job: Job[Any], plan: BuildPlan, environment: Environment, rehearse: bool | None) -> Ended | None:
    """The rehearsal as the build's first step on the GPU, unless skipped (`rehearse` False; None: as the process
    says, $SDPREP_REHEARSE); None when it passed (or passed before) and the build goes on."""
    if not (rehearse_by_default() if rehearse is None else rehearse):
        return None
    done = rehearsal(job, plan, environment).run()
    if done.ok:
        job.progress.event("log", done.reason)
        return None
    if done.failed_stage == "tiny_model":
        # Making the tiny model is the rehearsal's own machinery, not this build's path: said, not a refusal.
        say(job.progress, "rehearsal_not_made", reason=done.reason)
        return None
    if done.outcome == "cancelled":
        return Ended("cancelled", msg("build_cancelled"))
    return Ended(done.outcome, msg("build_rehearsal_failed", reason=done.reason))


def run_build_child(job: Job[Any], plan: BuildPlan, logs: Path, stamp: str) -> ChildEnded | Ended:
    """The build child on this build's config (a file beside the log while it runs), followed until it ends or
    Cancel; the end when it cannot start."""
    config_file = logs / f"{stamp}-{plan.variant}.config.json"
    atomic_write_text(config_file, json.dumps(plan.config))
    started = (job.progress.elapsed(), time.time())
    try:
        try:
            run = job.run_child(
                BUILD_SCRIPT, [str(config_file)], on_record=lambda event: on_child_record(job.progress, event)
            )
        except OSError as problem:
            return Ended("failed", msg("child_cannot_start", python=job.child.interpreter(), reason=os_reason(problem)))
    finally:
        config_file.unlink(missing_ok=True)
    return ChildEnded(run, started)


def on_child_record(progress: Progress, event: dict[str, Any]) -> None:
    """A record of the child's beyond its stages and log lines: an engine written, with its size."""
    if event.get("event") == "engine_written" and isinstance(event.get("bytes"), int):
        stage = str(event.get("stage") or "engine:unet")
        say(progress, "engine_written", engine=engine_message(stage), file=event.get("file"), size=Size(event["bytes"]))
