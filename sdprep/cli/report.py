"""What the CLI prints: events while a job runs, then its result, worded in the CLI's language with flags for fields.

Results go to stdout (the last line is the path a script wants: the config, or the check image); reasons and
problems go to stderr. Tracebacks only with --debug.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TextIO

from sdprep.cli.args import flag_for
from sdprep.jobs.build import BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.job import JobResult
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Problem, Size
from sdprep.text import labelled, plain_code, t, word

MARKERS = {"stage": "==>", "log": "   ", "waiting": "..."}


class Printer:
    def __init__(self, lang: str, out: TextIO, err: TextIO, debug: bool = False) -> None:
        self.lang, self.out, self.err, self.debug = lang, out, err, debug

    def word(self, message: Message | str) -> str:
        """A Message worded for the console: flags for fields, code spans as plain text."""
        return plain_code(word(message, self.lang, namer=lambda name, lang: flag_for(name, lang)))

    def problems(self, problems: list[Problem]) -> None:
        for problem in problems:
            severity = t(f"sev_{problem.severity}", self.lang)
            print(
                labelled(f"{severity}: {flag_for(problem.field)}", self.word(problem.message), self.lang), file=self.err
            )

    def line(self, code: str, stream: TextIO | None = None, **params: object) -> None:
        print(plain_code(t(code, self.lang, **params)), file=stream or self.out)

    def event_printer(self) -> Callable[[JobEvent], None]:
        def show(event: JobEvent) -> None:
            if event.kind == "raw":
                if self.debug:
                    print(f"  {self.word(event.message)}", file=self.out, flush=True)
                return
            print(
                f"[{event.elapsed:7.1f}s] {MARKERS[event.kind]} {self.word(event.message)}", file=self.out, flush=True
            )

        return show

    def failure(self, result: JobResult, expected: bool = False) -> None:
        """Why a job did not succeed, the end of its log (not for an expected state, unless --debug), and where the
        whole log is."""
        outcome = t(f"cli_outcome_{result.outcome}", self.lang)
        print(labelled(outcome, self.word(result.reason), self.lang), file=self.err)
        if result.outcome == "failed" and result.log_tail and (self.debug or not expected):
            self.line("res_log_tail", self.err)
            for line in result.log_tail[-12:]:
                print(f"  {line}", file=self.err)
        if result.log_path:
            self.line("res_log_path", self.err, path=result.log_path)

    def build(self, result: BuildResult, last_line: bool = True) -> int:
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
