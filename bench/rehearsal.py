"""The rehearsal on the stand-ins (jobs/rehearsal.py): the default parameters rehearsed anew (the child makes the
tiny model, builds, loads and runs a frame through the stand-in StreamDiffusion), the answer a remembered pass gives,
and `doctor --rehearse` as a whole process (interpreter start, the self-test and the rehearsal). What a real GPU
takes is not measured here: no TensorRT engine can be built on this machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import APP, STANDIN, child_env, runtime_defaults, use_state_here


def measure(rounds: int, state: Path) -> dict[str, Any]:
    from sdprep.config import make_config
    from sdprep.jobs.process import ChildSpec
    from sdprep.jobs.rehearsal import run_rehearsal
    from sdprep.params import params_from_values

    use_state_here(state)
    spec = ChildSpec(streamdiffusion_src=str(STANDIN))
    params = params_from_values({"engines_dir": str(state / "rehearsal-engines")})
    config = make_config(params, runtime_defaults())
    anew, remembered, child = [], [], []
    run_rehearsal(params, config, spec, use_cache=False)  # the probe, once (cached after), not counted
    for _ in range(rounds * 2):
        started = time.perf_counter()
        result = run_rehearsal(params, config, spec, use_cache=False)
        anew.append(time.perf_counter() - started)
        if result.outcome != "passed":
            raise RuntimeError(f"rehearsal ended {result.outcome}")
        child.append(float(result.seconds.get("total") or 0.0))
        started = time.perf_counter()
        again = run_rehearsal(params, config, spec)
        remembered.append(time.perf_counter() - started)
        if not again.cached:
            raise RuntimeError("a passed rehearsal was not remembered")
    env = {**child_env(state), "SDPREP_REHEARSE": "1"}
    command = [sys.executable, str(APP), "doctor", "--rehearse", "--again"]
    cli = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        cli.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(done.stdout + done.stderr)
    return {"anew_s": anew, "child_s": child, "remembered_s": remembered, "doctor_cli_s": cli}
