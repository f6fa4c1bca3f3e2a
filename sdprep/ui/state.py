"""What one server keeps across pages and across hot reloads: its JobBoard, the last environment it probed, and its
settings (the engines folder, the build Python and GPU), which come from the command line, never from a request.

The settings are handed over as an object: `serve` (gradio_prepare.py) makes a ServerSettings from its flags and
launch() keeps it here. A page served without serve() (the tests' and the benchmark's in-process pages) has the
documented SDPREP_* variables' settings instead, read on each use.

Gradio's hot reload (`gradio gradio_prepare.py`) drops every module of the project from sys.modules and runs the
app file again, so a plain module-level JobBoard would be created anew and forget a running build. The server state
lives instead in a small module object without a file, which the reloader never drops; it is created once per
process (the `gr.NO_RELOAD` idea, for code that is not the app file).
"""

from __future__ import annotations

import os
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sdprep.jobs.background import BackgroundJob
from sdprep.jobs.board import JobBoard
from sdprep.jobs.environment import Environment, ProbeLane
from sdprep.jobs.job import JobResult
from sdprep.jobs.process import GPU_ENV, ChildSpec
from sdprep.params import DEFAULTS
from sdprep.paths import user_path

_HOLDER = "_sdprep_ui_server_state"
_create = threading.Lock()
ENGINES_DIR_ENV = "SDPREP_ENGINES_DIR"


@dataclass(frozen=True)
class ServerSettings:
    """What the server builds into and with: its engines folder and its build Python (with its StreamDiffusion source
    and GPU)."""

    engines_root: Path
    child: ChildSpec

    @classmethod
    def of(cls, engines_dir: str | None, child: ChildSpec) -> ServerSettings:
        """`engines_dir` as given (~ and relative paths resolved), else $SDPREP_ENGINES_DIR, else ./engines."""
        folder = engines_dir or os.environ.get(ENGINES_DIR_ENV) or str(DEFAULTS.engines_dir)
        return cls(user_path(folder).resolve(), child)

    @classmethod
    def from_environment(cls) -> ServerSettings:
        """$SDPREP_ENGINES_DIR and $SDPREP_GPU (ChildSpec reads $SDPREP_PYTHON and $SDPREP_STREAMDIFFUSION_SRC)."""
        try:
            gpu = max(0, int(os.environ.get(GPU_ENV, "0")))
        except ValueError:
            gpu = 0
        return cls.of(None, ChildSpec(gpu=gpu))


@dataclass
class ServerState:
    board: JobBoard = field(default_factory=JobBoard)
    settings: ServerSettings | None = None  # launch()'s; None: the environment's
    environment: Environment | None = None
    environment_job: BackgroundJob[JobResult] | None = None  # the setup or self-test the Environment tab runs
    probe_lane: ProbeLane = field(default_factory=ProbeLane)  # the server's probes, one at a time


def _state() -> ServerState:
    with _create:
        holder = sys.modules.get(_HOLDER)
        if holder is None:
            holder = types.ModuleType(_HOLDER, "sdprep UI server state (survives hot reload)")
            holder.__dict__["state"] = ServerState()
            sys.modules[_HOLDER] = holder
        # After a hot reload ServerState is a new class; the object kept is the old one, used by its attributes.
        return cast(ServerState, holder.__dict__["state"])


def job_board() -> JobBoard:
    """The server's one JobBoard: builds run in its threads and outlive pages (and hot reloads)."""
    return _state().board


def use_settings(settings: ServerSettings | None) -> None:
    """The server's settings from now on (None: the environment's again)."""
    _state().settings = settings


def settings() -> ServerSettings:
    # A state kept from before a hot reload that added the field has none yet: getattr.
    return getattr(_state(), "settings", None) or ServerSettings.from_environment()


def child_spec() -> ChildSpec:
    """The build Python: --python / --streamdiffusion-src / --gpu (or their environment variables)."""
    return settings().child


def engines_root() -> Path:
    """The one engines folder this server builds into, lists and deletes in (--engines-dir / $SDPREP_ENGINES_DIR)."""
    return settings().engines_root


def probe_lane() -> ProbeLane:
    """The server's one lane of probes (a state kept from before a hot reload may not have one yet)."""
    state = _state()
    with _create:
        if getattr(state, "probe_lane", None) is None:
            state.probe_lane = ProbeLane()
        return state.probe_lane


def last_environment() -> Environment | None:
    return _state().environment


def remember_environment(environment: Environment | None) -> None:
    _state().environment = environment


def environment_job() -> BackgroundJob[JobResult] | None:
    return _state().environment_job


def remember_environment_job(job: BackgroundJob[JobResult]) -> None:
    _state().environment_job = job
