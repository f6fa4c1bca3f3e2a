"""A build's stages, each alone (jobs/build_*.py): what each proves, and how it ends the build, with no process started
(the probe is replaced where a stage asks for it; the child's run is tests/test_runner.py's)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from sdprep.engine_files import EngineFile, EngineSlot
from sdprep.estimate import Estimate
from sdprep.jobs import build_preflight
from sdprep.jobs.aside import AsideGuard
from sdprep.jobs.build import Build, BuildOptions, run_build
from sdprep.jobs.build_admission import holding_gpu, holding_model
from sdprep.jobs.build_child import on_child_record, open_log, rehearse_first
from sdprep.jobs.build_preflight import (
    check_space,
    fit_gpu,
    fit_machine,
    outside_engines,
    probe_machine,
    validate_request,
)
from sdprep.jobs.build_record import (
    built_message,
    fresh_engines,
    prove,
    record_engines,
    record_up_to_date,
)
from sdprep.jobs.build_reuse import FolderBefore, read_records, recorded, set_aside_foreign, up_to_date
from sdprep.jobs.build_stage import BuildPlan, Ended
from sdprep.jobs.environment import Environment, ProbeError
from sdprep.jobs.job import JobResult
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent, Progress
from sdprep.locks import gpu_lock, model_lock
from sdprep.manifest import EngineRecord, Manifest, VariantRecord
from sdprep.messages import Message, Problem, has_errors, msg
from sdprep.model_folder import MANIFEST_NAME, read_manifest, write_manifest
from sdprep.params import BakedParams, params_from_values
from testkit.app import runtime_defaults

pytestmark = pytest.mark.core  # the quick tier: no process starts here

ENGINE_KEY = "NVIDIA RTX|8.9|10.16|0.1"


def make(tmp_path: Path, **values: object) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def plan_of(params: BakedParams) -> BuildPlan:
    return BuildPlan.of(params, runtime_defaults())


def machine(**torch: object) -> Environment:
    """A probed machine that can build: an NVIDIA GPU, TensorRT and the fork, whose engine key is ENGINE_KEY."""
    environment = Environment(
        {
            "torch": {
                "version": "2.8.0",
                "cuda": "12.8",
                "cuda_available": True,
                "gpu_name": "NVIDIA RTX",
                "compute_capability": "8.9",
                **torch,
            },
            "tensorrt": {"version": "10.16"},
            "streamdiffusion": {"version": "0.1", "features": {}, "has_config_loader": True},
        }
    )
    assert environment.missing() == [] and environment.engine_key() == ENGINE_KEY
    return environment


class Said:
    """The events a stage sends, and its log lines as codes."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.progress = Progress(self.events.append)

    def codes(self) -> list[str]:
        return [event.message.code for event in self.events if event.kind == "log"]


def a_build(params: BakedParams, on_event: Any = None, **options: Any) -> Build:
    """A build's state alone: nothing is probed, locked or started until its run() is called."""
    events = on_event or (lambda event: None)
    return Build(params, runtime_defaults(), BuildOptions(**options), events, threading.Event())


def engine_at(folder: Path, relative: str, content: bytes = b"engine") -> EngineFile:
    path = folder.joinpath(*relative.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    found = path.stat()
    kind = relative.rsplit("/", 1)[-1].removesuffix(".engine")
    return EngineFile(path, relative, kind, None, found.st_size, found.st_mtime_ns)


def record_of(engine: EngineFile, key: str = "k", engine_key: str = ENGINE_KEY) -> EngineRecord:
    return EngineRecord(
        kind=engine.kind,
        key=key,
        engine_key=engine_key,
        built_at="2026-01-01T00:00:00",
        fingerprint="f",
        size=engine.size,
        mtime_ns=engine.mtime_ns,
    )


# --- preflight: the three validations, each adding what the one before could not know -------------------------


def test_the_core_validates_again_what_a_front_end_may_have_skipped(tmp_path: Path) -> None:
    """The second validation: run_build refuses parameters with errors itself (a script or the API may not have
    validated), before a plan is made or anything is probed."""
    events: list[JobEvent] = []
    result = run_build(make(tmp_path, width=100), runtime_defaults(), on_event=events.append)
    assert result.outcome == "refused" and result.reason.code == "build_params_invalid"
    assert [problem.field for problem in result.problems if problem.severity == "error"] == ["width"]
    assert events == [] and not (tmp_path / "engines").exists()


def test_the_request_allows_the_widest_batch_and_the_probed_machine_narrows_it(tmp_path: Path) -> None:
    """A UNet batch of 8 (4 steps, cfg full) is an error only for a fork whose config loader cannot pass the batch
    bounds: the request's validation cannot know which fork builds; the third validation, after the probe, does."""
    params = make(tmp_path, denoise_steps=4, cfg_type="full", t_index_list="0,16,32,45")
    assert not has_errors(validate_request(params))
    narrow = fit_machine(params, machine(), [])
    assert narrow.refusal is not None and narrow.refusal.reason.code == "build_refused_fork"
    assert narrow.refusal.problems == narrow.problems and has_errors(narrow.problems)
    wide = machine()
    wide.report["streamdiffusion"]["features"]["config_batch_bounds"] = True
    assert fit_machine(params, wide, []) == build_preflight.MachineFit([], None)


def test_the_machine_fit_keeps_the_forms_warnings(tmp_path: Path) -> None:
    warning = Problem("width", "warning", msg("unknown"))
    fit = fit_machine(make(tmp_path), machine(), [warning])
    assert fit == build_preflight.MachineFit([warning], None)


def test_a_model_folder_linking_out_of_the_engines_folder_is_refused(tmp_path: Path) -> None:
    params = make(tmp_path)
    plan = plan_of(params)
    assert outside_engines(plan) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plan.engine_dir.parent.mkdir(parents=True)
    plan.engine_dir.symlink_to(elsewhere, target_is_directory=True)
    ended = outside_engines(plan)
    assert ended is not None and (ended.outcome, ended.reason.code) == ("refused", "model_folder_outside")


def test_the_disk_check_refuses_or_says_it_was_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(build_preflight.ALLOW_LOW_DISK_ENV, raising=False)
    monkeypatch.setattr(build_preflight, "free_space", lambda folder: 1024)
    plan = plan_of(make(tmp_path))
    warning = Problem("width", "warning", msg("unknown"))
    said = Said()
    refused = check_space(plan, [warning], None, allow_low_disk=False, progress=said.progress)
    assert isinstance(refused.estimate, Estimate) and refused.refusal is not None
    assert refused.refusal.reason.code == "build_refused_disk"
    assert refused.refusal.problems is not None and refused.refusal.problems[0] == warning
    assert said.codes() == []
    allowed = check_space(plan, [], None, allow_low_disk=True, progress=said.progress)
    assert allowed.refusal is None and said.codes() == ["disk_low_allowed"]
    monkeypatch.setattr(build_preflight, "free_space", lambda folder: None)  # unknown: not refused
    assert check_space(plan, [], None, allow_low_disk=False, progress=said.progress).refusal is None


def test_the_probe_says_the_machine_and_what_stops_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_tensorrt = machine()
    no_tensorrt.report["tensorrt"] = {"error": "ModuleNotFoundError: No module named 'tensorrt'"}
    monkeypatch.setattr(build_preflight, "probe", lambda child, refresh: no_tensorrt)
    said = Said()
    ended = probe_machine(ChildSpec(), refresh=False, rehearse_only=False, progress=said.progress)
    assert isinstance(ended, Ended) and (ended.outcome, ended.reason.code) == ("unavailable", "env_cannot_build")
    assert said.codes() == ["env_line"] and said.events[0].stage == "probe"
    # A rehearsal alone goes on: it says itself how far this machine gets.
    assert probe_machine(ChildSpec(), False, rehearse_only=True, progress=said.progress) is no_tensorrt

    def fails(child: ChildSpec, refresh: bool) -> Environment:
        raise ProbeError(msg("unknown"))

    monkeypatch.setattr(build_preflight, "probe", fails)
    ended = probe_machine(ChildSpec(), False, False, said.progress)
    assert isinstance(ended, Ended) and (ended.outcome, ended.reason.code) == ("unavailable", "unknown")


def test_too_little_free_gpu_memory_is_a_warning_said_in_the_log(tmp_path: Path) -> None:
    params = make(tmp_path)
    said = Said()
    low = fit_gpu(params, machine(vram_free=1024), said.progress)
    assert low.warning is not None and low.warning.message.code == "vram_low" and said.codes() == ["vram_low"]
    assert fit_gpu(params, machine(vram_free=200 * 2**30), said.progress).warning is None
    assert fit_gpu(params, machine(), said.progress).warning is None  # not reported: nothing claimed


# --- admission: the model's lock, then the GPU's ------------------------------------------------------------------


def test_a_held_model_is_waited_for_or_refused_naming_who_holds_it(tmp_path: Path) -> None:
    build = a_build(make(tmp_path))
    other = model_lock(build.plan.engine_dir)
    assert other.acquire("check of some/model", wait=False, job="check")
    ran: list[str] = []

    def work() -> Any:
        ran.append("work")
        return build.result("built", msg("unknown"))

    try:
        busy = holding_model(build, build.plan, wait=False, work=work)
    finally:
        other.release()
    assert busy.outcome == "busy" and busy.reason.code == "model_waiting_busy"
    assert busy.reason.params["what"] == "check of some/model" and ran == []
    done = holding_model(build, build.plan, wait=False, work=work)
    assert done.outcome == "built" and ran == ["work"]
    # Held while the work ran, and let go after: the next one takes it at once.
    assert model_lock(build.plan.engine_dir).acquire("next", wait=False)


def test_the_gpu_is_held_for_the_work_and_named_to_who_waits(tmp_path: Path) -> None:
    build = a_build(make(tmp_path))
    seen: list[dict[str, Any]] = []

    def work() -> Any:
        seen.append(gpu_lock(0).holder())
        return build.result("built", msg("unknown"))

    assert holding_gpu(build, 0, build.plan.name, wait=False, work=work).outcome == "built"
    assert seen[0]["what"] == build.plan.name and seen[0]["job"] == "build"
    other = gpu_lock(0)
    assert other.acquire("rehearsal of x", wait=False)
    try:
        busy = holding_gpu(build, 0, build.plan.name, wait=False, work=work)
    finally:
        other.release()
    assert busy.outcome == "busy" and busy.reason.code == "gpu_waiting_busy" and busy.reason.params["gpu"] == 0


def test_cancel_while_waiting_for_a_lock_ends_the_build_cancelled(tmp_path: Path) -> None:
    build = a_build(make(tmp_path))
    build.cancel.set()
    other = model_lock(build.plan.engine_dir)
    assert other.acquire("build of x", wait=False)
    try:
        ended: JobResult = holding_model(build, build.plan, wait=True, work=lambda: build.result("built", msg("x")))
    finally:
        other.release()
    assert ended.outcome == "cancelled" and ended.reason.code == "cancelled_waiting"


# --- engine reuse ---------------------------------------------------------------------------------------------------


def variant_record(plan: BuildPlan, engines: list[str], **changes: Any) -> VariantRecord:
    values: dict[str, Any] = {
        "fingerprint": plan.fingerprint,
        "engine_key": ENGINE_KEY,
        "config": f"configs/{plan.variant}.yaml",
        "built_at": "2026-01-01T00:00:00",
        "engines": engines,
        "environment": {"gpu": "NVIDIA RTX", "tensorrt": "10.16"},
        **changes,
    }
    return VariantRecord(**values)


def test_up_to_date_only_for_these_engines_on_this_machine_as_recorded(tmp_path: Path) -> None:
    plan = plan_of(make(tmp_path))
    unet = engine_at(plan.engine_dir, "unet--a/unet.engine")
    manifest = Manifest(variants={plan.variant: variant_record(plan, [unet.relative])})
    said = Said()
    assert up_to_date(plan, machine(), manifest, said.progress) is None  # the file is not recorded
    assert said.codes() == ["rebuild_changed"]
    manifest.engines[unet.relative] = record_of(unet)
    ready = up_to_date(plan, machine(), manifest, said.progress)
    assert ready is not None and ready.engines == [unet] and ready.record is manifest.variants[plan.variant]
    manifest.variants[plan.variant].stale = True
    assert up_to_date(plan, machine(), manifest, said.progress) is None and said.codes()[-1] == "rebuild_stale"
    manifest.variants[plan.variant] = variant_record(plan, [unet.relative], engine_key="other")
    assert up_to_date(plan, machine(), manifest, said.progress) is None
    assert said.codes()[-1] == "rebuild_other_machine"
    manifest.variants[plan.variant] = variant_record(plan, [unet.relative], fingerprint="another")
    before = len(said.events)
    assert up_to_date(plan, machine(), manifest, said.progress) is None and len(said.events) == before  # not said


def test_recorded_reads_build_json_and_a_broken_one_is_set_aside(tmp_path: Path) -> None:
    plan = plan_of(make(tmp_path))
    assert not recorded(plan)
    plan.engine_dir.mkdir(parents=True)
    write_manifest(plan.engine_dir, Manifest(variants={plan.variant: variant_record(plan, [])}))
    assert recorded(plan)
    (plan.engine_dir / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    said = Said()
    assert read_records(plan, said.progress) == Manifest() and said.codes() == ["manifest_set_aside"]
    assert not (plan.engine_dir / MANIFEST_NAME).exists()


def test_engines_streamdiffusion_would_wrongly_reuse_are_set_aside(tmp_path: Path) -> None:
    plan = plan_of(make(tmp_path))
    said = Said()
    guard = AsideGuard(
        plan.engine_dir, "20260101-000000", lambda code, **params: said.progress.event("log", msg(code, **params))
    )
    unknown = engine_at(plan.engine_dir, "unet--a/unet.engine")
    folder = set_aside_foreign(plan, machine(), Manifest(), guard, force=False)
    assert [slot.kind for slot in folder.slots] == ["unet", "vae_encoder", "vae_decoder"]
    assert folder.engine_key == ENGINE_KEY and folder.reusable == {} and unknown.relative in folder.before
    assert not unknown.path.exists() and said.codes() == ["aside_unknown_origin"]
    guard.put_back(superseded=set())
    assert unknown.path.exists()
    # Recorded with this slot's key on this machine: kept (unless forced).
    manifest = Manifest(
        engines={unknown.relative: record_of(engine_at(plan.engine_dir, unknown.relative), key=folder.keys["unet"])}
    )
    kept = set_aside_foreign(plan, machine(), manifest, guard, force=False)
    assert kept.reusable == {"unet": [unknown.relative]} and said.codes()[-1] == "engine_reused"
    forced = set_aside_foreign(plan, machine(), manifest, guard, force=True)
    assert forced.reusable == {} and said.codes()[-1] == "aside_forced"


# --- the child run (its process: tests/test_runner.py) ----------------------------------------------------------


def test_the_log_opens_in_the_model_folder_with_every_line_so_far(tmp_path: Path) -> None:
    plan = plan_of(make(tmp_path))
    said = Said()
    said.progress.event("log", msg("unknown"))
    try:
        logs = open_log(plan, "20260101-000000", said.progress)
        said.progress.event("log", msg("unknown"))
    finally:
        said.progress.close_file()
    assert logs == plan.engine_dir / "logs" and said.progress.path == logs / f"20260101-000000-{plan.variant}.log"
    assert len(said.progress.path.read_text(encoding="utf-8").splitlines()) == 2


def test_a_skipped_rehearsal_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[JobEvent] = []
    build = a_build(make(tmp_path), events.append)
    assert rehearse_first(build, build.plan, machine(), rehearse=False) is None
    monkeypatch.setenv("SDPREP_REHEARSE", "0")  # None: as the process says
    assert rehearse_first(build, build.plan, machine(), rehearse=None) is None
    assert events == []


def test_an_engine_the_child_wrote_is_said_with_its_size() -> None:
    said = Said()
    on_child_record(said.progress, {"event": "engine_written", "stage": "engine:vae", "file": "x", "bytes": 2048})
    on_child_record(said.progress, {"event": "engine_written", "bytes": "many"})  # not a size: not said
    on_child_record(said.progress, {"event": "other"})
    assert said.codes() == ["engine_written"] and said.events[0].message.params["file"] == "x"


# --- proof and record -------------------------------------------------------------------------------------------


def test_fresh_engines_are_the_new_and_the_changed(tmp_path: Path) -> None:
    old = engine_at(tmp_path, "unet--a/unet.engine")
    same = engine_at(tmp_path, "vae--a/vae_encoder.engine")
    new = engine_at(tmp_path, "vae--a/vae_decoder.engine")
    changed = engine_at(tmp_path, "unet--a/unet.engine", b"rebuilt engine")
    before = {old.relative: old, same.relative: same}
    after = {changed.relative: changed, same.relative: same, new.relative: new}
    assert fresh_engines(before, after) == {changed.relative: changed, new.relative: new}


def test_each_slot_is_proven_by_a_fresh_or_a_kept_engine(tmp_path: Path) -> None:
    unet = engine_at(tmp_path, "unet--a/unet.engine")
    encoder = engine_at(tmp_path, "vae--a/vae_encoder.engine")
    slots = [EngineSlot("unet"), EngineSlot("vae_encoder"), EngineSlot("vae_decoder")]
    keys = {slot.id: f"key-{slot.id}" for slot in slots}
    folder = FolderBefore(slots, keys, ENGINE_KEY, {}, {"vae_encoder": [encoder.relative]})
    after = {unet.relative: unet, encoder.relative: encoder}
    proof = prove(folder, {unet.relative: unet}, after)
    assert proof.used == {unet.relative: unet, encoder.relative: encoder}
    assert [message.code for message in proof.missing] == ["engine_vae_decoder"]
    manifest = Manifest()
    record_engines(manifest, {unet.relative: unet}, folder, "fingerprint")
    assert list(manifest.engines) == [unet.relative]
    assert (manifest.engines[unet.relative].key, manifest.engines[unet.relative].engine_key) == ("key-unet", ENGINE_KEY)


def test_an_up_to_date_build_writes_its_configs_and_names_itself_latest(tmp_path: Path) -> None:
    plan = plan_of(make(tmp_path))
    unet = engine_at(plan.engine_dir, "unet--a/unet.engine")
    records = {unet.relative: record_of(unet)}
    manifest = Manifest(variants={plan.variant: variant_record(plan, [unet.relative])}, engines=records)
    ready = up_to_date(plan, machine(), manifest, Said().progress)
    assert ready is not None
    said = Said()
    ended = record_up_to_date(plan, manifest, ready, None, said.progress)
    assert (ended.outcome, ended.reason.code) == ("up_to_date", "build_up_to_date") and ended.problems is None
    assert ended.config_path == plan.engine_dir / "config.yaml" and ended.config_path.is_file()
    assert (plan.engine_dir / "configs" / f"{plan.variant}.yaml").is_file()
    assert [engine["path"] for engine in ended.engines] == [unet.relative]
    assert all(engine["reused"] for engine in ended.engines)
    written = read_manifest(plan.engine_dir)
    assert (written.latest_variant, written.config, written.model) == (plan.variant, "config.yaml", plan.params.model)


def test_the_built_message_says_the_estimate_and_the_forks_warnings_not_the_memory_one() -> None:
    def words(message: Message) -> tuple[str, ...]:
        return (message.code, *(inner.code for inner in message.params.get("warnings", [])))

    assert words(built_message(3, 60.0, None, [])) == ("build_built",)
    vram = Problem("", "warning", msg("vram_low"))
    profile = Problem("", "warning", msg("unknown"))
    assert words(built_message(3, 60.0, None, [vram])) == ("build_built",)
    assert words(built_message(3, 60.0, None, [vram, profile])) == ("build_built_warned", "unknown")


def test_the_plan_is_the_engines_identity(tmp_path: Path) -> None:
    """Equal parameters make one plan (config, fingerprint, variant, folder); a baked change makes another variant."""
    one, two = plan_of(make(tmp_path)), plan_of(make(tmp_path))
    assert (one.fingerprint, one.variant, one.engine_dir) == (two.fingerprint, two.variant, two.engine_dir)
    other = plan_of(make(tmp_path, width=768))
    assert other.variant != one.variant and other.engine_dir == one.engine_dir
    assert one.name == f"{one.params.model} ({one.variant})" and one.engines_root == tmp_path / "engines"
