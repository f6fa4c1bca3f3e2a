"""The "up to date" answer: the same parameters built again. Through the page (check off, then on), `run_build`
in this process (the probe answered from its cache, the manifest and engine files verified, configs rewritten), and
the CLI as a whole process (interpreter start and imports included)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.builds import ui_build
from bench.common import APP, STANDIN, child_env, runtime_defaults, use_state_here
from testkit.page_client import PageClient


def measure_ui(page: PageClient, model: str, rounds: int) -> dict[str, list[float]]:
    """`model` was just built by this page's server (check off)."""
    up, up_checked = [], []
    for _ in range(rounds):
        run = ui_build(page, model=model, check=False)
        if run.outcome != "up_to_date":
            raise RuntimeError(f"expected up to date, got {run.outcome}")
        up.append(run.seconds)
        run = ui_build(page, model=model)
        if run.outcome != "up_to_date":
            raise RuntimeError(f"expected up to date, got {run.outcome}")
        up_checked.append(run.seconds)
    return {"ui_up_to_date_s": up, "ui_up_to_date_and_check_s": up_checked}


def measure(rounds: int, state: Path) -> dict[str, Any]:
    """`build` twice into a fresh engines folder; the second answer, as a process and in-process."""
    from sdprep.jobs.build import BuildOptions, run_build
    from sdprep.jobs.process import ChildSpec
    from sdprep.params import params_from_values

    env = child_env(state)
    engines = state / "cli-engines"
    command = [sys.executable, str(APP), "build", "--engines-dir", str(engines)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if first.returncode != 0:
        raise RuntimeError(first.stderr)
    cli_times = []
    for _ in range(rounds):
        started = time.perf_counter()
        again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        cli_times.append(time.perf_counter() - started)
        if "Already built" not in again.stdout:
            raise RuntimeError(f"expected up to date:\n{again.stdout}\n{again.stderr}")
    use_state_here(state)
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
    params = params_from_values({"engines_dir": str(engines)})
    runtime = runtime_defaults()
    in_process = []
    for _ in range(rounds * 4):
        started = time.perf_counter()
        result = run_build(params, runtime, options)
        in_process.append(time.perf_counter() - started)
        if result.outcome != "up_to_date":
            raise RuntimeError(f"expected up to date, got {result.outcome}")
    bare = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    return {"cli_s": cli_times, "in_process_s": in_process, "python_start_s": bare}
