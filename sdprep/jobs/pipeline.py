"""The build followed by its check: what `build --check` and the page's Build (check box on) run.

An up-to-date build reuses the check already passed on its unchanged engines instead of loading them again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from sdprep.config import RuntimeDefaults
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.check import CheckOptions, CheckResult, run_check
from sdprep.jobs.progress import JobEvent
from sdprep.messages import msg
from sdprep.model_folder import records_or_empty
from sdprep.params import BakedParams
from sdprep.paths import inside


def recorded_check(build: BuildResult) -> CheckResult | None:
    """For an up-to-date build, the passed check already recorded on these very engines, instead of a new one.

    "Up to date" proved the engine files unchanged since their build on this GPU and TensorRT; a check passed after
    that build measured them. Running it again would only delay the answer (loading engines takes long on a GPU).
    `python gradio_prepare.py check` always measures anew.
    """
    if build.outcome != "up_to_date" or build.config_path is None or build.variant is None:
        return None
    folder = build.config_path.parent
    record = records_or_empty(folder).variants.get(build.variant)
    check = record.check if record else None
    if record is None or check is None or check.outcome != "passed" or check.checked_at < record.built_at:
        return None
    image = folder / (check.image or "")
    if (
        check.gpu != record.environment.get("gpu")
        or not check.image
        or not inside(folder, image)
        or not image.is_file()
    ):
        return None
    return CheckResult(
        outcome="passed",
        reason=msg("check_reused", checked_at=check.checked_at),
        config_path=build.config_path,
        load_seconds=check.load_seconds,
        mean_ms=check.mean_ms,
        p95_ms=check.p95_ms,
        fps=check.fps,
        peak_memory_bytes=check.peak_memory_bytes,
        device_used_bytes=check.device_used_bytes,
        image_path=image,
        gpu=check.gpu,
        width=check.width,
        height=check.height,
        steps=check.steps,
        frames=check.frames,
        warmup=check.warmup,
        variant=build.variant,
    )


def build_and_check(
    params: BakedParams,
    runtime: RuntimeDefaults,
    options: BuildOptions | None = None,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
    check_options: CheckOptions | None = None,
    on_built: Callable[[BuildResult], None] = lambda build: None,
) -> tuple[BuildResult, CheckResult | None]:
    """The build, then (when options.check and the engines are proven) its check; elapsed times run on.

    `on_built` gets the build's result as soon as it is known, before the check starts (to show it meanwhile).
    """
    options = options or BuildOptions()
    cancel = cancel or threading.Event()
    build = run_build(params, runtime, options, on_event, cancel)
    on_built(build)
    if not (options.check and build.ok and build.config_path) or cancel.is_set():
        return build, None
    earlier = recorded_check(build)
    if earlier is not None:
        on_event(JobEvent("log", build.duration, earlier.reason))
        return build, earlier
    check_options = replace(check_options or CheckOptions(), child=options.child, wait_for_gpu=options.wait_for_gpu)
    offset = build.duration
    check = run_check(
        build.config_path, check_options, lambda event: on_event(replace(event, elapsed=event.elapsed + offset)), cancel
    )
    return build, check
