"""`setup`: make the build Python in one step, prove it, and only then put it in place.

Prerequisites first (uv, git, the driver and the CUDA build it allows, disk, an existing environment not made by
setup), then each install step in `<target>.partial` through the same child machinery as builds (stages, live log,
Cancel), then the self-test in that environment; only a passed self-test renames it to `<target>` (the earlier one,
if any, is removed after). A cancelled or failed setup removes the partial environment and leaves the earlier one
working. The record `<target>/sdprep-setup.json` says what was asked, what was installed and how long each step took;
asking again for the same answers "up to date" in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildProcess, ChildSpec, run_command, venv_python
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Size, msg, os_reason
from sdprep.paths import atomic_write_text, user_path
from sdprep.setup.doctor import CheckReport, Doctor
from sdprep.setup.driver import driver_version, version_text
from sdprep.setup.failures import explain
from sdprep.setup.pins import PYTHON_FALLBACK, PYTHON_VERSION, Fork
from sdprep.setup.plan import SetupRequest, Step, choose_variant, constraints_text, resolve_fork, steps, uv

RECORD_NAME = "sdprep-setup.json"
# A CUDA torch (~4 GB), TensorRT's libraries (~2.5 GB), the fork's stack, and room for uv to unpack.
DISK_NEEDED = 15 * 1024**3
UV_ANSWERS_WITHIN = 60.0  # seconds for uv's quick answers (its version, a venv's package list), however loaded
WATCHED = ("torch", "torchvision", "tensorrt-cu12", "tensorrt-cu13", "streamdiffusion")


@dataclass
class SetupResult(JobResult):
    target: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckReport] = field(default_factory=list)


def read_record(target: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((target / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def disk_free(path: Path) -> int:
    """Free bytes where `path` would be created (a seam for tests of a full disk)."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    return shutil.disk_usage(existing).free


class Setup(Job[SetupResult]):
    result_type = SetupResult

    def __init__(self, request: SetupRequest, on_event: Callable[[JobEvent], None], cancel: threading.Event) -> None:
        self.request = request
        self.target = user_path(str(request.target)).resolve()
        self.partial = self.target.with_name(self.target.name + ".partial")
        super().__init__(ChildSpec(python=str(venv_python(self.partial)), gpu=request.gpu), on_event, cancel)
        self.timings: dict[str, float] = {}

    def result(self, outcome: Any, reason: Message, **extra: Any) -> SetupResult:
        return super().result(outcome, reason, target=self.target, **extra)

    def run(self) -> SetupResult:
        try:
            return self._run()
        except OSError as problem:
            self.remove_partial()
            return self.result(
                "failed",
                msg("setup_os_error", path=problem.filename or self.target, reason=os_reason(problem)),
            )

    # --- before anything is installed ------------------------------------------------------------------------
    def _run(self) -> SetupResult:
        self.progress.stage("setup_check")
        fork = resolve_fork(self.request.fork)
        if isinstance(fork, Message):
            return self.result("refused", fork)
        driver = driver_version()
        variant = choose_variant(self.request.cuda, driver)
        if isinstance(variant, Message):
            return self.result("unavailable", variant)
        self.say(
            "setup_plan",
            cuda=variant.name,
            torch=variant.torch,
            tensorrt=variant.tensorrt,
            fork=fork.requirement(),
            driver=version_text(driver) or msg("unknown"),
        )
        refusal = self.prerequisites(fork)
        if refusal is not None:
            return refusal
        record = read_record(self.target)
        if self.target.exists() and record is None and not self.request.replace:
            return self.result("refused", msg("setup_not_ours", target=self.target))
        if record is not None and not self.request.upgrade:
            ready = self.up_to_date(record)
            if ready is not None:
                return ready
        return self.install(variant, fork, driver)

    def prerequisites(self, fork: Fork) -> SetupResult | None:
        probe = run_command([*uv(), "--version"], timeout=UV_ANSWERS_WITHIN)
        if probe.returncode != 0:
            return self.result("unavailable", msg("setup_no_uv", python=sys.executable))
        self.say("setup_uv", version=probe.stdout.strip())
        if shutil.which("git") is None:
            return self.result("unavailable", msg("setup_no_git", url=fork.url))
        free = disk_free(self.target.parent)
        if free < DISK_NEEDED:
            return self.result(
                "refused", msg("setup_disk", free=Size(free), needed=Size(DISK_NEEDED), folder=self.target.parent)
            )
        return None

    def up_to_date(self, record: dict[str, Any]) -> SetupResult | None:
        """The same request, and the recorded versions still installed: nothing to do."""
        if record.get("request") != self.request.identity() or not venv_python(self.target).is_file():
            return None
        installed = installed_versions(self.target)
        wanted = record.get("installed") or {}
        if any(installed.get(name) != wanted.get(name) for name in WATCHED if name in wanted):
            self.say("setup_changed_since")
            return None
        return self.result(
            "ready", msg("setup_up_to_date", target=self.target, when=record.get("finished_at") or "?"), record=record
        )

    # --- installing ------------------------------------------------------------------------------------------
    def install(self, variant: Any, fork: Fork, driver: tuple[int, ...] | None) -> SetupResult:
        self.remove_partial()
        constraints = self.partial.with_name(self.partial.name + ".constraints.txt")
        try:
            for step in steps(self.request, variant, fork, self.partial, constraints):
                if step.id == "torch":
                    atomic_write_text(constraints, constraints_text(variant))
                ended = self.run_step(step)
                if ended is not None and step.id == "venv" and self.python_fallback_helps():
                    self.say("setup_python_fallback", wanted=self.request.python, used=PYTHON_FALLBACK)
                    at = step.command.index("--python") + 1
                    command = [*step.command[:at], PYTHON_FALLBACK, *step.command[at + 1 :]]
                    ended = self.run_step(replace(step, command=command), again=True)
                if ended is not None:
                    self.remove_partial()
                    return ended
            doctor = Doctor(self.child, self.progress.on_event, self.cancel)
            doctor.progress = self.progress  # one log and one clock for the whole setup
            tested = doctor.run()
            if not tested.ok:
                self.remove_partial()
                outcome = "cancelled" if tested.outcome == "cancelled" else "failed"
                return self.result(outcome, msg("setup_self_test_failed", reason=tested.reason), checks=tested.checks)
            record = self.record(variant, fork, driver, tested.checks)
            atomic_write_text(self.partial / RECORD_NAME, json.dumps(record, indent=2) + "\n")
            self.progress.stage("setup_finish")
            self.swap()
        finally:
            constraints.unlink(missing_ok=True)
        self.progress.close_stage()
        return self.result("ready", msg("setup_done", target=self.target), record=record, checks=tested.checks)

    def python_fallback_helps(self) -> bool:
        """The default Python was asked for, and uv found none (and may not fetch one): try the fork's other one."""
        said = "\n".join(self.progress.lines[-20:])
        return self.request.python == PYTHON_VERSION and "No interpreter found" in said and not self.cancel.is_set()

    def run_step(self, step: Step, again: bool = False) -> SetupResult | None:
        """One command, streamed; None when it succeeded, else the result that ends setup. `again`: a second try of
        the step just shown (the log says why), not a new stage."""
        if not again:
            self.progress.stage(f"setup_{step.id}")
        started = time.monotonic()
        env = {**os.environ, "UV_NO_PROGRESS": "1", "PYTHONIOENCODING": "utf-8", **step.env}
        child = ChildProcess.spawn(step.command, env)
        first_line = len(self.progress.lines)  # what this step printed: the place to look for its failure
        run = self.follow_child(child, lambda event: None, "stopping_setup")
        self.timings[step.id] = round(time.monotonic() - started, 2)
        if run.cancelled:
            return self.result("cancelled", msg("setup_cancelled", target=self.target))
        if run.code != 0:
            tail = "\n".join(self.progress.lines[first_line:][-60:])
            return self.result(
                "failed",
                msg(
                    "setup_step_failed",
                    step=msg(f"stage_setup_{step.id}"),
                    reason=explain(tail) or msg("setup_see_log"),
                ),
            )
        return None

    def record(
        self, variant: Any, fork: Fork, driver: tuple[int, ...] | None, checks: list[CheckReport]
    ) -> dict[str, Any]:
        cuda = next((c.details for c in checks if c.name == "cuda"), {})
        return {
            "format": 1,
            "made_by": "gradio_prepare.py setup",
            "request": self.request.identity(),
            "installed": installed_versions(self.partial),
            "fork": asdict(fork),
            "cuda": variant.name,
            "driver": version_text(driver),
            "gpu": cuda.get("name"),
            "compute_capability": cuda.get("compute_capability"),
            "steps": {**self.timings, **{f"self_test_{c.name}": round(c.seconds, 3) for c in checks}},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def swap(self) -> None:
        """The proven environment takes the target's place; the earlier one goes only after that."""
        old = self.target.with_name(f"{self.target.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        if self.target.exists():
            os.replace(self.target, old)
        os.replace(self.partial, self.target)
        shutil.rmtree(old, ignore_errors=True)

    def remove_partial(self) -> None:
        if self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)


def installed_versions(venv: Path) -> dict[str, str]:
    """Distribution versions in a venv, from `uv pip list` (fast: nothing is imported)."""
    with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
        done = run_command(
            [*uv(), "pip", "list", "--python", str(venv_python(venv)), "--format", "json"], timeout=UV_ANSWERS_WITHIN
        )
        if done.returncode == 0:
            return {str(item["name"]).lower(): str(item["version"]) for item in json.loads(done.stdout)}
    return {}


def run_setup(
    request: SetupRequest,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> SetupResult:
    return Setup(request, on_event, cancel or threading.Event()).run()
