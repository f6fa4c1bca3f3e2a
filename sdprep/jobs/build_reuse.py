"""Engine reuse: what of a model's folder a build may keep, read from its build.json (sdprep/model_folder.py).

Before the GPU is taken: `up_to_date` says whether the engines of exactly these parameters, built on this machine's
GPU and TensorRT, are all still there as recorded (then nothing is built, and each reason not to reuse them is said).
Just before the child runs: `set_aside_foreign` moves aside every engine of this build's slots that StreamDiffusion
would wrongly reuse (its folder name matches, its recorded key does not: jobs/aside.py), and names those it may keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdprep.engine_files import EngineFile, EngineSlot, expected_slots, slot_key
from sdprep.jobs.aside import AsideGuard, remove_stale_temp_files, restore_leftovers
from sdprep.jobs.build_stage import BuildPlan, say
from sdprep.jobs.environment import Environment
from sdprep.jobs.progress import Progress
from sdprep.manifest import Manifest, ManifestUnreadable, VariantRecord, trusted_record
from sdprep.model_folder import by_relative, read_manifest, read_manifest_or_empty, set_aside_unreadable


@dataclass(frozen=True)
class UpToDate:
    """The record of these engines, and the engine files it names (in its order): nothing to build."""

    record: VariantRecord
    engines: list[EngineFile]


@dataclass(frozen=True)
class FolderBefore:
    """The model's folder as the child finds it: this build's engine slots with their keys, the engines there, and
    per slot the ones it may keep (the others are set aside)."""

    slots: list[EngineSlot]
    keys: dict[str, str]  # slot id -> the key its engine is recorded with
    engine_key: str  # this machine's GPU and TensorRT
    before: dict[str, EngineFile]
    reusable: dict[str, list[str]]


def recorded(plan: BuildPlan) -> bool:
    """Whether build.json has a build of exactly these parameters (so this one may be up to date). Read before any
    lock: it only decides whether the disk is checked before the probe."""
    record = read_manifest_or_empty(plan.engine_dir).variants.get(plan.variant)
    return record is not None and record.fingerprint == plan.fingerprint


def read_records(plan: BuildPlan, progress: Progress) -> Manifest:
    """This model's build.json; a broken one is kept aside under another name and a new one begun."""
    try:
        return read_manifest(plan.engine_dir)
    except ManifestUnreadable as problem:
        kept = set_aside_unreadable(plan.engine_dir)
        say(progress, "manifest_set_aside", reason=problem.reason, kept=kept)
        return Manifest()


def up_to_date(plan: BuildPlan, environment: Environment, manifest: Manifest, progress: Progress) -> UpToDate | None:
    """The recorded engines of these parameters when every one may be reused as it is; None (and why, said) when not."""
    record = manifest.variants.get(plan.variant)
    if record is None or record.fingerprint != plan.fingerprint:
        return None
    if record.engine_key != environment.engine_key():
        say(
            progress,
            "rebuild_other_machine",
            variant=plan.variant,
            gpu=record.environment.get("gpu"),
            tensorrt=record.environment.get("tensorrt"),
        )
        return None
    if record.stale:
        say(progress, "rebuild_stale", variant=plan.variant)
        return None
    engines = by_relative(plan.engine_dir)
    for relative in record.engines:
        engine = engines.get(relative)
        if engine is None or trusted_record(manifest, engine) is None:
            say(progress, "rebuild_changed", path=relative)
            return None
    return UpToDate(record, [engines[relative] for relative in record.engines])


def set_aside_foreign(
    plan: BuildPlan, environment: Environment, manifest: Manifest, guard: AsideGuard, force: bool
) -> FolderBefore:
    """The folder made safe for the child: a killed build's leftovers put back and its stale temp files removed, then
    every engine StreamDiffusion would wrongly reuse set aside by `guard` (all of this build's, when `force`)."""
    restore_leftovers(plan.engine_dir)
    remove_stale_temp_files(plan.engine_dir)
    engine_key = environment.engine_key()
    slots = expected_slots(plan.config, environment.features.get("safety_checker_engine", True) is not False)
    keys = {slot.id: slot_key(slot, plan.config) for slot in slots}
    before = by_relative(plan.engine_dir)
    reusable = guard.set_aside_foreign(before, slots, keys, engine_key, manifest, force=force)
    return FolderBefore(slots, keys, engine_key, before, reusable)
