"""`clean`: list what no build under the engines folder refers to, with sizes (a dry run), or remove it (--yes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from sdprep.cli.report import Printer
from sdprep.config import RuntimeDefaults
from sdprep.jobs.job import EXIT_CODES
from sdprep.messages import msg
from sdprep.model_folder import KEEP_LOGS
from sdprep.params import DEFAULTS
from sdprep.text import t


def add_parser(sub: Any, common: argparse.ArgumentParser, lang: str) -> None:
    clean = sub.add_parser("clean", parents=[common], help=t("cli_clean", lang))
    clean.add_argument("--engines-dir", default=DEFAULTS.engines_dir, metavar="DIR")
    clean.add_argument("--yes", action="store_true", help=t("cli_clean_yes", lang))
    clean.add_argument(
        "--keep-logs", type=int, default=KEEP_LOGS, metavar="N", help=t("cli_clean_keep_logs", lang, count=KEEP_LOGS)
    )


def clean(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    """Exit 0 after a dry run or a removal of everything listed, 1 when something could not be removed, 2 for a bad
    --keep-logs."""
    # Imported when run: every command's start stays as quick as the CLI's smallest (`build` when up to date).
    from sdprep.clean import find_leftovers, plan_messages, removal_messages, remove_leftovers

    printer = Printer(args.lang, out, err)
    if args.keep_logs < 0:
        printer.line("cli_clean_keep_logs_negative", err)
        return EXIT_CODES["refused"]
    root = Path(args.engines_dir)
    if not args.yes:
        plan = find_leftovers(root, args.keep_logs)
        for line in plan_messages(plan):
            print(printer.word(line), file=out)
        if plan.items:
            print(printer.word(msg("clean_dry_run", command=_yes_command(args))), file=out)
        return 0
    removal = remove_leftovers(root, args.keep_logs)
    for line in plan_messages(removal.plan):
        print(printer.word(line), file=out)
    for line in removal_messages(removal):
        print(printer.word(line), file=err if line.code != "clean_removed" else out)
    return EXIT_CODES["failed"] if removal.failed or removal.unfinished else 0


def _yes_command(args: argparse.Namespace) -> str:
    line = "python gradio_prepare.py clean"
    if args.engines_dir != DEFAULTS.engines_dir:
        folder = str(args.engines_dir)
        line += f' --engines-dir "{folder}"' if " " in folder else f" --engines-dir {folder}"
    if args.keep_logs != KEEP_LOGS:
        line += f" --keep-logs {args.keep_logs}"
    return line + " --yes"
