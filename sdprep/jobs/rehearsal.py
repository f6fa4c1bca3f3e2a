"""The rehearsal: the user's exact baked parameters built, in seconds, through the fork's own config loader with a tiny
model made on the spot (child/rehearse_build.py), so a build that cannot work fails before the model download and
the minutes of a real TensorRT build. It proves the build Python's imports, the fork's ONNX export of every engine
these parameters ask for, TensorRT's builder, loading the engines as the inference script does and one frame; it
cannot prove the real model's build (its size, its memory, its weights).

A passed rehearsal is remembered per build environment and parameter set (a file in the probe's cache folder), so a
second Build does not repeat it. Used by `doctor --rehearse`, as the first stage of a Build (jobs/build.py) and by
the page's Rehearse button.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.engine_files import fingerprint
from sdprep.jobs.environment import WIDE_MAX_BATCH, Environment, ProbeError, cache_dir, probe
from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Problem, Quote, has_errors, msg, os_reason
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text
from sdprep.setup.failures import explain
from sdprep.validate import check_unet_batch, validate

# The stages the child runs, in order (child/rehearse_build.py STAGES); each has a label "rehearse_stage_<stage>".
STAGES: tuple[str, ...] = ("imports", "tiny_model", "export", "builder", "load", "frame")
# A tiny model's engines build in seconds to a minute or two on a real GPU; a hung driver must not hold a Build.
REHEARSAL_TIMEOUT = 600.0
# "0" skips the rehearsal for every Build of a process (scripts; the test suite), as --no-rehearse does for one.
REHEARSE_ENV = "SDPREP_REHEARSE"


@dataclass
class RehearsalResult(JobResult):
    failed_stage: str | None = None
    reached: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    cached: bool = False


def rehearse_by_default() -> bool:
    return os.environ.get(REHEARSE_ENV, "1") != "0"


def cache_file(environment: Environment, config: dict[str, Any]) -> Path:
    """Where a passed rehearsal of this config in this build environment is remembered."""
    identity = {
        "environment": environment.summary(),
        "interpreter": environment.python.get("interpreter"),
        "diffusers": environment.report.get("diffusers"),
        "config": fingerprint(config),
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
    return cache_dir() / f"rehearsal-{digest}.json"


def _stage_list(stages: list[str]) -> list[Message]:
    return [msg(f"rehearse_stage_{stage}") for stage in stages if stage in STAGES]


class Rehearsal(Job[RehearsalResult]):
    result_type = RehearsalResult

    def __init__(
        self,
        params: BakedParams,
        config: dict[str, Any],
        child: ChildSpec,
        on_event: Callable[[JobEvent], None],
        cancel: threading.Event,
        environment: Environment | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(child, on_event, cancel)
        self.params, self.config = params, config
        self.environment = environment
        self.use_cache = use_cache

    def run(self) -> RehearsalResult:
        # The widest batch any fork allows first, then this fork's own limit once the probe says it (as a build's
        # preflight does): a fork whose loader takes a batch above 4 rehearses it.
        problems = validate(self.params, max_unet_batch=WIDE_MAX_BATCH)
        if has_errors(problems):
            return self.result("refused", msg("build_params_invalid"), problems=problems)
        if self.environment is None:
            self.progress.stage("probe")
            try:
                self.environment = probe(self.child)
            except ProbeError as problem:
                return self.result("unavailable", problem.message)
        too_wide = check_unet_batch(self.params, self.environment.max_unet_batch())
        if has_errors(too_wide):
            return self.result("refused", msg("build_refused_fork"), problems=too_wide)
        warnings = self.diffusers_warnings()
        remembered = cache_file(self.environment, self.config)
        if self.use_cache:
            earlier = self.remembered(remembered, warnings)
            if earlier is not None:
                return earlier
        ended = self.rehearse(warnings)
        if ended.outcome == "passed":
            record = {"passed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": ended.seconds}
            try:
                atomic_write_text(remembered, json.dumps(record))
            except OSError:
                pass  # a read-only cache only costs a rehearsal next time
        return ended

    def diffusers_warnings(self) -> list[Problem]:
        """The diffusers the fork does not pin, for a cfg type that fails with it (said, not refused)."""
        assert self.environment is not None
        found = [p for p in self.environment.refusals(self.params) if p.field == "cfg_type" and p.severity == "warning"]
        for problem in found:
            self.progress.event("log", problem.message)
        return found

    def remembered(self, path: Path, warnings: list[Problem]) -> RehearsalResult | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("passed_at"), str):
            return None
        return self.result(
            "passed",
            msg("rehearsal_remembered", when=record["passed_at"][:64]),
            reached=list(STAGES),
            cached=True,
            problems=warnings,
        )

    def rehearse(self, warnings: list[Problem]) -> RehearsalResult:
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self.cancel.set()

        watchdog = threading.Timer(REHEARSAL_TIMEOUT, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            with tempfile.TemporaryDirectory(prefix="sdprep-rehearsal-") as folder:
                work = Path(folder) / "work"
                work.mkdir()
                job = Path(folder) / "job.json"
                job.write_text(json.dumps({"config": self.config, "work_dir": str(work)}), encoding="utf-8")
                run = self.run_child("rehearse_build.py", [str(job)], stop_code="stopping_rehearsal")
        except OSError as problem:
            return self.result(
                "unavailable", msg("child_cannot_start", python=self.child.interpreter(), reason=os_reason(problem))
            )
        finally:
            watchdog.cancel()
        if run.cancelled:
            if expired.is_set():
                return self.result("failed", msg("rehearsal_timeout", seconds=int(REHEARSAL_TIMEOUT)))
            return self.result("cancelled", msg("rehearsal_cancelled"))
        if run.result is None:
            return self.result("failed", self.child_failure(run, "rehearsal_exit"))
        return self.outcome(run.result, warnings)

    def outcome(self, answer: dict[str, Any], warnings: list[Problem]) -> RehearsalResult:
        reached = [str(stage) for stage in answer.get("reached") or [] if stage in STAGES]
        left_out = [str(part) for part in answer.get("left_out") or []]
        told = answer.get("seconds")
        seconds: dict[str, Any] = told if isinstance(told, dict) else {}
        common: dict[str, Any] = {"reached": reached, "seconds": seconds, "left_out": left_out, "problems": warnings}
        if answer.get("passed"):
            total = f"{float(seconds.get('total') or 0.0):.1f}"
            parts = [msg(f"rehearse_part_{part}") for part in left_out]
            said = msg("rehearsal_passed_partly", seconds=total, parts=parts) if parts else None
            return self.result("passed", said or msg("rehearsal_passed", seconds=total), **common)
        stage = str(answer.get("failed_stage") or "imports")
        if answer.get("stopped_at_builder_without_tensorrt"):
            return self.result(
                "unavailable", msg("rehearsal_no_tensorrt", reached=_stage_list(reached)), failed_stage=stage, **common
            )
        error = str(answer.get("error") or "")
        logged = [str(line) for line in answer.get("warnings") or []]
        tail = [str(line) for line in answer.get("traceback_tail") or []]
        known = explain("\n".join([error, *logged, *tail, *self.progress.lines[-40:]]))
        return self.result(
            "failed",
            msg(
                "rehearsal_failed",
                stage=msg(f"rehearse_stage_{stage}" if stage in STAGES else "unknown"),
                reached=_stage_list(reached) or msg("rehearsal_nothing_reached"),
                reason=known or msg("rehearsal_error", error=Quote(error) if error else msg("unknown")),
            ),
            failed_stage=stage,
            **common,
        )


def run_rehearsal(
    params: BakedParams,
    config: dict[str, Any],
    child: ChildSpec,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
    use_cache: bool = True,
) -> RehearsalResult:
    return Rehearsal(params, config, child, on_event, cancel or threading.Event(), use_cache=use_cache).run()
