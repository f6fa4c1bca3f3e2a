"""What every stage of a build shares: the plan (what is built, and where) and how a stage ends the build.

A build runs five stages in order (jobs/build.py runs them, and holds the job's state):

    preflight      jobs/build_preflight.py   the form again, the probe, the machine's fit, the disk
    admission      jobs/build_admission.py   the model's lock, then the GPU's
    engine reuse   jobs/build_reuse.py       up to date? engines StreamDiffusion would wrongly reuse set aside
    child run      jobs/build_child.py       the rehearsal, then the build child, its progress streamed
    proof, record  jobs/build_record.py      the engines exist; build.json, the configs, the measure, the wording

Two of preflight's checks come after engine reuse, as an up-to-date build needs neither: the GPU's free memory, and
the disk when the build may have been up to date (else the disk is checked before the probe). A stage takes what it
needs as arguments and gives back what it found (dataclasses), or an `Ended` when the build stops there; the build
turns an `Ended` into its result, with the log and the stage timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import derive
from sdprep.config import RuntimeDefaults, make_config
from sdprep.engine_files import fingerprint, variant_id
from sdprep.jobs.job import Outcome
from sdprep.jobs.progress import Progress
from sdprep.messages import Message, Problem, msg
from sdprep.params import BakedParams


@dataclass(frozen=True)
class BuildPlan:
    """What one build makes and where, from parameters that passed validate(): the config the child builds from (the
    baked part, with RUNTIME_DEFAULTS) and the engines' identity. The config written after the build has the same
    baked part and the runtime values config_write.py chooses."""

    params: BakedParams
    runtime: RuntimeDefaults
    config: dict[str, Any]
    fingerprint: str
    engine_dir: Path
    variant: str

    @classmethod
    def of(cls, params: BakedParams, runtime: RuntimeDefaults) -> BuildPlan:
        config = make_config(params, runtime)  # valid params only: run_build() validates first
        variant = variant_id(derive.variant_name(params), config)
        return cls(params, runtime, config, fingerprint(config), derive.engine_dir(params), variant)

    @property
    def engines_root(self) -> Path:
        return Path(self.params.engines_dir)

    @property
    def name(self) -> str:
        """ "<model> (<variant>)": how the lock notes name this build to whoever waits for it."""
        return f"{self.params.model} ({self.variant})"


@dataclass(frozen=True)
class Ended:
    """A stage's end of the build: its outcome and reason, and what the result reports."""

    outcome: Outcome
    reason: Message
    problems: list[Problem] | None = None  # None: the warnings the build has gathered
    config_path: Path | None = None
    manifest_path: Path | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)


def say(progress: Progress, code: str, **params: Any) -> None:
    """A line of the build's log, from the message tables."""
    progress.event("log", msg(code, **params))
