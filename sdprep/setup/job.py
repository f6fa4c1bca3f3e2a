"""`setup`: make the build Python in one step, prove it, and only then put it in place.

Prerequisites first (uv, git, the driver and the CUDA build it allows, disk on the target's and on uv's cache drive,
an existing environment not made by setup), then each install step in `<target>.partial` through the same child
machinery as builds (stages, live log, Cancel), then the self-test in that environment; only a passed self-test
renames it to `<target>` (the earlier one, if any, is removed after). A cancelled or failed setup removes the partial
environment and leaves the earlier one working; a first self-test that ran out of time keeps it, for `doctor`.
The record `<target>/sdprep-setup.json` says what was asked, what was installed and how long each step took;
asking again for the same answers "up to date" in well under a second.

Locks (sdprep.locks): one setup per target across processes, for the whole run; the swap waits until no build,
check or self-test runs from the target, and holds the target's gate so none starts while the folders change places.
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

from sdprep.features import Feature
from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildProcess, ChildSpec, run_command, venv_python
from sdprep.jobs.progress import JobEvent
from sdprep.locks import environment_gate, environment_users, setup_lock
from sdprep.messages import Message, Size, msg, os_reason
from sdprep.paths import atomic_write_text, user_path
from sdprep.setup.doctor import SELF_TEST_TIMEOUT, CheckReport, Doctor
from sdprep.setup.driver import driver_version, version_text
from sdprep.setup.failures import explain
from sdprep.setup.folders import SwapFailed, remove_tree, swap_in
from sdprep.setup.pins import PYTHON_FALLBACK, PYTHON_VERSION, Fork
from sdprep.setup.plan import (
    SetupRequest,
    Step,
    choose_variant,
    constraints_text,
    features_for,
    resolve_fork,
    steps,
    uv,
)

RECORD_NAME = "sdprep-setup.json"
# A CUDA torch (~4 GB), TensorRT's libraries (~2.5 GB), the fork's stack, and room for uv to unpack.
DISK_NEEDED = 15 * 1024**3
# uv's cache on a drive of its own: the downloads, unpacked (uv then copies them into the target instead of linking).
CACHE_NEEDED = 8 * 1024**3
# The first self-test of a fresh environment loads 3-5 GB of new CUDA libraries, which a virus scanner reads first.
FIRST_SELF_TEST_TIMEOUT = max(600.0, SELF_TEST_TIMEOUT)
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


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def disk_free(path: Path) -> int:
    """Free bytes where `path` would be created (a seam for tests of a full disk)."""
    return shutil.disk_usage(_existing(path)).free


def same_drive(first: Path, second: Path) -> bool:
    try:
        return os.stat(_existing(first)).st_dev == os.stat(_existing(second)).st_dev
    except OSError:
        return False


def uv_cache_dir() -> Path | None:
    """Where uv keeps its downloads ($UV_CACHE_DIR, else its default: on Windows %LOCALAPPDATA%\\uv\\cache)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = run_command([*uv(), "cache", "dir"], timeout=UV_ANSWERS_WITHIN)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip().splitlines()[-1])
    return None


class Setup(Job[SetupResult]):
    result_type = SetupResult

    def __init__(
        self,
        request: SetupRequest,
        on_event: Callable[[JobEvent], None],
        cancel: threading.Event,
        wait: bool = True,
    ) -> None:
        self.request = request
        self.wait = wait  # for another setup of the target, or a build running from it; else "busy"
        self.target = user_path(str(request.target)).resolve()
        self.partial = self.target.with_name(self.target.name + ".partial")
        super().__init__(ChildSpec(python=str(venv_python(self.partial)), gpu=request.gpu), on_event, cancel)
        self.timings: dict[str, float] = {}
        self.features: tuple[Feature, ...] = ()

    def result(self, outcome: Any, reason: Message, **extra: Any) -> SetupResult:
        return super().result(outcome, reason, target=self.target, **extra)

    def run(self) -> SetupResult:
        lock = setup_lock(self.target)
        ended = self.acquire(lock, f"setup of {self.target}", self.wait, "setup_waiting", target=self.target)
        if ended is not None:
            return ended
        try:
            return self._run()
        except OSError as problem:
            self.remove_partial()
            return self.result(
                "failed",
                msg("setup_os_error", path=problem.filename or self.target, reason=os_reason(problem)),
            )
        finally:
            lock.release()

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
        self.features = features_for(self.request, variant)
        self.say(
            "setup_features", features=[msg(f"feat_{f.name}") for f in self.features] or msg("setup_features_none")
        )
        for feature in self.features:
            if feature.before:
                self.say(feature.before)
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
        cache = uv_cache_dir()
        if cache is not None and not same_drive(cache, self.target.parent):
            free = disk_free(cache)
            if free < CACHE_NEEDED:
                return self.result(
                    "refused", msg("setup_cache_disk", free=Size(free), needed=Size(CACHE_NEEDED), folder=cache)
                )
        users = environment_users(self.target) if not self.wait else []
        if users:  # --no-wait: refused now, not after the install
            return self.result("busy", self.users_message("setup_users_busy", users))
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
        self.remove_leftovers()
        if not self.remove_partial():
            return self.result("failed", msg("setup_partial_held", folder=self.partial))
        constraints = self.partial.with_name(self.partial.name + ".constraints.txt")
        try:
            for step in steps(self.request, variant, fork, self.partial, constraints, self.features):
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
            doctor = Doctor(self.child, self.progress.on_event, self.cancel, timeout=FIRST_SELF_TEST_TIMEOUT)
            doctor.progress = self.progress  # one log and one clock for the whole setup
            tested = doctor.run()
            if tested.reason.code == "doctor_timeout":
                # Kept: the next self-test of the same files is much faster (they are read and scanned by now).
                return self.result(
                    "failed",
                    msg(
                        "setup_self_test_timeout",
                        seconds=int(FIRST_SELF_TEST_TIMEOUT),
                        partial=self.partial,
                        python=venv_python(self.partial),
                    ),
                    checks=tested.checks,
                )
            if not tested.ok:
                self.remove_partial()
                outcome = "cancelled" if tested.outcome == "cancelled" else "failed"
                return self.result(outcome, msg("setup_self_test_failed", reason=tested.reason), checks=tested.checks)
            record = self.record(variant, fork, driver, tested.checks)
            atomic_write_text(self.partial / RECORD_NAME, json.dumps(record, indent=2) + "\n")
            self.progress.stage("setup_finish")
            ended = self.put_in_place()
            if ended is not None:
                self.remove_partial()
                return ended
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
            "features": [feature.name for feature in self.features],
            "driver": version_text(driver),
            "gpu": cuda.get("name"),
            "compute_capability": cuda.get("compute_capability"),
            "steps": {**self.timings, **{f"self_test_{c.name}": round(c.seconds, 3) for c in checks}},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    # --- putting it in place --------------------------------------------------------------------------------
    def put_in_place(self) -> SetupResult | None:
        """The proven environment takes the target's place once nothing runs from the target (the gate held, so
        nothing starts meanwhile); the earlier one goes only after that, and comes back if the new one cannot take
        its place. None when done, else the result that ends setup."""
        gate = environment_gate(self.target)
        ended = self.acquire(gate, f"setup of {self.target}", True, "setup_gate_waiting", target=self.target)
        if ended is not None:
            return ended
        try:
            ended = self.wait_for_users()
            if ended is not None:
                return ended
            aside = self.target.with_name(f"{self.target.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                complete = swap_in(self.partial, self.target, aside)
            except SwapFailed as failed:
                reason = os_reason(failed.problem)
                if failed.restored:
                    return self.result("failed", msg("setup_swap_restored", target=self.target, reason=reason))
                return self.result(
                    "failed", msg("setup_swap_stuck", target=self.target, reason=reason, aside=failed.aside)
                )
            if not complete:
                self.say("setup_old_left", folder=aside)
            return None
        finally:
            gate.release()

    def wait_for_users(self) -> SetupResult | None:
        """Until no build, check or self-test runs from the target (say who, once); None then, else busy/cancelled."""
        told = False
        while users := environment_users(self.target):
            if not self.wait:
                return self.result("busy", self.users_message("setup_users_busy", users))
            if self.cancel.is_set():
                return self.result("cancelled", msg("setup_cancelled", target=self.target))
            if not told:
                self.progress.event("waiting", self.users_message("setup_users_waiting", users))
                told = True
            time.sleep(0.5)
        return None

    def users_message(self, code: str, users: list[dict[str, Any]]) -> Message:
        return self._holder_message(code, users[0], {"target": self.target, "count": len(users)})

    def remove_partial(self) -> bool:
        """Whether the partial environment is gone (a file another program still holds may keep it)."""
        return remove_tree(self.partial)

    def remove_leftovers(self) -> None:
        """Earlier environments a held file kept from removal (`<target>.old-<time>`): by now, usually free."""
        for leftover in self.target.parent.glob(f"{self.target.name}.old-*"):
            if leftover.is_dir() and not leftover.is_symlink():
                remove_tree(leftover)


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
    wait: bool = True,
) -> SetupResult:
    return Setup(request, on_event, cancel or threading.Event(), wait).run()
