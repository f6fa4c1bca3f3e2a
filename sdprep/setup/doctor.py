"""The self-test (`doctor`): run child/environment_check.py in a build Python and say, check by check, what works and
what broke, with the known cause and fix. Seconds, not minutes: it builds and runs a one-layer TensorRT network
instead of a model.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.jobs.job import Job, JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Quote, Size, msg, os_reason
from sdprep.setup.driver import driver_version
from sdprep.setup.failures import explain

SELF_TEST_TIMEOUT = 180.0  # seconds: a hung driver must not hold the page or the terminal forever


@dataclass
class CheckReport:
    name: str
    ok: bool
    skipped: bool
    seconds: float
    details: dict[str, Any]
    error: str | None
    reason: Message | None = None  # for a failed check: the cause and the fix


@dataclass
class DoctorResult(JobResult):
    checks: list[CheckReport] = field(default_factory=list)
    python: str | None = None

    def check(self, name: str) -> CheckReport | None:
        return next((report for report in self.checks if report.name == name), None)

    @property
    def expected(self) -> bool:
        """Whether every failed check is a known state worded with its fix ("torch is not installed"): its traceback
        then says nothing more, and stays in the log file."""
        failed = [report for report in self.checks if not report.ok and not report.skipped]
        return bool(failed) and all(
            report.reason is not None and report.reason.code != "doctor_failed_plain" for report in failed
        )


def diagnose(report: CheckReport) -> Message:
    """Why a check failed, in one line with what to do."""
    details, error = report.details, report.error or ""
    if report.skipped:
        blocked = error.removeprefix("skipped: ").removesuffix(" failed")
        return msg("doctor_skipped", check=msg(f"check_{blocked}"))
    if report.name == "cuda":
        if not details.get("torch_cuda"):
            return msg("known_failure", reason=msg("fail_cpu_torch"), fix=msg("fix_setup_upgrade"))
        driver = details.get("driver") or {}
        if driver.get("visible") is False:
            return msg("known_failure", reason=msg("fail_no_driver"), fix=msg("fix_driver"))
    if report.name in ("torch", "tensorrt_import", "streamdiffusion", "build_path"):
        module = details.get("failed_module")
        package = {"tensorrt_import": "tensorrt", "build_path": "streamdiffusion"}.get(report.name, report.name)
        if report.name == "streamdiffusion" and details.get("installed") is False:
            return msg("env_sd_missing")
        if module and module.replace("-", "_") != package and details.get("installed", True):
            found = explain(error + "\n" + "\n".join(report_tail(report)))
            return msg(
                "doctor_broken_dependency",
                package=package,
                module=module,
                error=Quote(error),
                fix=found or msg("fix_setup_upgrade"),
            )
        if "No module named" in error and module == package:
            return msg("doctor_not_installed", package=package)
    log = "\n".join(str(line) for line in details.get("tensorrt_log") or [])
    found = explain("\n".join([error, log, *report_tail(report)]))
    return found or msg("doctor_failed_plain", error=Quote(error) if error else msg("unknown"))


def report_tail(report: CheckReport) -> list[str]:
    tail = report.details.get("traceback_tail")
    return [str(line) for line in tail] if isinstance(tail, list) else []


def passed_line(report: CheckReport) -> Message:
    """What a passed check found, in one line."""
    d = report.details
    lines: dict[str, Message] = {
        "torch": msg("doctor_torch", version=d.get("version") or "?", cuda=d.get("cuda") or "—"),
        "cuda": msg(
            "doctor_cuda",
            gpu=d.get("name") or "?",
            capability=d.get("compute_capability") or "?",
            vram=Size(d["vram_total"]) if isinstance(d.get("vram_total"), int) else "?",
            driver=(d.get("driver") or {}).get("version") or "?",
        ),
        "tensorrt_import": msg("doctor_tensorrt", version=d.get("version") or "?", cuda=d.get("cuda_major") or "?"),
        "tensorrt_build": msg("doctor_trt_build", size=Size(int(d.get("engine_bytes") or 0))),
        "tensorrt_run": msg(
            "doctor_trt_run", error=d.get("max_abs_error") if d.get("max_abs_error") is not None else "?"
        ),
        "streamdiffusion": msg("doctor_sd", version=d.get("version") or "?", location=d.get("location") or "?"),
        "build_path": msg(
            "doctor_build_path", count=sum(1 for how in (d.get("modules") or {}).values() if how == "imported")
        ),
    }
    return lines.get(report.name, msg("doctor_ok"))


class Doctor(Job[DoctorResult]):
    result_type = DoctorResult

    def __init__(
        self,
        child: ChildSpec,
        on_event: Callable[[JobEvent], None],
        cancel: threading.Event,
        skip_streamdiffusion: bool = False,
        timeout: float = SELF_TEST_TIMEOUT,
    ) -> None:
        super().__init__(child, on_event, cancel)
        self.skip_streamdiffusion = skip_streamdiffusion
        self.timeout = timeout
        self.reports: list[CheckReport] = []

    def on_record(self, event: dict[str, Any]) -> None:
        if event.get("event") != "check":
            return
        report = CheckReport(
            name=str(event.get("name")),
            ok=bool(event.get("ok")),
            skipped=bool(event.get("skipped")),
            seconds=float(event.get("seconds") or 0.0),
            details={**(event.get("details") or {}), "traceback_tail": event.get("traceback_tail") or []},
            error=event.get("error"),
        )
        if not report.ok:
            report.reason = diagnose(report)
        self.reports.append(report)
        self.progress.event(
            "log",
            msg(
                f"doctor_{'ok' if report.ok else 'skip' if report.skipped else 'no'}_line",
                check=msg(f"check_{report.name}"),
                text=passed_line(report) if report.ok else report.reason,
            ),
        )

    def run(self) -> DoctorResult:
        if driver_version() is None:  # the root cause: no self-test can pass without an NVIDIA GPU
            return self.result("unavailable", msg("env_no_nvidia"), python=self.child.interpreter())
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self.cancel.set()

        watchdog = threading.Timer(self.timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        with tempfile.TemporaryDirectory(prefix="sdprep-doctor-") as folder:
            job = Path(folder) / "job.json"
            job.write_text(json.dumps({"skip_streamdiffusion": self.skip_streamdiffusion}), encoding="utf-8")
            try:
                run = self.run_child(
                    "environment_check.py", [str(job)], on_record=self.on_record, stop_code="stopping_doctor"
                )
            except OSError as problem:
                return self.result(
                    "unavailable", msg("child_cannot_start", python=self.child.interpreter(), reason=os_reason(problem))
                )
            finally:
                watchdog.cancel()
        python = self.child.interpreter()
        if run.cancelled:
            if expired.is_set():
                return self.result(
                    "failed", msg("doctor_timeout", seconds=int(self.timeout)), checks=self.reports, python=python
                )
            return self.result("cancelled", msg("doctor_cancelled"), checks=self.reports, python=python)
        if run.result is None:
            return self.result("failed", self.child_failure(run, "doctor_exit"), checks=self.reports, python=python)
        failed = [report for report in self.reports if not report.ok and not report.skipped]
        if failed:
            return self.result(
                "failed",
                msg("doctor_failed", check=msg(f"check_{failed[0].name}"), reason=failed[0].reason),
                checks=self.reports,
                python=python,
            )
        return self.result(
            "passed",
            msg("doctor_passed", seconds=f"{float(run.result.get('seconds') or 0):.1f}"),
            checks=self.reports,
            python=python,
        )


def run_doctor(
    child: ChildSpec,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
    skip_streamdiffusion: bool = False,
) -> DoctorResult:
    return Doctor(child, on_event, cancel or threading.Event(), skip_streamdiffusion).run()
