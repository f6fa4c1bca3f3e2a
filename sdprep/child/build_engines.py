"""Child script: build the engines of one config through StreamDiffusion's own config loader. Stdlib only.

Run by path with the Python that has StreamDiffusion: `python build_engines.py CONFIG.json`. It calls
`create_wrapper_from_config(config, compile_engines_only=True)` with the very config that will be written, so the
engine folders it builds are the ones the inference script's `create_wrapper_from_config(config)` looks for.
A fork without compile-only mode builds while constructing the wrapper; the process then exits and frees the GPU.

Progress comes from two places that need no cooperation from StreamDiffusion: its log messages (model load,
LoRA fusing) and the engine folder (an ONNX or engine file appearing means that engine is being built). Where the
fork and TensorRT allow it, TensorRT's own phases and steps come too, and Cancel stops TensorRT cleanly (trt_progress).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from protocol import emit, end_with_parent, stop_requests  # run by path: sys.path[0] is this folder
from trt_progress import attach_progress

# Exit code of a build that stopped because the parent asked it to (the app's "cancelled").
EXIT_STOPPED = 130

# The engine files StreamDiffusion writes (docs/streamdiffusion-facts.md §1.3); the parent words them, the child only
# names them.
ENGINE_FILES = ("unet", "vae_encoder", "vae_decoder", "cnet", "safety_checker")
# Log message fragments (lower case) that mark a stage; loading the model is announced by build() itself.
# Only for showing progress: success is decided by the exit code, the result event and the engine files on disk.
LOG_STAGES = (
    ("loading lora", "fuse_loras"),
    ("merging", "fuse_loras"),
    ("fuse", "fuse_loras"),
    ("ipadapter module", "ipadapter"),
)


class StageLogHandler(logging.Handler):
    """Turns the first log message of each known step into a stage event."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().lower()
        except Exception:
            return
        for fragment, stage in LOG_STAGES:
            if fragment in text and stage not in self.seen:
                self.seen.add(stage)
                emit("stage", stage=stage)


class EngineWatcher(threading.Thread):
    """Watches the engine folder: an intermediate appearing starts an engine's stage, its .engine ends it."""

    def __init__(self, engine_dir: Path, interval: float = 0.2) -> None:
        super().__init__(name="engine-watcher", daemon=True)
        self.engine_dir = engine_dir
        self.interval = interval
        self.stop_event = threading.Event()
        self.before = self._snapshot()
        self.started: set[tuple[str, str]] = set()
        self.finished: set[tuple[str, str]] = set()

    def _snapshot(self) -> dict[str, float]:
        if not self.engine_dir.is_dir():
            return {}
        found: dict[str, float] = {}
        for path in self.engine_dir.rglob("*"):
            try:
                if path.is_file():
                    found[str(path)] = path.stat().st_mtime
            except OSError:
                continue
        return found

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.scan()
        self.scan()

    def scan(self) -> None:
        for name, mtime in self._snapshot().items():
            if self.before.get(name) == mtime:
                continue
            path = Path(name)
            folder = str(path.parent)
            kind = path.name.split(".")[0]
            if kind not in ENGINE_FILES:
                continue
            # A ControlNet's stage names its folder (controlnet_<id>--...), so two ControlNets are two stages.
            stage = f"engine:{kind}:{path.parent.name.split('--')[0]}" if kind == "cnet" else f"engine:{kind}"
            if path.suffix == ".engine":
                if (folder, kind) not in self.finished:
                    self.finished.add((folder, kind))
                    emit("engine_written", stage=stage, file=path.name, bytes=path.stat().st_size)
            elif (folder, kind) not in self.started:
                self.started.add((folder, kind))
                emit("stage", stage=stage)


def build(config: dict[str, Any], stop: threading.Event) -> dict[str, Any]:
    emit("stage", stage="import")
    import streamdiffusion  # the child's own StreamDiffusion: the user's venv, or --streamdiffusion-src
    from streamdiffusion.config import create_wrapper_from_config

    wrapper_class: Any = getattr(streamdiffusion, "StreamDiffusionWrapper", None)
    if wrapper_class is None:
        wrapper_class = importlib.import_module("streamdiffusion.wrapper").StreamDiffusionWrapper
    compile_only = "compile_engines_only" in inspect.signature(wrapper_class).parameters
    # An empty prompt keeps create_wrapper_from_config from calling prepare(): building needs no prompt.
    build_config = {**config, "prompt": ""}
    build_config.pop("prompt_blending", None)
    build_config.pop("seed_blending", None)
    attach_progress(stop)
    emit("stage", stage="load_model")
    if compile_only:
        create_wrapper_from_config(build_config, compile_engines_only=True)
    else:
        emit("log", code="no_compile_only")
        create_wrapper_from_config(build_config)
    return {"compile_only": compile_only, "streamdiffusion": getattr(streamdiffusion, "__file__", None)}


def main(argv: list[str]) -> int:
    end_with_parent()
    stop = stop_requests()
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger().addHandler(StageLogHandler())
    watcher = EngineWatcher(Path(config["engine_dir"]))
    watcher.start()
    started = time.time()
    try:
        result = build(config, stop)
    except BaseException as error:  # everything, SystemExit included, becomes a reason for people
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        if stop.is_set():  # the failure is TensorRT abandoning the build, as asked
            emit("log", code="child_stopped")
            return EXIT_STOPPED
        emit("error", type=type(error).__name__, message=str(error).strip().splitlines()[0] if str(error) else "")
        return 1
    finally:
        watcher.stop_event.set()
        watcher.join(timeout=2)
    emit("stage", stage="finished")
    emit("result", seconds=time.time() - started, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
