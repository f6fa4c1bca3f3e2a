"""Disk: sizes in the library and `clean`, which lists what no build refers to and removes exactly that (issue 20).

Two builds with the stand-ins, then every kind of leftover beside them: engines of another TensorRT version, a
removed build's engine folder, ONNX leftovers in a used folder and a crashed build's folder, a set-aside folder, old
and fresh temp files, old logs, timing caches of other versions and GPUs, links pointing out of the engines folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from sdprep import cli
from sdprep.clean import find_leftovers, remove_leftovers
from sdprep.disk import disk_use, folder_size
from sdprep.engines import list_models
from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.check import CheckOptions, run_check
from sdprep.jobs.process import ChildSpec
from sdprep.locks import model_lock
from sdprep.params import params_from_values
from sdprep.text import t
from sdprep.timing_cache import gpu_key

from .conftest import STANDIN, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
SLUG = "stabilityai--sd-turbo"
GPU_KEY = gpu_key("NVIDIA GeForce RTX 4090", "8.9")  # the stand-in's GPU, as its builds record it
OLD = time.time() - 3600


def build(engines: Path, **values: object) -> None:
    result = run_build(params_from_values({"engines_dir": str(engines), **values}), runtime_defaults(), OPTIONS)
    assert result.ok, result.reason


def write(path: Path, size: int, old: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def clean_cli(engines: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["clean", "--engines-dir", str(engines), *extra], runtime_defaults(), lambda args: 0, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def engines(tmp_path: Path) -> Path:
    root = tmp_path / "engines"
    build(root)
    build(root, width=768, height=768)
    return root


def leftovers(engines: Path, outside: Path) -> dict[str, int]:
    """Every kind of leftover, beside the builds; what clean must list (relative path -> bytes)."""
    model = engines / SLUG
    vae = next(path.parent for path in model.rglob("vae_encoder.engine") if "res-512x512" in path.parent.name)
    unet = next(path.parent for path in model.rglob("unet.engine") if "res-512x512" in path.parent.name)
    other_trt = vae.with_name(vae.name.replace("--trt10.16.1.11--cc89", "--trt10.9.0.34--cc86"))
    write(other_trt / "vae_encoder.engine", 300)
    write(other_trt / "vae_decoder.engine", 200)
    removed = model / "stabilityai" / "sd-turbo--h0123456789ab--res-640x640"
    write(removed / "unet.engine", 1000)
    write(removed / "build_stats.json", 10)
    (removed / "escape").symlink_to(outside / "precious.bin")  # a link inside what goes: the link goes, not its target
    for name, size in (("unet.onnx", 40), ("unet.opt.onnx", 30), ("weights.pb", 500), ("onnx__MatMul_12", 20)):
        write(unet / name, size)
    crashed = model / "stabilityai" / "sd-turbo--hfedcba987654--res-896x896"
    write(crashed / "unet.onnx", 70)
    write(crashed / "build_stats.json", 5)
    write(model / ".aside" / "20260101-000000" / "stabilityai" / "x--res-512x512" / "unet.engine", 60)
    write(model / ".config.yaml.k3j2.tmp", 7, old=True)
    write(model / "configs" / ".v.yaml.abcd.tmp", 8, old=True)
    for index in range(3):
        write(model / "logs" / f"20200101-00000{index}-1step-failed.log", 11, old=True)
    caches = model / "stabilityai" / "_timing_cache"
    write(caches / "timing_trt10.9.0.34.cache", 90)
    shared = engines / ".timing_cache"
    write(shared / GPU_KEY / "timing_trt9.0.1.cache", 80)
    write(shared / "NVIDIA-RTX-A4000-cc86" / "timing_trt10.16.1.11.cache", 50)
    return {
        other_trt.relative_to(engines).as_posix(): 500,
        removed.relative_to(engines).as_posix(): 1010,
        **{
            (unet / name).relative_to(engines).as_posix(): size
            for name, size in (("unet.onnx", 40), ("unet.opt.onnx", 30), ("weights.pb", 500), ("onnx__MatMul_12", 20))
        },
        crashed.relative_to(engines).as_posix(): 75,
        f"{SLUG}/.aside": 60,
        f"{SLUG}/.config.yaml.k3j2.tmp": 7,
        f"{SLUG}/configs/.v.yaml.abcd.tmp": 8,
        **{f"{SLUG}/logs/20200101-00000{index}-1step-failed.log": 11 for index in range(3)},
        f"{SLUG}/stabilityai/_timing_cache/timing_trt10.9.0.34.cache": 90,
        f".timing_cache/{GPU_KEY}/timing_trt9.0.1.cache": 80,
        ".timing_cache/NVIDIA-RTX-A4000-cc86/timing_trt10.16.1.11.cache": 50,
    }


def kept_things(engines: Path, outside: Path) -> list[Path]:
    """What clean must leave: used caches, fresh temp files, the newest log, links out and what they point to."""
    model = engines / SLUG
    kept = [
        write(model / "stabilityai" / "_timing_cache" / "timing_trt10.16.1.11.cache", 90),
        write(engines / ".timing_cache" / GPU_KEY / "timing_trt10.16.1.11.cache", 80),
        write(model / ".config.yaml.fresh.tmp", 7),  # a write going on now
        write(model / "logs" / "29990101-000000-newest.log", 11),  # the newest run: kept (--keep-logs 1)
        write(outside / "precious.bin", 5),
    ]
    (model / "stabilityai" / "link-out").symlink_to(outside, target_is_directory=True)
    (engines / "linked-model").symlink_to(outside, target_is_directory=True)
    return [*kept, model / "stabilityai" / "link-out", engines / "linked-model"]


def test_clean_lists_exactly_what_no_build_uses_and_removes_exactly_that(
    engines: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))  # the check's child finds the stand-in
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = leftovers(engines, outside)
    kept = kept_things(engines, outside)
    model = engines / SLUG
    listed = next(model for model in list_models(engines) if model.slug == SLUG)
    recorded = {engine["path"] for variant in listed.variants for engine in variant.engines}

    plan = find_leftovers(engines, keep_logs=1)
    assert {item.shown(engines): item.size for item in plan.items} == expected
    assert plan.total == sum(expected.values())
    other = next(item for item in plan.items if item.kind == "engines_other")
    assert other.tag == "10.9.0.34, cc86"
    assert [said(skipped.reason) for skipped in plan.skipped] == [t("clean_skip_outside")]

    code, out, err = clean_cli(engines, "--keep-logs", "1")
    assert code == 0, err
    for relative in expected:
        assert relative in out
    assert t("clean_total", count=len(expected), size="").split(",")[0] in out
    assert f"clean --engines-dir {engines} --keep-logs 1 --yes" in out
    assert all((engines / relative).exists() or (engines / relative).is_symlink() for relative in expected)

    code, out, err = clean_cli(engines, "--keep-logs", "1", "--yes")
    assert code == 0, err
    assert t("clean_removed", count=len(expected), size="").split(",")[0] in out
    for relative in expected:
        assert not os.path.lexists(engines / relative), relative
    for path in kept:
        assert os.path.lexists(path), path
    assert (outside / "precious.bin").read_bytes() == b"xxxxx"
    assert not [path for path in model.iterdir() if path.name.startswith(".clean-")], "no working folder is left"
    assert find_leftovers(engines, keep_logs=1).items == []
    listed = next(model for model in list_models(engines) if model.slug == SLUG)
    assert {variant.status for variant in listed.variants} == {"ready"}
    assert {engine["path"] for variant in listed.variants for engine in variant.engines} == recorded
    for variant in listed.variants:  # the builds still load and run
        result = run_check(variant.config, CheckOptions(warmup=0, frames=2), lambda event: None)
        assert result.outcome == "passed", said(result.reason)


def test_a_model_that_builds_or_checks_is_skipped(engines: Path) -> None:
    model = engines / SLUG
    leftover = write(next(model.rglob("unet.engine")).parent / "unet.onnx", 40)
    write(engines / ".timing_cache" / "NVIDIA-RTX-A4000-cc86" / "timing_trt10.16.1.11.cache", 50)
    lock = model_lock(model)
    assert lock.acquire(f"build of {model}", wait=False, job="build")
    try:
        plan = find_leftovers(engines)
        assert plan.items == [] and not plan.shared_judged
        assert [(skipped.model, said(skipped.reason)) for skipped in plan.skipped] == [
            (SLUG, t("clean_skip_busy", job=t("job_build")))
        ]
        code, out, _ = clean_cli(engines, "--yes")
        assert code == 0 and t("clean_skipped", model=SLUG, reason=t("clean_skip_busy", job=t("job_build"))) in out
        assert leftover.exists(), "nothing of a model that builds is removed"
    finally:
        lock.release()
    assert {item.path for item in find_leftovers(engines).items} == {
        leftover,
        engines / ".timing_cache" / "NVIDIA-RTX-A4000-cc86" / "timing_trt10.16.1.11.cache",
    }


def test_only_what_was_shown_is_removed_and_a_failure_leaves_it_in_place(
    engines: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = next((engines / SLUG).rglob("unet.engine")).parent
    shown = [write(folder / "unet.onnx", 40), write(folder / "weights.pb", 500)]
    later = write(folder / "unet.opt.onnx", 30)  # appeared after the list was shown: not removed this time
    gone = engines / SLUG / "logs" / "20200101-000000-gone.log"  # shown, then gone: said, nothing else happens
    rename = os.rename

    def failing(source: object, target: object) -> None:
        if str(source).endswith("weights.pb"):
            raise PermissionError(13, "Permission denied")
        rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", failing)
    removal = remove_leftovers(engines, only=[*shown, gone])
    assert [item.path for item in removal.removed] == [shown[0]]
    assert [(item.path, said(reason)) for item, reason in removal.failed] == [(shown[1], t("os_denied"))]
    assert removal.freed == 40
    assert not shown[0].exists() and shown[1].exists() and later.exists()


def test_engines_of_a_model_without_recorded_builds_are_not_judged(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    model = engines / "by-hand"
    write(model / "config.yaml", 10)
    engine = write(model / "x--trt9.0--cc75--res-512x512" / "unet.engine", 100)
    onnx = write(model / "x--trt9.0--cc75--res-512x512" / "unet.onnx", 100)
    assert [item.path for item in find_leftovers(engines).items] == [onnx]
    assert engine.exists()
    write(engines / "not-a-model" / "mine" / "model.onnx", 10)  # no build.json or config.yaml: not the app's
    assert [item.path for item in find_leftovers(engines).items] == [onnx]


def test_an_exiled_recorded_engine_in_aside_is_kept(engines: Path) -> None:
    """A killed build left a recorded engine in .aside: its place is empty, the next build puts it back."""
    model = engines / SLUG
    unet = next(model.rglob("unet.engine"))
    relative = unet.relative_to(model)
    exiled = model / ".aside" / "20260101-000000" / relative
    exiled.parent.mkdir(parents=True)
    os.replace(unet, exiled)
    other = write(model / ".aside" / "20260101-000000" / "stabilityai" / "old" / "unet.engine", 60)
    assert [item.path for item in find_leftovers(engines).items] == [other]


def test_list_shows_the_size_of_every_build_model_and_the_folder_and_the_free_space(engines: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["list", "--engines-dir", str(engines)], runtime_defaults(), lambda args: 0, out, err) == 0
    (model,) = list_models(engines)
    use = disk_use(engines)
    assert model.size == folder_size(engines / SLUG) == use.entries[SLUG] and use.total >= model.size > 0
    assert use.free is not None and use.free > 0
    text = out.getvalue()
    assert t("lib_model_size", size=_size(model.size)) in text
    assert t("lib_disk", folder=engines, size=_size(use.total), free=_size(use.free)).split(";")[0] in text
    for variant in model.variants:
        assert _size(variant.size) in said(variant.headline()) and variant.size > 0
    out = io.StringIO()
    assert cli.main(["list", "--engines-dir", str(engines), "--json"], runtime_defaults(), lambda a: 0, out, err) == 0
    assert json.loads(out.getvalue())[0]["size"] == model.size


def test_a_folder_size_follows_changes_and_tolerates_a_folder_that_vanishes(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    write(folder / "a" / "one.engine", 100, old=True)
    write(folder / "b" / "two.engine", 50, old=True)
    assert folder_size(folder) == 150
    assert folder_size(folder) == 150  # from the kept listings
    write(folder / "a" / "three.onnx", 25, old=True)
    assert folder_size(folder) == 175
    shutil.rmtree(folder / "b")
    assert folder_size(folder) == 125
    assert folder_size(tmp_path / "nothing") == 0


def _size(value: int) -> str:
    from sdprep.messages import Size

    return t("size_only", size=Size(value))


def test_a_working_folder_that_cannot_be_deleted_is_reported_and_listed_next_time(
    engines: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx = write(next((engines / SLUG).rglob("unet.engine")).parent / "unet.onnx", 40)

    def refuse(path: object, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "rmtree", refuse)
    code, _, err = clean_cli(engines, "--yes")
    assert code == 1 and not onnx.exists()
    (trash,) = [path for path in (engines / SLUG).iterdir() if path.name.startswith(".clean-")]
    assert t("clean_unfinished", path=trash, reason=t("os_denied")) in err
    monkeypatch.undo()
    plan = find_leftovers(engines)
    assert [(item.path, item.kind, item.size) for item in plan.items] == [(trash, "unfinished", 40)]
    assert remove_leftovers(engines).removed and not trash.exists()
