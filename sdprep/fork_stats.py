"""What the fork says it did: the build_stats.json it writes beside each engine it builds (profile_facts §2).

forkni's builder writes `<engine folder>/build_stats.json` after every engine it builds without an exception, and
appends the same object as a line to `build_log.jsonl` one folder up. The VAE encoder and decoder share a folder, so
the folder's build_stats.json holds the last of the two (the encoder); the other is found in build_log.jsonl.
livepeer writes neither. The stats hold stage timings, the engine's size, its batch and resolution range, and for
FP8 the count of quantise/dequantise layers; not the precision, level or shapes asked for (those are the app's).

Used after a build: each engine's build seconds go into build.json (sdprep/estimate learns from them), and where the
fork reports it, whether it honoured the profile (FP8 quantisation, the VAE's static or dynamic shapes).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sdprep.messages import Problem, msg, warning
from sdprep.params import BakedParams
from sdprep.paths import UnreadableFile, read_limited

STATS_NAME = "build_stats.json"
LOG_NAME = "build_log.jsonl"
STATS_LIMIT = 1024 * 1024
LOG_TAIL = 512 * 1024  # build_log.jsonl is never rotated: only its end is read
# The fork's own sanity check: fewer Q/DQ layers than this means "quantization likely inactive" (builder L438-457).
FP8_MIN_QDQ = 500
CLOCK_SLACK = 5.0  # seconds: stats that ended this long before the build started are an earlier build's


def _ended_at(stats: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(stats["build_end"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _fits(stats: Any, engine: Path, since: float | None) -> bool:
    if not isinstance(stats, dict):
        return False
    if stats.get("engine_file") != engine.name or stats.get("engine_dir") not in (None, engine.parent.name):
        return False
    ended = _ended_at(stats)
    return since is None or (ended is not None and ended >= since - CLOCK_SLACK)


def _log_tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL))
            data = handle.read(LOG_TAIL)
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > LOG_TAIL else lines  # the first line of a tail may be cut


def read_stats(engine: Path, since: float | None = None) -> dict[str, Any] | None:
    """The fork's stats of this engine file's build (not older than `since`, a time.time()), or None."""
    stats: Any = None
    try:
        stats = json.loads(read_limited(engine.parent / STATS_NAME, STATS_LIMIT).decode("utf-8"))
    except (OSError, UnreadableFile, ValueError, UnicodeDecodeError):
        pass
    if isinstance(stats, dict) and _fits(stats, engine, since):
        return stats
    for line in reversed(_log_tail(engine.parent.parent / LOG_NAME)):
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and _fits(entry, engine, since):
            return entry
    return None


def seconds(stats: dict[str, Any] | None) -> float | None:
    value = (stats or {}).get("total_elapsed_s")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _failed_fp8_stage(stats: dict[str, Any]) -> str | None:
    raw = stats.get("stages")
    stages: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for name in ("fp8_calib_capture", "fp8_onnx_quantize"):
        stage = stages.get(name)
        if isinstance(stage, dict) and stage.get("status") == "failed":
            return f"{name}: {stage.get('error') or 'failed'}"
    return None


def profile_problems(params: BakedParams, built: dict[str, tuple[str, dict[str, Any] | None]]) -> list[Problem]:
    """Warnings where the fork reports that it did not build what the profile asks (`built`: each engine this build
    wrote, relative path -> (engine_files kind, its stats or None))."""
    problems: list[Problem] = []
    for kind, stats in built.values():
        if stats is None:
            continue
        if kind == "unet" and params.fp8:
            count = stats.get("fp8_qdq_layers")
            if not isinstance(count, int) or count <= 0:
                detail = _failed_fp8_stage(stats) or ("fp8_qdq_layers = 0" if count == 0 else "no fp8_qdq_layers")
                problems.append(warning("fp8", "fp8_no_qdq", detail=detail))
            elif count < FP8_MIN_QDQ:
                problems.append(warning("fp8", "fp8_few_qdq", count=count, least=FP8_MIN_QDQ))
        if kind in ("vae_encoder", "vae_decoder") and isinstance(stats.get("dynamic_range"), str):
            reported = stats["dynamic_range"]
            if (reported == "static") != params.static_shapes:
                problems.append(
                    warning(
                        "static_shapes",
                        "profile_vae_range",
                        engine=msg(f"engine_{kind}", name=""),
                        reported=reported,
                        expected=msg("shapes_static" if params.static_shapes else "shapes_dynamic"),
                    )
                )
    return problems
