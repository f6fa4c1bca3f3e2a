"""The headless CLI: the same parameters, rules, config and build as the form, from flags.

    python gradio_prepare.py build [flags] [--config-only]   write config.yaml (and build the engines)
    python gradio_prepare.py build --from-config PATH        rebuild an existing config's engines here
    python gradio_prepare.py build ... --check               build, then load the engines and time frames
    python gradio_prepare.py check PATH/config.yaml          load a config's engines, run frames, report fps
    python gradio_prepare.py probe                           what the build Python can do
    python gradio_prepare.py list                            the prepared models

Exit codes: 0 built / up to date / written, 1 build failed, 2 invalid input, 130 cancelled (Ctrl-C).
On success the last line of stdout is the config.yaml path.
`check`: 0 passed, 1 failed (or cannot check here: no GPU, GPU busy), 2 bad path or config, 130 cancelled;
on success the last line of stdout is the output image's path.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sdprep import derive
from sdprep.config import ConfigError, RuntimeDefaults, load_params, render_config, write_config
from sdprep.engines import list_models
from sdprep.jobs.build import BuildEvent, BuildOptions, BuildResult
from sdprep.jobs.check import (
    DEFAULT_FRAMES,
    DEFAULT_WARMUP,
    CheckOptions,
    CheckResult,
    build_and_check,
    read_check_config,
    run_check,
)
from sdprep.jobs.environment import ProbeError, probe
from sdprep.jobs.process import ChildSpec
from sdprep.params import (
    CFG_TYPE_CHOICES,
    CONSISTENCY_LORA_CHOICES,
    DEFAULTS,
    FAMILY_CHOICES,
    IPADAPTER_TYPE_CHOICES,
    MAX_CONTROLNETS,
    SCHEDULER_CHOICES,
    BakedParams,
    params_from_values,
)
from sdprep.validate import Problem, has_errors, validate

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130
HEADLESS_COMMANDS = ("build", "probe", "list", "check")

# Form field -> the flag a CLI user typed, so every message names what to fix.
FIELD_FLAGS: dict[str, str] = {
    "model": "--model",
    "model_family": "--model-family",
    "denoise_steps": "--steps",
    "consistency_lora": "--consistency-lora",
    "scheduler": "--scheduler",
    "cfg_type": "--cfg-type",
    "width": "--width",
    "height": "--height",
    "frame_buffer_size": "--frame-buffer-size",
    "use_tiny_vae": "--tiny-vae",
    "use_cached_attn": "--cached-attn",
    "cache_maxframes": "--cache-maxframes",
    "use_safety_checker": "--safety-checker",
    "lora_json": "--lora",
    "use_controlnet": "--controlnet",
    "controlnets": "--controlnet",
    "use_ipadapter": "--ipadapter",
    "ipadapter_model_path": "--ipadapter",
    "ipadapter_encoder_path": "--ipadapter-encoder",
    "ipadapter_tokens": "--ipadapter-tokens",
    "ipadapter_type": "--ipadapter-type",
    "engines_dir": "--engines-dir",
}


def flag_for(field: str) -> str:
    if field.startswith("controlnets["):
        index = int(field[len("controlnets[") : field.index("]")])
        return f"--controlnet #{index + 1}"
    return FIELD_FLAGS.get(field, field)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradio_prepare.py",
        description="Prepare StreamDiffusion models: TensorRT engines + config.yaml. Without a command, start the UI.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the web UI (the default)")
    add_serve_flags(serve)

    build = commands.add_parser("build", help="write config.yaml and build its engines")
    form = build.add_argument_group("baked parameters (the form's fields)")
    form.add_argument("--model", default=DEFAULTS.model, help="HF id, diffusers folder or .safetensors/.ckpt")
    form.add_argument("--model-family", choices=FAMILY_CHOICES, default=DEFAULTS.model_family)
    form.add_argument("--steps", type=int, default=DEFAULTS.denoise_steps, help="denoising steps 1-8")
    form.add_argument("--consistency-lora", choices=CONSISTENCY_LORA_CHOICES, default=DEFAULTS.consistency_lora)
    form.add_argument("--scheduler", choices=SCHEDULER_CHOICES, default=DEFAULTS.scheduler)
    form.add_argument("--cfg-type", choices=CFG_TYPE_CHOICES, default=DEFAULTS.cfg_type)
    form.add_argument("--width", type=int, default=DEFAULTS.width)
    form.add_argument("--height", type=int, default=DEFAULTS.height)
    form.add_argument("--frame-buffer-size", type=int, default=DEFAULTS.frame_buffer_size)
    form.add_argument("--tiny-vae", action=argparse.BooleanOptionalAction, default=DEFAULTS.use_tiny_vae)
    form.add_argument("--cached-attn", action="store_true", default=DEFAULTS.use_cached_attn)
    form.add_argument("--cache-maxframes", type=int, default=DEFAULTS.cache_maxframes)
    form.add_argument("--safety-checker", action="store_true", default=DEFAULTS.use_safety_checker)
    form.add_argument("--lora", default=DEFAULTS.lora_json, metavar="JSON", help='{"hf_id_or_path": scale, ...}')
    form.add_argument(
        "--controlnet",
        action="append",
        default=[],
        metavar="MODEL_ID[,preprocessor=NAME][,channels=N][,enabled=false]",
        help=f"repeatable, at most {MAX_CONTROLNETS}",
    )
    form.add_argument("--ipadapter", metavar="PATH", help="IP-Adapter weights (turns IP-Adapter on)")
    form.add_argument("--ipadapter-encoder", metavar="PATH", default=DEFAULTS.ipadapter_encoder_path)
    form.add_argument("--ipadapter-tokens", type=int, choices=(4, 16), default=DEFAULTS.ipadapter_tokens)
    form.add_argument("--ipadapter-type", choices=IPADAPTER_TYPE_CHOICES, default=DEFAULTS.ipadapter_type)
    form.add_argument("--engines-dir", default=None, metavar="DIR", help=f"default: {DEFAULTS.engines_dir}")
    build.add_argument("--from-config", metavar="PATH", help="rebuild the engines of an existing config.yaml")
    build.add_argument("--config-only", action="store_true", help="write config.yaml without building")
    build.add_argument("--force", action="store_true", help="rebuild even when the engines are up to date")
    build.add_argument("--no-wait", action="store_true", help="fail instead of waiting when the GPU is busy")
    build.add_argument("--check", action="store_true", help="after the build, load the engines and time frames")
    add_check_flags(build)
    add_child_flags(build)
    build.add_argument("--debug", action="store_true", help="print the raw build log and tracebacks")

    check = commands.add_parser("check", help="load a config's engines as an inference script would, report fps")
    check.add_argument("config", metavar="PATH", help="a config.yaml (or configs/<variant>.yaml) written by a build")
    add_check_flags(check)
    check.add_argument("--no-wait", action="store_true", help="fail instead of waiting when the GPU is busy")
    check.add_argument("--refresh", action="store_true", help="probe the environment again instead of the cache")
    add_child_flags(check)
    check.add_argument("--debug", action="store_true", help="print the raw log and tracebacks")

    probe_command = commands.add_parser("probe", help="what the build Python can build")
    add_child_flags(probe_command)
    probe_command.add_argument("--refresh", action="store_true", help="probe again instead of using the cache")
    probe_command.add_argument("--json", action="store_true")

    list_command = commands.add_parser("list", help="the prepared models under the engines folder")
    list_command.add_argument("--engines-dir", default=DEFAULTS.engines_dir, metavar="DIR")
    list_command.add_argument("--json", action="store_true")
    return parser


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to serve on (default 0.0.0.0, or $SDPREP_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7861, or $SDPREP_PORT)")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="or $SDPREP_AUTH")
    add_child_flags(parser)


def add_check_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N", help="untimed frames first")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N", help="timed frames")


def check_options(args: argparse.Namespace) -> CheckOptions:
    return CheckOptions(
        child=child_spec(args),
        warmup=args.warmup,
        frames=args.frames,
        wait_for_gpu=not args.no_wait,
        refresh_probe=getattr(args, "refresh", False),
    )


def add_child_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python", metavar="PATH", help="Python with StreamDiffusion (default $SDPREP_PYTHON)")
    parser.add_argument(
        "--streamdiffusion-src", metavar="DIR", help="put this StreamDiffusion source folder first on its path"
    )
    parser.add_argument("--gpu", type=int, default=0, help="GPU index for the build")


def child_spec(args: argparse.Namespace) -> ChildSpec:
    return ChildSpec(python=args.python, streamdiffusion_src=args.streamdiffusion_src, gpu=args.gpu)


def parse_controlnet(text: str, index: int) -> tuple[dict[str, Any], list[Problem]]:
    field = f"controlnets[{index}]"
    model_id, *options = [part.strip() for part in text.split(",")]
    slot: dict[str, Any] = {"model_id": model_id, "preprocessor": "passthrough"}
    problems: list[Problem] = []
    for option in options:
        key, _, value = option.partition("=")
        if key == "preprocessor" and value:
            slot["preprocessor"] = value
        elif key == "channels":
            try:
                slot["conditioning_channels"] = int(value)
            except ValueError:
                problems.append(
                    Problem(
                        f"{field}.conditioning_channels", "error", f"channels must be a whole number, not {value!r}."
                    )
                )
        elif key == "enabled" and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            slot["enabled"] = value.lower() in ("true", "1", "yes")
        else:
            problems.append(
                Problem(
                    f"{field}.model_id",
                    "error",
                    f"unknown option {option!r}; use preprocessor=NAME, channels=N or enabled=false.",
                )
            )
    return slot, problems


def params_from_args(args: argparse.Namespace) -> tuple[BakedParams, list[Problem]]:
    problems: list[Problem] = []
    if len(args.controlnet) > MAX_CONTROLNETS:
        problems.append(
            Problem("controlnets", "error", f"at most {MAX_CONTROLNETS} ControlNets, not {len(args.controlnet)}.")
        )
    slots = []
    for index, text in enumerate(args.controlnet):
        slot, slot_problems = parse_controlnet(text, index)
        slots.append(slot)
        problems += slot_problems
    values = {
        "model": args.model,
        "model_family": args.model_family,
        "denoise_steps": args.steps,
        "consistency_lora": args.consistency_lora,
        "scheduler": args.scheduler,
        "cfg_type": args.cfg_type,
        "width": args.width,
        "height": args.height,
        "frame_buffer_size": args.frame_buffer_size,
        "use_tiny_vae": args.tiny_vae,
        "use_cached_attn": args.cached_attn,
        "cache_maxframes": args.cache_maxframes,
        "use_safety_checker": args.safety_checker,
        "lora_json": args.lora,
        "use_controlnet": bool(slots),
        "controlnets": slots,
        "use_ipadapter": args.ipadapter is not None,
        # `--ipadapter ""` is an empty path (an error), not the default adapter.
        "ipadapter_model_path": DEFAULTS.ipadapter_model_path if args.ipadapter is None else args.ipadapter,
        "ipadapter_encoder_path": args.ipadapter_encoder,
        "ipadapter_tokens": args.ipadapter_tokens,
        "ipadapter_type": args.ipadapter_type,
        # `--engines-dir ""` is refused by validate(), not silently replaced by the default folder.
        "engines_dir": DEFAULTS.engines_dir if args.engines_dir is None else args.engines_dir,
    }
    return params_from_values(values), problems


def print_problems(problems: list[Problem], out: TextIO) -> None:
    for problem in problems:
        print(f"{problem.severity}: {flag_for(problem.field)}: {problem.message}", file=out)


def command_build(args: argparse.Namespace, runtime: RuntimeDefaults, out: TextIO, err: TextIO) -> int:
    if args.from_config:
        try:
            params, notes = load_params(Path(args.from_config))
        except ConfigError as error:
            print(f"error: --from-config: {error}", file=err)
            return EXIT_INVALID
        # The config's own engines folder only if it exists here: a config copied from another machine
        # names that machine's folder, so it is rebuilt into ./engines unless --engines-dir says otherwise.
        engines_dir = (
            args.engines_dir
            if args.engines_dir is not None
            else (params.engines_dir if Path(params.engines_dir).is_dir() else DEFAULTS.engines_dir)
        )
        params = params_from_values({**params.__dict__, "engines_dir": engines_dir})
        for note in notes:
            print(f"note: {note}", file=err)
        problems: list[Problem] = []
    else:
        params, problems = params_from_args(args)
    if args.config_only and args.check:
        print("error: --check: a check loads built engines; it cannot follow --config-only.", file=err)
        return EXIT_INVALID
    if args.config_only:
        problems += validate(params)
        print_problems(problems, err)
        if has_errors(problems):
            print("Nothing was written.", file=err)
            return EXIT_INVALID
        path = derive.config_path(params)
        try:
            write_config(path, render_config(params, runtime))
        except OSError as error:
            print(f"error: --engines-dir: cannot write {path}: {error.strerror or error}", file=err)
            return EXIT_FAILED
        print(str(path), file=out)
        return EXIT_OK
    if has_errors(problems):
        print_problems(problems, err)
        print("Nothing was written.", file=err)
        return EXIT_INVALID
    return run_cli_build(args, params, runtime, out, err)


T = TypeVar("T")


def run_cancellable(work: Callable[[threading.Event], T], err: TextIO) -> T:
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
        print("Cancelling...", file=err, flush=True)
        cancel.set()
        finished.wait()
    if not box:
        raise RuntimeError("the build thread ended without a result")
    return box[0]


def run_cli_build(
    args: argparse.Namespace, params: BakedParams, runtime: RuntimeDefaults, out: TextIO, err: TextIO
) -> int:
    options = BuildOptions(child=child_spec(args), force=args.force, wait_for_gpu=not args.no_wait, check=args.check)
    show = event_printer(args.debug, out)
    built_code: list[int] = []  # the build's report, printed before its check starts

    def on_built(build: BuildResult) -> None:
        built_code.append(report(build, args.debug, out, err, last_line=not args.check))

    build, check = run_cancellable(
        lambda cancel: build_and_check(params, runtime, options, show, cancel, check_options(args), on_built), err
    )
    code = built_code[0]
    if code != EXIT_OK or not args.check:
        return code
    if check is None:  # cancelled between the build and its check
        print(str(build.config_path), file=out)
        return EXIT_CANCELLED
    code = report_check(check, out, err)
    print(str(build.config_path), file=out)  # the build's contract: its last stdout line is the config path
    return code


def report(result: BuildResult, debug: bool, out: TextIO, err: TextIO, last_line: bool = True) -> int:
    if result.outcome == "refused":
        print_problems(result.problems, err)
        print(f"error: {result.reason}", file=err)
        return EXIT_INVALID
    if result.outcome in ("failed", "cancelled"):
        print(f"{result.outcome}: {result.reason}", file=err)
        if result.outcome == "failed" and result.log_tail:
            print("Last lines of the build log:", file=err)
            for line in result.log_tail[-12:]:
                print(f"  {line}", file=err)
        if result.log_path:
            print(f"Full log: {result.log_path}", file=err)
        return EXIT_CANCELLED if result.outcome == "cancelled" else EXIT_FAILED
    for engine in result.engines:
        state = "reused" if engine["reused"] else "built"
        print(f"  {engine['path']}  {engine['size']:,} bytes  ({state})", file=out)
    if result.stages and debug:
        print(json.dumps(result.stages, indent=2), file=out)
    print(result.reason, file=out)
    if last_line:
        print(str(result.config_path), file=out)
    return EXIT_OK


def command_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = Path(args.config)
    try:
        read_check_config(path)
    except ConfigError as error:
        print(f"error: {error}", file=err)
        return EXIT_INVALID
    if args.warmup < 0 or args.frames < 1:
        print("error: --warmup must be 0 or more and --frames 1 or more.", file=err)
        return EXIT_INVALID
    options = check_options(args)
    show = event_printer(args.debug, out)
    result = run_cancellable(lambda cancel: run_check(path, options, show, cancel), err)
    code = report_check(result, out, err)
    if code == EXIT_OK and result.image_path:
        print(str(result.image_path), file=out)
    return code


def event_printer(debug: bool, out: TextIO) -> Callable[[BuildEvent], None]:
    def show(event: BuildEvent) -> None:
        if event.kind == "raw":
            if debug:
                print(f"  {event.message}", file=out, flush=True)
        else:
            marker = {"stage": "==>", "log": "   ", "waiting": "..."}[event.kind]
            print(f"[{event.elapsed:7.1f}s] {marker} {event.message}", file=out, flush=True)

    return show


def report_check(result: CheckResult, out: TextIO, err: TextIO) -> int:
    """The check's numbers on stdout; why it failed on stderr. Exit code: 0 passed, 1 failed/refused, 130."""
    if result.outcome == "refused":
        print(f"error: {result.reason}", file=err)
        return EXIT_FAILED
    if result.outcome == "cancelled":
        print(f"cancelled: {result.reason}", file=err)
        return EXIT_CANCELLED
    if result.numbers():
        print(f"  {result.numbers()}", file=out)
    if result.outcome == "failed":
        print(f"failed: {result.reason}", file=err)
        if result.log_tail:
            print("Last lines of the check log:", file=err)
            for line in result.log_tail[-12:]:
                print(f"  {line}", file=err)
        if result.log_path:
            print(f"Full log: {result.log_path}", file=err)
        return EXIT_FAILED
    if result.variant:
        print(f"  recorded in build.json (variant {result.variant})", file=out)
    print(f"Check passed: {result.speed or result.reason}", file=out)
    return EXIT_OK


def command_probe(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        environment = probe(child_spec(args), refresh=args.refresh)
    except ProbeError as error:
        print(f"error: {error}", file=err)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(environment.report, indent=2), file=out)
    else:
        for key, value in environment.summary().items():
            print(f"{key:26} {value}", file=out)
        for name, supported in environment.features.items():
            print(f"{'feature ' + name:26} {supported}", file=out)
    missing = environment.missing()
    for line in missing:
        print(f"missing: {line}", file=err)
    return EXIT_FAILED if missing else EXIT_OK


def command_list(args: argparse.Namespace, out: TextIO) -> int:
    models = list_models(Path(args.engines_dir))
    if args.json:
        print(json.dumps([model.as_dict() for model in models], indent=2), file=out)
        return EXIT_OK
    if not models:
        print(f"No prepared models in {Path(args.engines_dir).resolve()}.", file=out)
    for model in models:
        print(model.headline(), file=out)
        for variant in model.variants:
            print(f"    {variant.headline()}", file=out)
    return EXIT_OK


def main(
    argv: list[str],
    runtime: RuntimeDefaults,
    serve: Callable[[argparse.Namespace], int],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # no command: start the UI, with any serve flags given
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "build":
            return command_build(args, runtime, out, err)
        if args.command == "probe":
            return command_probe(args, out, err)
        if args.command == "check":
            return command_check(args, out, err)
        return command_list(args, out)
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except Exception as error:  # a bug, not a user mistake: one line, the traceback only with --debug
        if getattr(args, "debug", False):
            traceback.print_exc(file=err)
        print(f"error: {type(error).__name__}: {error} (run with --debug for details)", file=err)
        return EXIT_FAILED
