"""Failure and timing behaviours of the stand-in, chosen per process.

A mode comes from STANDIN_SD_MODE, or else from the model id: a last path
component that starts with a mode name ("standin/hang-model" -> hang). That
lets one test pick a behaviour per job without touching the environment.

  success          build/load normally
  slow             sleep STANDIN_SLOW_SECONDS per engine (in STANDIN_SLOW_STEPS steps),
                   printing "[slow] <stage> <engine> k/n" progress lines to stdout; while the
                   file named by STANDIN_HOLD exists, it waits after each such line (a test
                   holds a build running for as long as it needs, however slow the machine)
  exception        RuntimeError("CUDA error: an illegal memory access was encountered")
  exporterror      the UNet's ONNX export fails with the tensor size mismatch seen on a GPU (docs/streamdiffusion-facts.md §13)
  crash            the process kills itself with SIGSEGV (os.abort() on Windows)
  oomkill          the process kills itself with SIGKILL (as the Linux OOM killer does)
  hang             start a sleeping grandchild (pid -> STANDIN_GRANDCHILD_PIDFILE),
                   print "hanging", then sleep forever
  fallback         UNet build hits CUDA OOM -> logged PyTorch fallback, no UNet engine
  rebuild_on_load  when loading (not compile-only), rewrite the UNet engine
  loadfail         when loading (not compile-only), fail with "UNet engine batch mismatch"
  slowframes       each frame takes STANDIN_FRAME_SECONDS

exception/crash/oomkill/hang strike right after "Model loading succeeded"; with
STANDIN_FAIL_STAGE=build, crash/oomkill/hang strike instead while the first engine
is being built (its .onnx intermediate already on disk), as a real driver crash would.

Which fork it imitates (STANDIN_SD_FORK):

  forkni (default)  the config loader reads static_shapes, builder_optimization_level,
                    vae_builder_optimization_level, fp8, fp8_allow_fp16_fallback; the
                    builder writes build_stats.json beside each engine
  livepeer          the loader drops those keys (a fixed whitelist) and the builder
                    writes no build_stats.json (profile_facts §2, §4)

STANDIN_PRINT_FILE: a file whose text is printed to stdout, as it is, once the model is loaded (what a library
prints of its own: any bytes, any line length); nothing when the file does not exist.

STANDIN_FP8_QDQ_LAYERS: the Q/DQ layer count an FP8 build reports in build_stats.json
(default 1848); "none" = the quantise stage failed and no count is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import PurePosixPath

MODES = (
    "success",
    "slow",
    "exception",
    "exporterror",
    "crash",
    "oomkill",
    "hang",
    "fallback",
    "rebuild_on_load",
    "loadfail",
    "slowframes",
)

ILLEGAL_ACCESS = "CUDA error: an illegal memory access was encountered"
SIZE_MISMATCH = "The size of tensor a (8192) must match the size of tensor b (4096) at non-singleton dimension 1"


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


FORKS = ("forkni", "livepeer")


def fork() -> str:
    """The fork imitated: STANDIN_SD_FORK, forkni unless set."""
    chosen = (os.environ.get("STANDIN_SD_FORK") or "forkni").strip().lower()
    if chosen not in FORKS:
        raise ValueError(f"STANDIN_SD_FORK={chosen!r} is not one of {', '.join(FORKS)}")
    return chosen


def select_mode(model_id_or_path: str) -> str:
    forced = (os.environ.get("STANDIN_SD_MODE") or "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"STANDIN_SD_MODE={forced!r} is not one of {', '.join(MODES)}")
        return forced
    last = PurePosixPath(str(model_id_or_path).replace("\\", "/")).name.lower()
    # Longest names first so "slowframes-x" is not taken for "slow".
    for mode in sorted(MODES, key=len, reverse=True):
        if last.startswith(mode):
            return mode
    return "success"


class Behaviour:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.fail_stage = (os.environ.get("STANDIN_FAIL_STAGE") or "load").lower()
        self._struck = False

    # -- points the wrapper calls -------------------------------------------------
    def after_model_load(self) -> None:
        printed = os.environ.get("STANDIN_PRINT_FILE")
        if printed and os.path.isfile(printed):
            with open(printed, encoding="utf-8", errors="replace") as handle:
                print(handle.read(), flush=True)
        if self.mode == "exception":
            raise RuntimeError(ILLEGAL_ACCESS)
        if self.fail_stage != "build":
            self._strike()

    def on_stage(self, stage: str, kind: str) -> None:
        """Called by the pretend builder before each build stage of each engine."""
        if self.mode == "slow" and stage in ("export", "build"):
            # Half before the ONNX export, half in the TensorRT build (where the .onnx file exists, as in
            # the real fork, whose engine build takes minutes after the export).
            steps = max(1, int(_seconds("STANDIN_SLOW_STEPS", 4)))
            pause = _seconds("STANDIN_SLOW_SECONDS", 0.5) / steps / 2
            verb = "exporting" if stage == "export" else "building"
            for k in range(1, steps + 1):
                time.sleep(pause)
                print(f"[slow] {verb} {kind} {k}/{steps}", flush=True)
                hold = os.environ.get("STANDIN_HOLD")
                while hold and os.path.exists(hold):
                    time.sleep(0.02)
        if self.mode == "exporterror" and kind == "unet" and stage == "export":
            raise RuntimeError(SIZE_MISMATCH)
        if self.mode == "fallback" and kind == "unet" and stage == "optimize":
            import torch

            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of "
                "23.99 GiB of which 1.02 GiB is free."
            )
        if self.fail_stage == "build" and stage == "optimize" and not self._struck:
            self._strike()

    def frame_delay(self) -> None:
        if self.mode == "slowframes":
            time.sleep(_seconds("STANDIN_FRAME_SECONDS", 0.05))

    # -- the process-level behaviours ----------------------------------------------
    def _strike(self) -> None:
        self._struck = True
        if self.mode == "crash":
            sys.stdout.flush()
            sys.stderr.flush()
            if os.name == "nt":
                os.abort()
            os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(5)  # the signal is delivered asynchronously on some platforms
        elif self.mode == "oomkill":
            sys.stdout.flush()
            sys.stderr.flush()
            kill = getattr(signal, "SIGKILL", None)
            if kill is None:  # no SIGKILL on Windows: end as abruptly as possible
                os._exit(137)
            os.kill(os.getpid(), kill)
            time.sleep(5)
        elif self.mode == "hang":
            self._hang()

    def _hang(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        pidfile = os.environ.get("STANDIN_GRANDCHILD_PIDFILE")
        if pidfile:
            with open(pidfile, "w", encoding="utf-8") as handle:
                handle.write(f"{child.pid}\n")
        print("hanging", flush=True)
        while True:
            time.sleep(0.2)
