"""What the CLI prints: events while a job runs, then its result, worded in the CLI's language with flags for fields.

Results go to stdout (the last line is the path a script wants: the config, or the check image); reasons and
problems go to stderr. Tracebacks only with --debug. TensorRT's own progress is one line that redraws itself on a
terminal, and a plain line every PROGRESS_EVERY seconds (and when its phase changes) when the output is redirected.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from typing import TextIO

from sdprep.cli.args import flag_for
from sdprep.jobs.build import BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.job import JobResult
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Problem, Size
from sdprep.text import labelled, plain_code, t, word

MARKERS = {"stage": "==>", "log": "   ", "waiting": "...", "tensorrt": "..."}
PROGRESS_EVERY = 5.0  # seconds between TensorRT progress lines in a redirected output


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed stream, or one without isatty
        return False


class Printer:
    def __init__(self, lang: str, out: TextIO, err: TextIO, debug: bool = False) -> None:
        self.lang, self.out, self.err, self.debug = lang, out, err, debug
        self._drawn = 0  # characters of the progress line now on the terminal (0: none; the cursor is at a line start)
        # The top phase of the last progress line printed to a file, when, and what it said.
        self._printed: tuple[str, float, str] | None = None

    def settle(self) -> None:
        """End the terminal's progress line, so what is printed next starts a line of its own."""
        if self._drawn:
            print(file=self.out, flush=True)
            self._drawn = 0

    def progress(self, event: JobEvent) -> None:
        """TensorRT's progress: redrawn in place on a terminal; else a line when the top-level phase changes or ends,
        and every PROGRESS_EVERY seconds between."""
        said = self.word(event.message)
        line = f"[{event.elapsed:7.1f}s] {MARKERS['tensorrt']} {said}"
        if is_terminal(self.out):
            if not event.phases:  # the phase ended: its line goes, rather than stay at a step it has passed
                self.out.write("\r" + " " * self._drawn + "\r")
                self.out.flush()
                self._drawn = 0
                return
            line = line[: shutil.get_terminal_size().columns - 1]  # a line that wrapped could not be redrawn
            self.out.write("\r" + line.ljust(self._drawn))
            self.out.flush()
            self._drawn = len(line)
            return
        top = event.phases[0] if event.phases else None
        if top is None:  # between phases: the next phase starts afresh
            self._printed = None
            return
        now = time.monotonic()
        printed = self._printed
        if printed is None or printed[0] != top.name or now - printed[1] >= PROGRESS_EVERY or top.step >= top.steps:
            if printed is None or printed[2] != said:
                print(line, file=self.out, flush=True)
            self._printed = (top.name, now, said)

    def word(self, message: Message | str) -> str:
        """A Message worded for the console: flags for fields, code spans as plain text."""
        return plain_code(word(message, self.lang, namer=lambda name, lang: flag_for(name, lang)))

    def problems(self, problems: list[Problem]) -> None:
        self.settle()
        for problem in problems:
            severity = t(f"sev_{problem.severity}", self.lang)
            print(
                labelled(f"{severity}: {flag_for(problem.field)}", self.word(problem.message), self.lang), file=self.err
            )

    def line(self, code: str, stream: TextIO | None = None, **params: object) -> None:
        self.settle()
        print(plain_code(t(code, self.lang, **params)), file=stream or self.out)

    def event_printer(self) -> Callable[[JobEvent], None]:
        def show(event: JobEvent) -> None:
            if event.kind == "tensorrt":
                self.progress(event)
                return
            if event.kind == "raw":
                if self.debug:
                    self.settle()
                    print(f"  {self.word(event.message)}", file=self.out, flush=True)
                return
            self.settle()
            print(
                f"[{event.elapsed:7.1f}s] {MARKERS[event.kind]} {self.word(event.message)}", file=self.out, flush=True
            )

        return show

    def failure(self, result: JobResult, expected: bool = False) -> None:
        """Why a job did not succeed, the end of its log (not for an expected state, unless --debug), and where the
        whole log is."""
        self.settle()
        outcome = t(f"cli_outcome_{result.outcome}", self.lang)
        print(labelled(outcome, self.word(result.reason), self.lang), file=self.err)
        if result.outcome == "failed" and result.log_tail and (self.debug or not expected):
            self.line("res_log_tail", self.err)
            for line in result.log_tail[-12:]:
                print(f"  {line}", file=self.err)
        if result.log_path:
            self.line("res_log_path", self.err, path=result.log_path)

    def build(self, result: BuildResult, last_line: bool = True) -> int:
        self.settle()
        if not result.ok:
            self.problems(result.problems)
            self.failure(result)
            return result.exit_code
        self.problems(result.problems)  # the warnings a build went ahead with
        for engine in result.engines:
            state = t("res_reused" if engine["reused"] else "res_built", self.lang)
            print(
                f"  {engine['path']}  {self.word(Message('size_only', {'size': Size(engine['size'])}))}  ({state})",
                file=self.out,
            )
        if result.stages and self.debug:
            print(json.dumps(result.stages, indent=2), file=self.out)
        print(self.word(result.reason), file=self.out)
        if last_line and result.config_path:
            print(str(result.config_path), file=self.out)
        return result.exit_code

    def check(self, result: CheckResult) -> int:
        """The check's numbers on stdout; why it failed on stderr."""
        self.settle()
        if result.outcome in ("refused", "unavailable", "busy", "cancelled"):
            self.failure(result)
            return result.exit_code
        numbers = result.numbers()
        if numbers:
            print(f"  {'; '.join(self.word(part) for part in numbers)}", file=self.out)
        if not result.ok:
            self.failure(result)
            return result.exit_code
        if result.variant:
            self.line("cli_check_recorded", variant=result.variant)
        self.line("cli_check_passed", speed=self.word(result.speed or result.reason))
        return result.exit_code
