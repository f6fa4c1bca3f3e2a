"""The CLI's commands: build (and --config-only, --from-config of a config or a pack, --check), check, probe, list."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from sdprep import timing_cache
from sdprep.cli.args import params_from_args
from sdprep.cli.report import Printer
from sdprep.config import RuntimeDefaults
from sdprep.config_load import ConfigError
from sdprep.disk import disk_use
from sdprep.engines import disk_message, list_models
from sdprep.estimate import estimate, free_space, load_history, shape_of
from sdprep.estimate import lines as estimate_lines
from sdprep.hub import TIMEOUT as HUB_TIMEOUT
from sdprep.hub import hub_problems
from sdprep.jobs.build import BuildOptions, BuildResult
from sdprep.jobs.check import CheckOptions, run_check
from sdprep.jobs.check_files import read_check_config
from sdprep.jobs.environment import ProbeError, chosen_by
from sdprep.jobs.environment import cached as cached_environment
from sdprep.jobs.environment import probe as probe_environment
from sdprep.jobs.job import EXIT_CODES
from sdprep.jobs.pipeline import build_and_check
from sdprep.jobs.process import ChildSpec
from sdprep.messages import Problem, Size, has_errors, msg
from sdprep.params import DEFAULTS, BakedParams, params_from_values
from sdprep.runtime import Runtime, load_config
from sdprep.save import save_config
from sdprep.text import labelled, t
from sdprep.validate import validate

EXIT_INVALID = EXIT_CODES["refused"]
T = TypeVar("T")


def run_cancellable(work: Callable[[threading.Event], T], say_cancelling: Callable[[], None]) -> T:
    """Run work(cancel) in a thread; Ctrl-C sets cancel and waits for work to wind down (it stops the child)."""
    cancel = threading.Event()
    finished = threading.Event()
    box: list[T] = []

    def target() -> None:
        try:
            box.append(work(cancel))
        finally:
            finished.set()

    threading.Thread(target=target, name="sdprep-work", daemon=True).start()
    # Waiting on an Event, not Thread.join: a Ctrl-C that interrupts join() can leave the thread looking dead.
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        say_cancelling()
        cancel.set()
        finished.wait()
    if not box:
        raise RuntimeError("the job thread ended without a result")
    return box[0]


def child_spec(args: argparse.Namespace) -> ChildSpec:
    return ChildSpec(python=args.python, streamdiffusion_src=args.streamdiffusion_src, gpu=args.gpu)


def check_options(args: argparse.Namespace) -> CheckOptions:
    return CheckOptions(
        child=child_spec(args),
        warmup=args.warmup,
        frames=args.frames,
        wait_for_gpu=not args.no_wait,
        refresh_probe=getattr(args, "refresh", False),
    )


def params_for(args: argparse.Namespace, printer: Printer) -> tuple[BakedParams | None, list[Problem]]:
    """The parameters a command was given, from --from-config or the parameter flags, with their problems (None when
    the config cannot be read; that is said already)."""
    params, _runtime, problems = _params_and_runtime(args, printer)
    return params, problems


def _params_and_runtime(
    args: argparse.Namespace, printer: Printer
) -> tuple[BakedParams | None, Runtime | None, list[Problem]]:
    """params_for, with the runtime values of --from-config (which the written config keeps)."""
    if args.from_config:
        loaded = _from_config(args, printer)
        return (None, None, []) if loaded is None else (loaded[0], loaded[1], [])
    params, problems = params_from_args(args)
    return params, None, problems


def _from_config(args: argparse.Namespace, printer: Printer) -> tuple[BakedParams, Runtime] | None:
    """The parameters of --from-config and its runtime values, which the written config keeps."""
    from sdprep.pack_archive import PackProblem, config_source  # zip: only for --from-config

    source = Path(args.from_config)
    try:
        with config_source(source) as path:  # a pack's config is read from inside it (sdprep.pack_archive)
            params, notes, runtime = load_config(path, shown_as=source.name if path != source else None)
    except ConfigError as problem:
        print(f"{t('sev_error', printer.lang)}: --from-config: {printer.word(problem.message)}", file=printer.err)
        return None
    except PackProblem as problem:
        print(f"{t('sev_error', printer.lang)}: --from-config: {printer.word(problem.message)}", file=printer.err)
        return None
    # The config's own engines folder only if it exists here: a config copied from another machine names that
    # machine's folder, so it is rebuilt into ./engines unless --engines-dir says otherwise.
    if args.engines_dir is not None:
        engines_dir = args.engines_dir
    else:
        engines_dir = params.engines_dir if Path(params.engines_dir).is_dir() else DEFAULTS.engines_dir
    for note in notes:
        printer.line("load_note", printer.err, note=printer.word(note))
    return params_from_values({**params.__dict__, "engines_dir": engines_dir}), runtime


def build(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    printer = Printer(args.lang, out, err, args.debug)
    if args.config_only and args.check:
        printer.line("cli_check_needs_build", err)
        return EXIT_INVALID
    params_or_none, loaded, problems = _params_and_runtime(args, printer)
    if params_or_none is None:
        return EXIT_INVALID
    params = params_or_none
    problems += validate(params) + hub_problems(params, wait=HUB_TIMEOUT)
    if has_errors(problems):
        printer.problems(problems)
        printer.line("nothing_written", err)
        return EXIT_INVALID
    if args.config_only:
        return _save(params, runtime, loaded, printer)
    if _cannot_build_here(child_spec(args), printer):
        printer.problems(problems)  # the warnings still stand, after the reason nothing runs
        return EXIT_CODES["unavailable"]
    printer.problems(problems)  # the warnings the build goes ahead with, before it starts
    _print_estimate(params, child_spec(args), printer)
    options = BuildOptions(
        child=child_spec(args),
        force=args.force,
        wait_for_gpu=not args.no_wait,
        check=args.check,
        allow_low_disk=args.allow_low_disk,
        runtime_from=loaded,
        rehearse=False if args.no_rehearse else None,
    )
    built_code: list[int] = []  # the build's report, printed before its check starts

    def on_built(result: BuildResult) -> None:
        built_code.append(printer.build(result, last_line=not args.check))

    result, check = run_cancellable(
        lambda cancel: build_and_check(
            params, runtime, options, printer.event_printer(), cancel, check_options(args), on_built
        ),
        lambda: printer.line("cancelling", err),
    )
    code = built_code[0]
    if code != 0 or not args.check:
        return code
    if check is None:  # cancelled between the build and its check
        print(str(result.config_path), file=out)
        return EXIT_CODES["cancelled"]
    code = printer.check(check)
    print(str(result.config_path), file=out)  # the build's contract: its last stdout line is the config path
    return code


def _cannot_build_here(spec: ChildSpec, printer: Printer) -> bool:
    """Whether this machine cannot build, said first and one reason a line: an estimate of a build that cannot
    start would only hide the refusal. The probe is the build's own (cached); a probe that fails is left to the build,
    which reports it in full."""
    try:
        environment = probe_environment(spec)
    except ProbeError:
        return False
    missing = environment.missing()
    if not missing:
        return False
    if environment.no_nvidia:  # the root cause alone: nothing else on the list would help
        print(printer.word(missing[0]), file=printer.err)
        return True
    printer.line("cli_cannot_build", printer.err)
    for line in missing:
        print(f"  - {printer.word(line)}", file=printer.err)
    return True


def _print_estimate(params: BakedParams, spec: ChildSpec, printer: Printer) -> None:
    """What the build will take, before it starts: disk, VRAM, time, each with where the figure comes from. Uses
    the cached probe only (no child here; the build probes itself), so times are from this GPU's builds when known."""
    environment = cached_environment(spec)
    safety = environment is None or environment.features.get("safety_checker_engine", True) is not False
    promised = estimate(
        shape_of(params, safety),
        load_history(Path(params.engines_dir)),
        environment.gpu_name if environment else None,
        timing_cache.expect_warm(environment, Path(params.engines_dir)),
    )
    free_vram = environment.torch.get("vram_free") if environment else None
    folder = Path(params.engines_dir)
    printer.line("est_cli_heading")
    for row in estimate_lines(promised, free_space(folder), free_vram if isinstance(free_vram, int) else None, folder):
        value, source = printer.word(row.value), printer.word(row.source)
        print(f"  {t(row.label, printer.lang)}: {value}  ({source})", file=printer.out)
    printer.line("est_assumes")


def _save(params: BakedParams, runtime: RuntimeDefaults, loaded: Runtime | None, printer: Printer) -> int:
    saved = save_config(params, runtime, loaded)
    printer.problems(saved.problems)
    if not saved.ok:
        print(printer.word(saved.reason), file=printer.err)
        if saved.outcome == "refused":
            printer.line("nothing_written", printer.err)
        return EXIT_CODES[saved.outcome]
    for note in saved.notes:
        print(printer.word(note), file=printer.err)
    print(str(saved.config_path), file=printer.out)
    return 0


def check(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    printer = Printer(args.lang, out, err, args.debug)
    path = Path(args.config)
    try:
        read_check_config(path)
    except ConfigError as problem:
        print(labelled(t("sev_error", args.lang), printer.word(problem.message), args.lang), file=err)
        return EXIT_INVALID
    if args.warmup < 0 or args.frames < 1:
        printer.line("cli_bad_frames", err)
        return EXIT_INVALID
    result = run_cancellable(
        lambda cancel: run_check(path, check_options(args), printer.event_printer(), cancel),
        lambda: printer.line("cancelling", err),
    )
    code = printer.check(result)
    if result.ok and result.image_path:
        print(str(result.image_path), file=out)
    return code


def probe(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    printer = Printer(args.lang, out, err)
    spec = child_spec(args)
    try:
        environment = probe_environment(spec, refresh=args.refresh)
    except ProbeError as problem:
        print(labelled(t("sev_error", args.lang), printer.word(problem.message), args.lang), file=err)
        return EXIT_CODES["unavailable"]
    missing = environment.missing()
    if environment.no_nvidia:  # the root cause first, before any detail
        print(printer.word(msg("cli_missing", what=missing[0])), file=err)
    if args.json:
        print(json.dumps(environment.report, indent=2), file=out)
    else:
        interpreter = environment.python.get("interpreter")
        source = chosen_by(environment) or "app"
        print(f"{t('env_python', args.lang):26} {interpreter}  ({t(f'python_chosen_{source}', args.lang)})", file=out)
        for key, value in environment.summary().items():
            none = t("env_none_gpu" if key in ("gpu", "cuda") else "env_none", args.lang)
            shown = none if value is None else value
            if key == "vram_total" and isinstance(value, int):
                from sdprep.text import human_size

                shown = human_size(value, args.lang)
            print(f"{key:26} {shown}", file=out)
        for name, supported in environment.features.items():
            mark = {True: t("yes", args.lang), False: t("no", args.lang)}.get(supported, t("unknown", args.lang))
            print(f"{'feature ' + name:26} {mark}", file=out)
        for feature, reason in environment.installed():
            shown = printer.word(reason) if reason else t("env_installed_ok", args.lang)
            print(f"{'installed ' + feature.name:26} {shown}", file=out)
    mismatch = environment.diffusers_mismatch()
    if mismatch is not None:
        print(labelled(t("sev_warning", args.lang), printer.word(mismatch), args.lang), file=err)
    for line in [] if environment.no_nvidia else missing:
        print(printer.word(msg("cli_missing", what=line)), file=err)
    return EXIT_CODES["unavailable"] if missing else 0


def listing(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    printer = Printer(args.lang, out, err)
    root = Path(args.engines_dir)
    disk = disk_use(root)
    models = list_models(root, disk)
    if args.json:
        print(json.dumps([model.as_dict() for model in models], indent=2), file=out)
        return 0
    if not models:
        printer.line("lib_empty_plain", folder=root.resolve())
    for model in models:
        print(printer.word(model.headline()), file=out)
        if model.size is not None:
            print(f"    {printer.word(msg('lib_model_size', size=Size(model.size)))}", file=out)
        for variant in model.variants:
            print(f"    {printer.word(variant.headline())}", file=out)
        if model.config_outside:
            print(f"    {printer.word(msg('lib_config_outside'))}", file=out)
        if model.skipped:
            print(f"    {printer.word(msg('lib_skipped', reasons=model.skipped_summary))}", file=out)
    if models:
        print(printer.word(disk_message(root, disk)), file=out)
    return 0
