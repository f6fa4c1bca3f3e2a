"""The CLI's `pack` (one build into one file) and `unpack` (a pack into this machine's engines folder).

Exit codes as every command's (README): 0 done, 1 failed (a disk error), 2 refused (no such build; a damaged or
altered pack: nothing written), 3 this machine cannot load it (another compute capability or TensorRT: nothing
written, and the line that rebuilds it here), 4 busy (the model is building, checking, saving or being deleted).
The last line of stdout is what a script wants: the pack's path, or the unpacked config.yaml's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sdprep.cli.args import add_child_flags
from sdprep.cli.commands import child_spec
from sdprep.cli.report import Printer
from sdprep.config import RuntimeDefaults
from sdprep.jobs.job import EXIT_CODES
from sdprep.messages import Duration, Size, msg
from sdprep.params import DEFAULTS
from sdprep.text import t

if TYPE_CHECKING:
    from sdprep.pack_archive import PackProblem

# sdprep.pack and sdprep.unpack (zip, hashing) are imported when a pack command runs: every command's start stays as
# quick as the CLI's smallest (`build` when up to date).

PROGRESS_EVERY = 2.0  # seconds between progress lines on stderr


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser, lang: str
) -> None:
    codes = t("cli_pack_codes", lang)
    packer = sub.add_parser(
        "pack", parents=[common], help=t("cli_pack", lang), description=f"{t('cli_pack', lang)}. {codes}"
    )
    packer.add_argument("config", metavar="PATH", help=t("cli_check_path", lang))
    packer.add_argument("-o", "--output", metavar="FILE", default=None, help=t("cli_pack_output", lang))
    packer.add_argument("--with-model", action="store_true", help=t("cli_pack_with_model", lang))
    packer.add_argument("--debug", action="store_true", help=t("cli_debug", lang))

    unpacker = sub.add_parser(
        "unpack", parents=[common], help=t("cli_unpack", lang), description=f"{t('cli_unpack', lang)}. {codes}"
    )
    unpacker.add_argument("pack", metavar="FILE", help=t("cli_unpack_file", lang))
    engines_help = f"{t('i_engines_dir', lang)} [{t('cli_default', lang, value=DEFAULTS.engines_dir)}]"
    unpacker.add_argument("--engines-dir", default=DEFAULTS.engines_dir, metavar="DIR", help=engines_help)
    add_child_flags(unpacker, lang)
    unpacker.add_argument("--debug", action="store_true", help=t("cli_debug", lang))


def _progress(printer: Printer) -> Callable[[int, int], None]:
    """A progress line on stderr every few seconds (a pack of gigabytes takes a while), none for a quick one."""
    last = [time.monotonic()]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            percent = round(100 * done / total) if total else 100
            said = msg("pack_progress", done=Size(done), total=Size(total), percent=percent)
            print(printer.word(said), file=printer.err)

    return show


def _refused(printer: Printer, problem: PackProblem) -> int:
    print(f"{t(f'cli_outcome_{problem.outcome}', printer.lang)}: {printer.word(problem.message)}", file=printer.err)
    printer.line("nothing_written", printer.err)
    return EXIT_CODES[problem.outcome]


def pack(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    from sdprep.pack import pack as pack_build
    from sdprep.pack_archive import PackProblem

    printer = Printer(args.lang, out, err, args.debug)
    output = Path(args.output) if args.output else None
    try:
        packed = pack_build(Path(args.config), output, args.with_model, on_progress=_progress(printer))
    except PackProblem as problem:
        return _refused(printer, problem)
    manifest = packed.manifest
    said = msg(
        "pack_done",
        variant=manifest.variant,
        count=len(manifest.files),
        size=Size(manifest.size),
        took=Duration(packed.seconds),
        gpu=manifest.built_on.gpu or msg("unknown"),
        capability=manifest.built_on.compute_capability or "?",
        tensorrt=manifest.built_on.tensorrt or "?",
    )
    print(printer.word(said), file=out)
    for note in packed.notes:
        print(printer.word(note), file=err)
    print(str(packed.path), file=out)
    return 0


def unpack(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    from sdprep.pack_archive import PackProblem
    from sdprep.unpack import unpack as unpack_file

    printer = Printer(args.lang, out, err, args.debug)
    try:
        done = unpack_file(Path(args.pack), Path(args.engines_dir), child_spec(args), _progress(printer))
    except PackProblem as problem:
        return _refused(printer, problem)
    manifest = done.manifest
    said = msg(
        "unpack_done",
        variant=manifest.variant,
        folder=done.folder,
        count=len(manifest.files),
        size=Size(manifest.size),
        took=Duration(done.seconds),
        machine=manifest.machine,
    )
    print(printer.word(said), file=out)
    for note in done.notes:
        print(printer.word(note), file=err)
    for need in done.needs:
        print(printer.word(need), file=out)
    print(str(done.config_path), file=out)
    return 0
