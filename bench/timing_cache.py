"""Cold against warm TensorRT builds (sdprep/timing_cache.py): one model built twice in one engines folder, the
second time after its model folder (engines and the fork's own cache) is removed, so the only thing it starts with is
the shared timing cache the first build left. The difference is what the cache saves.

Only where the build Python has an NVIDIA GPU and the real TensorRT and StreamDiffusion: the stand-in's builds (all
this workplace has) take no TensorRT time at all, so their timings would say nothing. Elsewhere it says it skipped
and why, in the run's output and in docs/performance.md.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import STANDIN, runtime_defaults, use_state_here


def real_build_python() -> tuple[Any, str]:
    """(the build Python's ChildSpec, "") when it can build real engines, else (None, why not)."""
    from sdprep.jobs.environment import ProbeError, probe
    from sdprep.jobs.process import ChildSpec
    from sdprep.text import word

    spec = ChildSpec()  # the one the app would use: --python, $SDPREP_PYTHON, .venv-build, this interpreter
    try:
        environment = probe(spec, refresh=True)
    except ProbeError as problem:
        return None, word(problem.message)
    missing = environment.missing()
    if missing:
        return None, "; ".join(word(reason) for reason in missing)
    where = str(environment.streamdiffusion.get("location") or "")
    if where.startswith(str(STANDIN)) or spec.source_dir():
        return None, "the build Python imports the stand-in StreamDiffusion: its builds take no TensorRT time"
    return spec, ""


def measure(state: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from sdprep import derive
    from sdprep.jobs.build import BuildOptions, run_build
    from sdprep.params import params_from_values

    use_state_here(state)
    spec, why = real_build_python()
    if spec is None:
        say(f"  skipped: {why}")
        return {"skipped": why}
    params = params_from_values({"engines_dir": str(state / "timing-cache-engines")})
    options = BuildOptions(child=spec, rehearse=False)
    out: dict[str, Any] = {}
    for state_name in ("cold", "warm"):
        shutil.rmtree(derive.engine_dir(params), ignore_errors=True)  # the shared cache stays
        result = run_build(params, runtime_defaults(), options)
        if result.outcome != "built":
            raise RuntimeError(f"the {state_name} build ended {result.outcome}")
        manifest = json.loads((derive.engine_dir(params) / "build.json").read_text(encoding="utf-8"))
        record = manifest["variants"][manifest["latest_variant"]]
        if record["timing_cache"]["state"] != state_name:
            raise RuntimeError(f"the {state_name} build started {record['timing_cache']['state']}")
        out[f"{state_name}_s"] = [float(record["actual"]["seconds"])]
        out["gpu"], out["tensorrt"] = record["environment"]["gpu"], record["environment"]["tensorrt"]
        out["cache_bytes"] = record["timing_cache"]["kept"]
        say(f"  {state_name}: {out[f'{state_name}_s'][0]:.0f} s")
    return out
