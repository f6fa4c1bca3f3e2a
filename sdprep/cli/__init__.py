"""The headless CLI: the same parameters, rules, config and build as the form, from flags.

    python gradio_prepare.py build [flags] [--config-only]   write config.yaml (and build the engines)
    python gradio_prepare.py build --from-config PATH        rebuild an existing config's engines here
    python gradio_prepare.py build ... --check               build, then load the engines and time frames
    python gradio_prepare.py check PATH/config.yaml          load a config's engines, run frames, report fps
    python gradio_prepare.py probe                           what the build Python can do
    python gradio_prepare.py list                            the prepared models, their sizes, the free space
    python gradio_prepare.py clean [--yes]                   what no build refers to (--yes: remove it)
    python gradio_prepare.py pack PATH/config.yaml [-o FILE] one build in one file, for identical machines
    python gradio_prepare.py unpack FILE [--engines-dir DIR] a pack into this machine's engines folder

Exit codes, the same meaning for every command (README): 0 success, 1 failed, 2 invalid input (nothing written),
3 this machine cannot do it, 4 busy (--no-wait), 130 cancelled. On success the last line of stdout is the path a
script wants (the config.yaml, or the check's image).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from sdprep.cli import clean_command, commands, pack_commands, setup_commands
from sdprep.cli.args import LANG_CHOICES, add_check_flags, add_child_flags, add_param_flags, set_lang
from sdprep.cli.output import never_fail
from sdprep.config import RuntimeDefaults
from sdprep.jobs.job import EXIT_CODES
from sdprep.params import DEFAULTS
from sdprep.text import plain_code, system_language, t

EXIT_OK, EXIT_FAILED, EXIT_INVALID = EXIT_CODES["built"], EXIT_CODES["failed"], EXIT_CODES["refused"]
EXIT_CANCELLED = EXIT_CODES["cancelled"]
HEADLESS_COMMANDS = ("build", "probe", "list", "clean", "check", "setup", "doctor", "pack", "unpack", "-h", "--help")


def build_parser(lang: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lang", choices=LANG_CHOICES, default=None, help=t("cli_lang", lang))
    parser = argparse.ArgumentParser(prog="gradio_prepare.py", description=t("cli_description", lang), parents=[common])
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", parents=[common], help=t("cli_serve", lang))
    serve.add_argument("--host", default=None, help=t("cli_host", lang))
    serve.add_argument("--port", type=int, default=None, help=t("cli_port", lang))
    serve.add_argument("--auth", default=None, metavar="USER:PASSWORD", help=t("cli_auth", lang))
    serve.add_argument("--engines-dir", default=None, metavar="DIR", help=t("cli_serve_engines", lang))
    add_child_flags(serve, lang)

    build = sub.add_parser("build", parents=[common], help=t("cli_build", lang))
    add_param_flags(build, lang)
    build.add_argument("--from-config", metavar="PATH", help=t("cli_from_config", lang))
    build.add_argument("--config-only", action="store_true", help=t("cli_config_only", lang))
    build.add_argument("--force", action="store_true", help=t("cli_force", lang))
    build.add_argument("--allow-low-disk", action="store_true", help=t("cli_allow_low_disk", lang))
    build.add_argument("--no-wait", action="store_true", help=t("cli_no_wait", lang))
    build.add_argument("--check", action="store_true", help=t("cli_check_after", lang))
    build.add_argument("--no-rehearse", action="store_true", help=t("cli_no_rehearse", lang))
    add_check_flags(build, lang)
    add_child_flags(build, lang)
    build.add_argument("--debug", action="store_true", help=t("cli_debug", lang))

    check = sub.add_parser("check", parents=[common], help=t("cli_check", lang))
    check.add_argument("config", metavar="PATH", help=t("cli_check_path", lang))
    add_check_flags(check, lang)
    check.add_argument("--no-wait", action="store_true", help=t("cli_no_wait", lang))
    check.add_argument("--refresh", action="store_true", help=t("cli_refresh", lang))
    add_child_flags(check, lang)
    check.add_argument("--debug", action="store_true", help=t("cli_debug", lang))

    probe = sub.add_parser("probe", parents=[common], help=t("cli_probe", lang))
    add_child_flags(probe, lang)
    probe.add_argument("--refresh", action="store_true", help=t("cli_refresh", lang))
    probe.add_argument("--json", action="store_true")

    setup_commands.add_parsers(sub, common, lang)
    pack_commands.add_parsers(sub, common, lang)

    listing = sub.add_parser("list", parents=[common], help=t("cli_list", lang))
    listing.add_argument("--engines-dir", default=DEFAULTS.engines_dir, metavar="DIR")
    listing.add_argument("--json", action="store_true")
    clean_command.add_parser(sub, common, lang)
    return parser


def is_headless(argv: list[str]) -> bool:
    """Whether argv asks for a command that needs no web UI (so gradio is not even imported): `--lang X` may come
    first."""
    rest = list(argv)
    while rest and rest[0].startswith("--lang"):
        rest = rest[1:] if "=" in rest[0] else rest[2:]
    return bool(rest) and rest[0] in HEADLESS_COMMANDS


def language(argv: list[str]) -> str:
    """--lang (anywhere on the line) > the locale; read before parsing, so --help is worded in it too."""
    for index, item in enumerate(argv):
        if item == "--lang" and index + 1 < len(argv) and argv[index + 1] in LANG_CHOICES:
            return argv[index + 1]
        if item.startswith("--lang=") and item.partition("=")[2] in LANG_CHOICES:
            return item.partition("=")[2]
    return system_language()


def main(
    argv: list[str],
    runtime: RuntimeDefaults,
    serve: Callable[[argparse.Namespace], int],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    never_fail(out, err, sys.stdout, sys.stderr)  # before the first word: a code page must never end a command
    lang = language(argv)
    set_lang(lang)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help") and not argv[0].startswith("--lang")):
        argv = ["serve", *argv]  # no command: start the UI, with any serve flags given
    parser = build_parser(lang)
    args = parser.parse_args(argv)
    if args.command is None:  # only --lang was given: the UI
        args = parser.parse_args(["serve", *argv])
    args.lang = lang
    try:
        if args.command in (None, "serve"):
            return serve(args)
        handlers = {
            "build": commands.build,
            "check": commands.check,
            "probe": commands.probe,
            "list": commands.listing,
            "clean": clean_command.clean,
            "setup": setup_commands.setup,
            "doctor": setup_commands.doctor,
            "pack": pack_commands.pack,
            "unpack": pack_commands.unpack,
        }
        return handlers[args.command](args, runtime, out, err)
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except Exception as problem:  # a bug, not a user mistake: one line, the traceback only with --debug
        if getattr(args, "debug", False):
            traceback.print_exc(file=err)
        print(plain_code(t("cli_internal_error", lang, type=type(problem).__name__, detail=problem)), file=err)
        return EXIT_FAILED
