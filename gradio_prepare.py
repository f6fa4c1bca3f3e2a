"""Prepare StreamDiffusion models: choose the baked parameters, build the TensorRT engines, write config.yaml.

    python gradio_prepare.py                 the web UI on http://0.0.0.0:7861
    python gradio_prepare.py build --help    the same from the command line
    python -m gradio gradio_prepare.py       the UI with hot reload (module-level `demo`)

The inference script loads engines/<model_slug>/config.yaml with StreamDiffusion's create_wrapper_from_config()
and changes runtime values with update_stream_params(). Those runtime values are not form fields: every config
starts from RUNTIME_DEFAULTS below.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading


def requirements_missing(error: ModuleNotFoundError) -> int:
    """A Python without the app's requirements (python3 instead of run.sh's .venv): one line saying how to start."""
    from sdprep.launcher import run_script
    from sdprep.text import system_language, t

    line = t("app_requirements_missing", system_language(), python=sys.executable, module=error.name, run=run_script())
    print(line, file=sys.stderr)
    return 3


try:
    from sdprep import cli
    from sdprep.config import RuntimeDefaults
except ModuleNotFoundError as missing:
    if (missing.name or "").startswith("sdprep"):
        raise
    sys.exit(requirements_missing(missing))

RUNTIME_DEFAULTS: RuntimeDefaults = {
    "sampler": "normal",
    "guidance_scale": 1.2,
    "delta": 0.7,
    "prompt": "",
    "negative_prompt": "blurry, low quality",
    "seed": 2,
    "controlnet_conditioning_scale": 1.0,
    "ipadapter_scale": 0.7,
}

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 7861


def serve(args: argparse.Namespace) -> int:
    from sdprep.jobs.process import ChildSpec
    from sdprep.ui.app import launch
    from sdprep.ui.state import ServerSettings

    # The page builds into and lists only this folder, with this build Python: settings of the server, never of a
    # request. (Under hot reload this runs again with every reload, with the same flags.)
    child = ChildSpec(python=args.python, streamdiffusion_src=args.streamdiffusion_src, gpu=args.gpu)
    settings = ServerSettings.of(args.engines_dir, child)
    host = args.host or os.environ.get("SDPREP_HOST") or DEFAULT_HOST
    port = args.port or int(os.environ.get("SDPREP_PORT") or DEFAULT_PORT)
    auth = args.auth or os.environ.get("SDPREP_AUTH")
    return launch(demo, host=host, port=port, auth=auth, settings=settings)


# Headless commands (and --help) run before the UI is built, so they start without importing gradio.
if __name__ == "__main__" and cli.is_headless(sys.argv[1:]):
    sys.exit(cli.main(sys.argv[1:], RUNTIME_DEFAULTS, serve))

try:
    from sdprep.ui.app import create_demo  # after the headless dispatch on purpose
except ModuleNotFoundError as missing:
    if (missing.name or "").startswith("sdprep"):
        raise
    sys.exit(requirements_missing(missing))

# Module-level for hot reload: `python -m gradio gradio_prepare.py` re-imports this module and serves `demo`.
demo = create_demo(RUNTIME_DEFAULTS)

if __name__ == "__main__":
    code = cli.main(sys.argv[1:], RUNTIME_DEFAULTS, serve)
    # Under `gradio gradio_prepare.py` the reloader runs this file again in its watcher thread, where launch()
    # returns at once: sys.exit() there would silently end the watcher, and with it hot reload.
    if threading.current_thread() is threading.main_thread():
        sys.exit(code)
