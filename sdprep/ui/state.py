"""What one server keeps across pages and across hot reloads: its JobBoard and the last environment it probed.

Gradio's hot reload (`gradio gradio_prepare.py`) drops every module of the project from sys.modules and runs the
app file again, so a plain module-level JobBoard would be created anew and forget a running build. The server
state lives instead in a small module object without a file, which the reloader never drops; it is created once
per process (the `gr.NO_RELOAD` idea, for code that is not the app file).
"""

from __future__ import annotations

import os
import sys
import threading
import types

from sdprep.jobs.board import JobBoard
from sdprep.jobs.environment import Environment
from sdprep.jobs.process import ChildSpec

_HOLDER = "_sdprep_ui_server_state"
_create = threading.Lock()
GPU_ENV = "SDPREP_GPU"


def _holder() -> types.ModuleType:
    with _create:
        holder = sys.modules.get(_HOLDER)
        if holder is None:
            holder = types.ModuleType(_HOLDER, "sdprep UI server state (survives hot reload)")
            holder.board = JobBoard()  # type: ignore[attr-defined]
            holder.environment = None  # type: ignore[attr-defined]
            sys.modules[_HOLDER] = holder
        return holder


def job_board() -> JobBoard:
    """The server's one JobBoard: builds run in its threads and outlive pages (and hot reloads)."""
    return _holder().board  # type: ignore[no-any-return]


def child_spec() -> ChildSpec:
    """The build Python: $SDPREP_PYTHON / $SDPREP_STREAMDIFFUSION_SRC (read by ChildSpec), GPU from $SDPREP_GPU."""
    try:
        gpu = int(os.environ.get(GPU_ENV, "0"))
    except ValueError:
        gpu = 0
    return ChildSpec(gpu=gpu)


def last_environment() -> Environment | None:
    return _holder().environment  # type: ignore[no-any-return]


def remember_environment(environment: Environment | None) -> None:
    _holder().environment = environment  # type: ignore[attr-defined]
