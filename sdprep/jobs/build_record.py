"""Proof and record: after the child, what it wrote is proven and recorded; only a proven build writes its configs.

- Every engine the child wrote that fills one of this build's slots is recorded in build.json (sdprep/model_folder.py
  owns the folder and the file), a failed build's too: a retry reuses complete engines.
- `prove`: each slot has an engine, written now or kept by engine reuse; a slot without one fails the build.
- A proven build: the variants whose engines it replaced are marked stale, config.yaml and configs/<variant>.yaml are
  written by the one writer Save uses too (config_write.py), what it took is measured beside its estimate (seconds,
  bytes, the fork's build_stats.json), and its record and result are worded.
- An up-to-date build records itself the same way, without a measure: its configs, and build.json's latest variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sdprep.config_write import config_to_write, write_configs
from sdprep.engine_files import EngineFile, EngineSlot
from sdprep.estimate import Estimate, past_engine_json, shape_of, time_words
from sdprep.fork_stats import profile_problems, read_stats
from sdprep.fork_stats import seconds as stats_seconds
from sdprep.jobs.aside import describe
from sdprep.jobs.build_reuse import FolderBefore, UpToDate
from sdprep.jobs.build_stage import BuildPlan, Ended, say
from sdprep.jobs.environment import Environment
from sdprep.jobs.progress import Progress
from sdprep.manifest import EngineRecord, Manifest, TimingCacheUse, VariantRecord, now_iso
from sdprep.messages import Duration, Message, Problem, msg, os_reason
from sdprep.model_folder import CONFIGS_DIR, MANIFEST_NAME, write_manifest
from sdprep.params import BakedParams
from sdprep.profiles import profile_of
from sdprep.runtime import Runtime


@dataclass(frozen=True)
class Proof:
    """The engines the build's config uses, by relative path (written now or kept), and the slots left without one."""

    used: dict[str, EngineFile]
    missing: list[Message]


def write_build_configs(plan: BuildPlan, runtime_from: Runtime | None, progress: Progress) -> Path:
    """config.yaml and configs/<variant>.yaml by the one rule (config_write.py, Save's writer too); says what it noted
    and kept."""
    written = write_configs(config_to_write(plan.params, plan.runtime, runtime_from), plan.variant)
    for note in written.notes:
        progress.event("log", note)
    if not written.wrote_config:
        say(progress, "config_kept", path=written.config_path)
    return written.config_path


def record_up_to_date(
    plan: BuildPlan, manifest: Manifest, ready: UpToDate, runtime_from: Runtime | None, progress: Progress
) -> Ended:
    """Nothing built: the configs written as a build writes them, and build.json names this variant the latest."""
    config_path = write_build_configs(plan, runtime_from, progress)
    manifest.config, manifest.latest_variant, manifest.model = config_path.name, plan.variant, plan.params.model
    write_manifest(plan.engine_dir, manifest)
    return Ended(
        "up_to_date",
        msg("build_up_to_date", built_at=ready.record.built_at),
        config_path=config_path,
        manifest_path=plan.engine_dir / MANIFEST_NAME,
        engines=[describe(engine, reused=True) for engine in ready.engines],
    )


def fresh_engines(before: dict[str, EngineFile], after: dict[str, EngineFile]) -> dict[str, EngineFile]:
    """The engine files the child wrote: new, or changed since it started."""
    return {rel: engine for rel, engine in after.items() if rel not in before or before[rel].stamp != engine.stamp}


def record_engines(manifest: Manifest, fresh: dict[str, EngineFile], folder: FolderBefore, fingerprint: str) -> None:
    """Every fresh engine that fills one of this build's slots, into build.json's engines (not yet written)."""
    for relative, engine in fresh.items():
        slot = next((slot for slot in folder.slots if engine.matches(slot)), None)
        if slot is not None:
            manifest.engines[relative] = EngineRecord(
                kind=engine.kind,
                size=engine.size,
                mtime_ns=engine.mtime_ns,
                key=folder.keys[slot.id],
                engine_key=folder.engine_key,
                built_at=now_iso(),
                fingerprint=fingerprint,
            )


def prove(folder: FolderBefore, fresh: dict[str, EngineFile], after: dict[str, EngineFile]) -> Proof:
    """Each slot's engines: the fresh ones, else those engine reuse kept; a slot with neither is missing."""
    used: dict[str, EngineFile] = {}
    missing = []
    for slot in folder.slots:
        chosen = [e for e in fresh.values() if e.matches(slot)] or [
            after[r] for r in folder.reusable.get(slot.id, []) if r in after
        ]
        if not chosen:
            missing.append(msg(f"engine_{slot.kind}", name=slot.controlnet or ""))
        used.update({engine.relative: engine for engine in chosen})
    return Proof(used, missing)


def unproven(plan: BuildPlan, proof: Proof) -> Ended:
    return Ended(
        "failed",
        msg("build_no_engine", engines=proof.missing, folder=plan.engine_dir),
        manifest_path=plan.engine_dir / MANIFEST_NAME,
    )


def record_built(
    plan: BuildPlan,
    manifest: Manifest,
    environment: Environment,
    proof: Proof,
    fresh: dict[str, EngineFile],
    superseded: set[str],
    slots: list[EngineSlot],
    started: tuple[float, float],
    estimate: Estimate | None,
    runtime_from: Runtime | None,
    warnings: list[Problem],
    progress: Progress,
    timing_cache: TimingCacheUse | None = None,
) -> Ended:
    """A proven build recorded: the variants whose engines it replaced marked stale, its configs written, what it took
    measured (since `started`, as (seconds into the build, wall clock)), its record in build.json, and the result's
    words. `warnings` (the build's own) gains what the measure finds."""
    for name, other in manifest.variants.items():
        if name != plan.variant and superseded & set(other.engines):
            other.stale = True
            say(progress, "variant_stale", variant=name)
    try:
        config_path = write_build_configs(plan, runtime_from, progress)
    except OSError as problem:
        return Ended("failed", msg("build_config_unwritten", reason=os_reason(problem)))
    progress.stage("done")
    progress.close_stage()
    actual, found = measure(plan.params, fresh, slots, started, progress)
    warnings += found
    manifest.variants[plan.variant] = VariantRecord(
        fingerprint=plan.fingerprint,
        engine_key=environment.engine_key(),
        environment=environment.summary(),
        config=f"{CONFIGS_DIR}/{plan.variant}.yaml",
        built_at=now_iso(),
        params=asdict(plan.params),
        engines=sorted(proof.used),
        stages=dict(progress.stages),
        duration=round(progress.elapsed(), 3),
        log=progress.path.relative_to(plan.engine_dir).as_posix() if progress.path else None,
        profile=profile_of(plan.params),
        estimate=estimate.as_json() if estimate else None,
        actual=actual,
        timing_cache=timing_cache,
    )
    manifest.model, manifest.config, manifest.latest_variant = plan.params.model, config_path.name, plan.variant
    try:
        write_manifest(plan.engine_dir, manifest)
    except OSError as problem:
        say(progress, "manifest_unwritten", reason=os_reason(problem))
    engines = [describe(engine, reused=engine.relative not in fresh) for engine in proof.used.values()]
    return Ended(
        "built",
        built_message(len(proof.used), actual["seconds"], estimate, warnings),
        config_path=config_path,
        manifest_path=plan.engine_dir / MANIFEST_NAME,
        engines=engines,
    )


def measure(
    params: BakedParams,
    fresh: dict[str, EngineFile],
    slots: list[EngineSlot],
    started: tuple[float, float],
    progress: Progress,
) -> tuple[dict[str, Any], list[Problem]]:
    """What the build took, for build.json beside its estimate: its seconds, and each engine it wrote with its size
    and the seconds the fork's build_stats.json reports; and, where the fork reports it, whether the profile was
    honoured, as warnings (said in the log)."""
    since_elapsed, since = started
    shape = shape_of(params)
    engines: list[dict[str, Any]] = []
    built: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for relative, engine in sorted(fresh.items()):
        slot = next((slot for slot in slots if engine.matches(slot)), None)
        if slot is None:
            continue
        stats = read_stats(engine.path, since)
        built[relative] = (engine.kind, stats)
        engines.append(
            past_engine_json(slot.id, engine.kind, slot.controlnet, shape, engine.size, stats_seconds(stats))
        )
    if built and all(stats is None for _, stats in built.values()) and profile_of(params) != "flexible":
        say(progress, "stats_missing")
    found = profile_problems(params, built)
    for problem in found:
        progress.event("log", problem.message)
    seconds = round(progress.elapsed() - since_elapsed, 3)
    return {"seconds": seconds, "bytes": sum(item["bytes"] for item in engines), "engines": engines}, found


def built_message(count: int, seconds: float, estimate: Estimate | None, warnings: list[Problem]) -> Message:
    """ "Built 3 engines in 6 min 12 s; estimated 5-7 min.", and what the fork's stats warn about."""
    took = Duration(seconds)
    if estimate is None:
        built = msg("build_built", count=count, took=took)
    else:
        built = msg("build_built_estimated", count=count, took=took, estimated=time_words(estimate.time))
    reported = [problem.message for problem in warnings if problem.message.code != "vram_low"]
    return msg("build_built_warned", built=built, warnings=reported) if reported else built
