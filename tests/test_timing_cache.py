"""The shared TensorRT timing cache (sdprep/timing_cache.py) with the stand-ins: the stand-in builder loads and saves
`<engine root>/_timing_cache/timing_trt<version>.cache` around each engine as the fork does, and the stand-in TensorRT
refuses a cache of another device (ignore_mismatch=False) with an error in the log."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from sdprep import timing_cache
from sdprep.clean import find_leftovers, remove_leftovers
from sdprep.estimate import PastBuild, PastEngine, estimate, shape_of
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.environment import Environment
from sdprep.jobs.process import ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.manifest import ManifestUnreadable, TimingCacheOrigin, parse_manifest
from sdprep.params import BakedParams, params_from_values
from sdprep.paths import stamp
from testkit.timing import SUITE_TIMEOUT, wait_until

from .conftest import STANDIN, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
TRT = "10.16.1.11"  # the stand-in TensorRT's version
RTX_4090 = timing_cache.gpu_key("NVIDIA GeForce RTX 4090", "8.9")
RTX_3090 = timing_cache.gpu_key("NVIDIA GeForce RTX 3090", "8.6")
CACHE = f"timing_trt{TRT}.cache"


def make(tmp_path: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def build(params: BakedParams, cancel: threading.Event | None = None) -> tuple[BuildResult, list[str]]:
    events: list[JobEvent] = []
    result = run_build(params, runtime_defaults(), OPTIONS, events.append, cancel)
    return result, [said(event.message) for event in events]


def shared(tmp_path: Path, key: str = RTX_4090) -> Path:
    return timing_cache.shared_cache(tmp_path / "engines", key, TRT)


def device_of(cache: Path) -> str:
    """The device the stand-in TensorRT wrote into a cache's header."""
    return str(json.loads(cache.read_bytes())["device"])


def variant_record(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "build.json").read_text())
    return dict(manifest["variants"][manifest["latest_variant"]])


def build_log(folder: Path) -> str:
    return "\n".join(path.read_text() for path in sorted((folder / "logs").glob("*.log")))


def other_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_GPU_NAME", "NVIDIA GeForce RTX 3090")
    monkeypatch.setenv("STANDIN_CC", "8.6")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "probe-3090"))  # the probe is cached per machine


def test_first_build_is_cold_and_fills_the_shared_cache_the_next_model_starts_warm(tmp_path: Path) -> None:
    first, said_first = build(make(tmp_path))
    assert first.outcome == "built", first.reason
    folder = tmp_path / "engines" / "stabilityai--sd-turbo"
    record = variant_record(folder)["timing_cache"]
    assert record["state"] == "cold" and record["gpu_key"] == RTX_4090 and record["size"] == 0
    assert any(line.startswith("Timing cache: cold") for line in said_first)
    # The fork keeps it beside the engine folders: a hub id's nest under its owner (stabilityai/).
    own = folder / "stabilityai" / "_timing_cache" / CACHE
    assert own.is_file() and shared(tmp_path).read_bytes() == own.read_bytes()
    assert shared(tmp_path).stat().st_mode == own.stat().st_mode, "readable as the fork's own file is"
    assert record["kept"] == own.stat().st_size
    assert device_of(shared(tmp_path)) == "NVIDIA GeForce RTX 4090|sm_89"

    second, said_second = build(make(tmp_path, model="stabilityai/sdxl-turbo", width=768, height=768))
    assert second.outcome == "built", second.reason
    other = tmp_path / "engines" / "stabilityai--sdxl-turbo"
    record = variant_record(other)["timing_cache"]
    assert record["state"] == "warm" and record["source"] == "shared" and record["gpu_key"] == RTX_4090
    assert record["size"] == own.stat().st_size
    assert any(line.startswith("Timing cache: warm") for line in said_second)
    log = build_log(other)
    assert "Loaded timing cache" in log and "another device" not in log
    # It grew (the SDXL engines' layers) and is the shared one now: a superset of the first.
    grown = json.loads(shared(tmp_path).read_bytes())["entries"]
    assert set(json.loads(own.read_bytes())["entries"]) < set(grown)


def test_a_gpu_of_another_model_never_gets_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(make(tmp_path))
    before = shared(tmp_path).read_bytes()
    other_gpu(tmp_path, monkeypatch)
    result, _ = build(make(tmp_path, model="stabilityai/sdxl-turbo"))
    assert result.outcome == "built", result.reason
    folder = tmp_path / "engines" / "stabilityai--sdxl-turbo"
    record = variant_record(folder)["timing_cache"]
    assert record["state"] == "cold" and record["gpu_key"] == RTX_3090
    log = build_log(folder)
    assert "another device" not in log and "timing cache hits (unet.engine): 0/16" in log, "its first engine: cold"
    assert shared(tmp_path).read_bytes() == before, "the 4090's cache is untouched"
    assert device_of(shared(tmp_path, RTX_3090)) == "NVIDIA GeForce RTX 3090|sm_86"
    assert {cache.gpu_key for cache in timing_cache.shared_caches(tmp_path / "engines")} == {RTX_4090, RTX_3090}


def test_a_cache_of_unknown_origin_in_the_model_folder_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engines folder copied from a machine with a 3090: its model folder holds that GPU's cache, and nothing here
    # says where it came from.
    other_gpu(tmp_path, monkeypatch)
    build(make(tmp_path))
    folder = tmp_path / "engines" / "stabilityai--sd-turbo"
    copied = (folder / "stabilityai" / "_timing_cache" / CACHE).read_bytes()
    (folder / "build.json").unlink()
    for name in ("STANDIN_GPU_NAME", "STANDIN_CC"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "probe-4090"))

    result, lines = build(make(tmp_path))
    assert result.outcome == "built", result.reason
    record = variant_record(folder)["timing_cache"]
    assert record["state"] == "cold" and len(record["set_aside"]) == 1
    aside = folder / record["set_aside"][0]
    assert aside.read_bytes() == copied and aside.name.startswith(CACHE + ".foreign-")
    assert timing_cache.foreign_caches(folder) == [aside]
    assert any("set aside" in line for line in lines)
    assert "another device" not in build_log(folder), "TensorRT was never given the 3090's cache"
    assert device_of(folder / "stabilityai" / "_timing_cache" / CACHE) == "NVIDIA GeForce RTX 4090|sm_89"
    # Recorded as this GPU's now: the next build of the model keeps it.
    again, _ = build(make(tmp_path, denoise_steps=2))
    assert again.outcome == "built" and variant_record(folder)["timing_cache"]["set_aside"] == []
    # Never loaded again: `clean` lists the set-aside cache with the model's leftovers, and removes it.
    leftovers = find_leftovers(tmp_path / "engines")
    assert aside in {item.path for item in leftovers.items if item.kind == "timing_cache"}
    remove_leftovers(tmp_path / "engines", only=[aside])
    assert not aside.exists() and (folder / "stabilityai" / "_timing_cache" / CACHE).exists()


def test_a_failed_build_grows_the_model_cache_but_not_the_shared_one(tmp_path: Path) -> None:
    build(make(tmp_path))
    before = stamp(shared(tmp_path))
    result, _ = build(make(tmp_path, model="standin/fallback-model", width=768, height=768))  # VAEs only
    assert result.outcome == "failed"
    folder = tmp_path / "engines" / "standin--fallback-model"
    own = folder / "standin" / "_timing_cache" / CACHE
    assert len(json.loads(own.read_bytes())["entries"]) > len(json.loads(shared(tmp_path).read_bytes())["entries"])
    assert stamp(shared(tmp_path)) == before
    manifest = json.loads((folder / "build.json").read_text())
    assert manifest["timing_caches"]["standin/_timing_cache/" + CACHE]["gpu_key"] == RTX_4090


def test_a_cancelled_build_leaves_the_shared_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(make(tmp_path))
    before = stamp(shared(tmp_path))
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("STANDIN_GRANDCHILD_PIDFILE", str(pidfile))
    monkeypatch.setenv("STANDIN_FAIL_STAGE", "build")
    cancel = threading.Event()
    box: list[BuildResult] = []
    worker = threading.Thread(target=lambda: box.append(build(make(tmp_path, model="standin/hang-model"), cancel)[0]))
    worker.start()
    wait_until(pidfile.exists, "the hanging build's grandchild")
    cancel.set()
    worker.join(SUITE_TIMEOUT)
    assert box[0].outcome == "cancelled"
    assert stamp(shared(tmp_path)) == before


def test_build_json_without_timing_cache_records_still_loads_and_a_bad_one_is_left_out(tmp_path: Path) -> None:
    variant = {"fingerprint": "f", "engine_key": "k", "config": "configs/v.yaml", "built_at": "now", "engines": []}
    old = parse_manifest(json.dumps({"format": 2, "variants": {"v": variant}}).encode(), tmp_path / "build.json")
    assert old.variants["v"].timing_cache is None and old.timing_caches == {}
    warm = {"state": "warm", "gpu_key": RTX_4090, "tensorrt": TRT, "source": "shared", "size": 1024}
    origin = {"gpu_key": RTX_4090, "tensorrt": TRT, "size": 10, "mtime_ns": 1}
    text = {"variants": {"v": {**variant, "timing_cache": warm}}, "timing_caches": {"_timing_cache/x": origin}}
    read = parse_manifest(json.dumps(text).encode(), tmp_path / "build.json")
    assert read.variants["v"].timing_cache is not None and read.variants["v"].timing_cache.size == 1024
    assert read.timing_caches["_timing_cache/x"].gpu_key == RTX_4090
    poisoned = {
        "variants": {"v": {**variant, "timing_cache": {**warm, "size": 1e30}}},
        "timing_caches": {"a": {**origin, "size": -1}},
    }
    read = parse_manifest(json.dumps(poisoned).encode(), tmp_path / "build.json")
    assert read.variants == {} and read.timing_caches == {} and len(read.skipped) == 2
    with pytest.raises(ManifestUnreadable):
        parse_manifest(json.dumps({"timing_caches": []}).encode(), tmp_path / "build.json")


def _past(seconds: float, warm: bool, name: str) -> PastBuild:
    shape = shape_of(params_from_values({}))
    engines = tuple(
        PastEngine(
            slot=kind,
            kind=kind,
            family=shape.family,
            fp8=shape.fp8,
            static_shapes=shape.static_shapes,
            opt_level=shape.opt_level,
            tiny_vae=shape.tiny_vae,
            width=shape.width,
            height=shape.height,
            batch=shape.unet_batch,
            bytes=1000,
            seconds=seconds,
        )
        for kind in ("unet", "vae_encoder", "vae_decoder")
    )
    return PastBuild("GPU", seconds * 3 + 30, engines, name, warm)


def test_the_estimate_times_warm_and_cold_builds_apart() -> None:
    shape = shape_of(params_from_values({}))
    cold, warm = _past(600, False, "a/cold"), _past(100, True, "b/warm")
    assert estimate(shape, [cold, warm], "GPU", warm=True).time.about == pytest.approx(100 * 3 + 30)
    assert estimate(shape, [cold, warm], "GPU", warm=False).time.about == pytest.approx(600 * 3 + 30)
    from_cold = estimate(shape, [cold], "GPU", warm=True).time
    assert from_cold.about == pytest.approx(600 * 3 + 30)
    assert from_cold.source.code == "est_src_time_warm_from_cold"
    assert "had no timing cache" in said(from_cold.source)
    assert estimate(shape, [warm], "GPU", warm=False).time.source.code == "est_src_time_table"


def test_seed_trusts_only_the_exact_file_recorded_for_this_gpu_and_leaves_other_versions(tmp_path: Path) -> None:
    environment = Environment(
        {"torch": {"gpu_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}, "tensorrt": {"version": TRT}}
    )
    root, folder = tmp_path / "engines", tmp_path / "engines" / "stabilityai--sd-turbo"
    own = folder / "stabilityai" / "_timing_cache" / CACHE
    older = folder / "_timing_cache" / "timing_trt10.13.3.9.cache"  # another TensorRT version: the fork never loads it
    for path, text in ((own, b"ours"), (older, b"old")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    origins: dict[str, TimingCacheOrigin] = {}
    lines: list[str] = []

    def say(code: str, **values: Any) -> None:
        lines.append(code)

    seeded = timing_cache.seed(environment, root, folder, "stabilityai/sd-turbo", origins, say)
    assert seeded is not None and seeded.use.state == "cold" and lines == ["tcache_set_aside", "tcache_cold"]
    assert not own.exists() and older.read_bytes() == b"old"
    # Recorded as this GPU's (what the fork saved), it is trusted and seeds the build: warm from the model's own.
    own.write_bytes(b"timed here")
    timing_cache.note_built(seeded, origins)
    assert set(origins) == {f"stabilityai/_timing_cache/{CACHE}"}
    again = timing_cache.seed(environment, root, folder, "stabilityai/sd-turbo", origins, say)
    assert again is not None and (again.use.state, again.use.source, again.use.set_aside) == ("warm", "model", [])
    # The ControlNet folders' place gets the same cache.
    assert (folder / "_timing_cache" / CACHE).read_bytes() == b"timed here"
    # Changed since (another program wrote it): no longer trusted.
    own.write_bytes(b"changed by someone")
    third = timing_cache.seed(environment, root, folder, "stabilityai/sd-turbo", origins, say)
    assert third is not None and len(third.use.set_aside) == 1
    # No GPU model or TensorRT version known: nothing is touched.
    assert timing_cache.seed(Environment({}), root, folder, "stabilityai/sd-turbo", origins, say) is None
    # Nor for a version the probe's answer says that cannot stand in a file name (it would lead out of the folder).
    gpu = {"gpu_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
    tricked = Environment({"torch": gpu, "tensorrt": {"version": "../../../x"}})
    assert timing_cache.seed(tricked, root, folder, "stabilityai/sd-turbo", origins, say) is None
    assert not timing_cache.expect_warm(tricked, root)
    assert timing_cache.gpu_key("NVIDIA GeForce RTX 4090/..\\x", "8.9") == "NVIDIA-GeForce-RTX-4090-..-x-cc89"


def test_keep_copies_the_grown_cache_unless_a_build_on_an_identical_gpu_kept_a_larger_one(tmp_path: Path) -> None:
    environment = Environment(
        {"torch": {"gpu_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}, "tensorrt": {"version": TRT}}
    )
    root, folder = tmp_path / "engines", tmp_path / "engines" / "local-model"
    said_codes: list[str] = []

    def say(code: str, **values: Any) -> None:
        said_codes.append(code)

    seeded = timing_cache.seed(environment, root, folder, "/models/local-model.safetensors", {}, say)
    assert seeded is not None and seeded.targets == [folder / "_timing_cache" / CACHE]  # a local model: no owner nest
    timing_cache.keep(seeded, say)
    assert not shared(tmp_path).exists(), "nothing grew: nothing kept"
    seeded.targets[0].parent.mkdir(parents=True)
    seeded.targets[0].write_bytes(b"grown" * 10)
    shared(tmp_path).parent.mkdir(parents=True)
    shared(tmp_path).write_bytes(b"another build's, larger" * 10)  # kept meanwhile by a build on the second 4090
    timing_cache.keep(seeded, say)
    assert said_codes[-1] == "tcache_kept_other" and shared(tmp_path).read_bytes() == b"another build's, larger" * 10
    shared(tmp_path).write_bytes(b"small")
    timing_cache.keep(seeded, say)
    assert said_codes[-1] == "tcache_kept" and shared(tmp_path).read_bytes() == b"grown" * 10
    assert seeded.use.kept == 50
