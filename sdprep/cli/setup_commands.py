"""The CLI's `setup` (make .venv-build) and `doctor` (prove a build Python in seconds)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from sdprep.cli.args import add_child_flags, add_gpu_flag, add_param_flags
from sdprep.cli.commands import EXIT_INVALID, child_spec, params_for, run_cancellable
from sdprep.cli.report import Printer
from sdprep.config import RuntimeDefaults
from sdprep.features import OPTIONAL
from sdprep.jobs.process import build_venv
from sdprep.setup.pins import CUDA_CHOICES, DEFAULT_FORK, PYTHON_VERSION
from sdprep.setup.plan import SetupRequest
from sdprep.text import t

if TYPE_CHECKING:
    from sdprep.setup.doctor import DoctorResult


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, lang: str
) -> None:
    setup = sub.add_parser("setup", parents=[common], help=t("cli_setup", lang))
    setup.add_argument("--target", default=str(build_venv()), metavar="DIR", help=t("cli_setup_target", lang))
    setup.add_argument("--cuda", choices=CUDA_CHOICES, default="auto", help=t("cli_setup_cuda", lang))
    setup.add_argument(
        "--fork", default=DEFAULT_FORK, metavar="forkni|livepeer|URL@REF", help=t("cli_setup_fork", lang)
    )
    setup.add_argument("--python-version", default=PYTHON_VERSION, metavar="X.Y", help=t("cli_setup_python", lang))
    setup.add_argument("--upgrade", action="store_true", help=t("cli_setup_upgrade", lang))
    setup.add_argument("--replace", action="store_true", help=t("cli_setup_replace", lang))
    setup.add_argument("--find-links", action="append", default=[], metavar="DIR", help=t("cli_setup_find_links", lang))
    setup.add_argument("--no-index", action="store_true", help=t("cli_setup_no_index", lang))
    setup.add_argument(
        "--with", dest="with_features", action="append", choices=OPTIONAL, default=[], help=t("cli_setup_with", lang)
    )
    setup.add_argument(
        "--without",
        dest="without_features",
        action="append",
        choices=OPTIONAL,
        default=[],
        help=t("cli_setup_without", lang),
    )
    add_gpu_flag(setup, lang)
    setup.add_argument("--no-wait", action="store_true", help=t("cli_setup_no_wait", lang))
    setup.add_argument("--debug", action="store_true", help=t("cli_debug", lang))

    doctor = sub.add_parser("doctor", parents=[common], help=t("cli_doctor", lang))
    add_child_flags(doctor, lang)
    doctor.add_argument("--debug", action="store_true", help=t("cli_debug", lang))
    doctor.add_argument("--rehearse", action="store_true", help=t("cli_rehearse", lang))
    doctor.add_argument("--from-config", metavar="PATH", help=t("cli_rehearse_from_config", lang))
    doctor.add_argument("--again", action="store_true", help=t("cli_rehearse_again", lang))
    add_param_flags(doctor, lang)


def setup(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    from sdprep.setup.job import run_setup  # here, not above: every other command starts without it

    printer = Printer(args.lang, out, err, args.debug)
    request = SetupRequest(
        target=args.target,
        cuda=args.cuda,
        fork=args.fork,
        python=args.python_version,
        upgrade=args.upgrade,
        replace=args.replace,
        find_links=tuple(args.find_links),
        no_index=args.no_index,
        gpu=args.gpu,
        with_features=tuple(dict.fromkeys(args.with_features)),
        without_features=tuple(dict.fromkeys(args.without_features)),
    )
    result = run_cancellable(
        lambda cancel: run_setup(request, printer.event_printer(), cancel, wait=not args.no_wait),
        lambda: printer.line("cancelling", err),
    )
    if not result.ok:
        printer.failure(result)
        return result.exit_code
    print(printer.word(result.reason), file=out)
    print(str(result.target), file=out)
    return 0


def doctor(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    printer = Printer(args.lang, out, err, args.debug)
    if args.rehearse or args.from_config:
        return rehearse(args, runtime, printer)
    return self_test(args, printer)


def self_test(args: argparse.Namespace, printer: Printer) -> int:
    from sdprep.setup.doctor import run_doctor

    out, err = printer.out, printer.err
    spec = child_spec(args)
    interpreter, source = spec.choice()
    result = run_cancellable(
        lambda cancel: run_doctor(spec, lambda event: None, cancel), lambda: printer.line("cancelling", err)
    )
    if result.reason.code != "env_no_nvidia":  # without an NVIDIA GPU that root cause is the first and only line
        printer.line("doctor_python", python=interpreter, source=t(f"python_chosen_{source}", args.lang))
    print_checks(result, printer)
    if not result.ok:
        printer.failure(result, expected=result.expected)
        return result.exit_code
    print(printer.word(result.reason), file=out)
    return 0


def print_checks(result: DoctorResult, printer: Printer) -> None:
    from sdprep.setup.doctor import passed_line

    for report in result.checks:
        mark = "✔" if report.ok else ("·" if report.skipped else "✘")
        detail = passed_line(report) if report.ok else report.reason
        name = t(f"check_{report.name}", printer.lang)
        print(f"  {mark} {name:28} {printer.word(detail) if detail else ''}", file=printer.out)


def rehearse(args: argparse.Namespace, runtime: RuntimeDefaults, printer: Printer) -> int:
    """`doctor --rehearse`: the self-test, then the rehearsal of the given parameters; the first failure's code."""
    from sdprep.config import make_config
    from sdprep.jobs.rehearsal import run_rehearsal
    from sdprep.messages import has_errors
    from sdprep.validate import validate

    params, problems = params_for(args, printer)
    if params is None:
        return EXIT_INVALID
    problems += validate(params)
    printer.problems(problems)
    if has_errors(problems):
        return EXIT_INVALID
    tested = self_test(args, printer)
    spec = child_spec(args)
    result = run_cancellable(
        lambda cancel: run_rehearsal(
            params, make_config(params, runtime), spec, printer.event_printer(), cancel, use_cache=not args.again
        ),
        lambda: printer.line("cancelling", printer.err),
    )
    if not result.ok:
        printer.failure(result)
        return tested or result.exit_code
    printer.problems(result.problems)
    print(printer.word(result.reason), file=printer.out)
    return tested
