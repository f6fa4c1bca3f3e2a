"""A model's folder read safely (issue 16 items 3, 4, 7, 9; issue 23 items 1, 3, 4): build records typed and bounded,
parsed once per change, links checked, working folders never walked, unknown values worded, locks naming their job.

A poisoned build.json always sits in ANOTHER model's folder: it must not break anything about the model in hand.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from sdprep import derive, model_folder
from sdprep.engines import find_model, list_models
from sdprep.estimate import estimate, load_history, shape_of
from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.locks import model_lock
from sdprep.manifest import parse_manifest
from sdprep.params import BakedParams, params_from_values
from sdprep.paths import StampCache
from sdprep.save import save_config
from sdprep.text import word
from sdprep.ui.views.library import library_html

from .conftest import ROOT, STANDIN, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
RUNTIME = runtime_defaults()
VICTIM = "victim--model"  # the other model's folder, where the poison sits


def params(engines: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(engines), **values})


def build(engines: Path, **values: Any) -> None:
    result = run_build(params(engines, **values), RUNTIME, OPTIONS)
    assert result.ok, said(result.reason)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    return subprocess.run(
        [sys.executable, str(ROOT / "gradio_prepare.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def age(path: Path, seconds: float = 60) -> None:
    """Date a file back, out of the cache's 'written just now' window (so a test sees what a running server sees)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.fixture
def engines(tmp_path: Path) -> Path:
    """An engines folder with one real build (sd-turbo) and a copy of it as another model's folder."""
    root = tmp_path / "engines"
    build(root)
    shutil.copytree(root / "stabilityai--sd-turbo", root / VICTIM)
    return root


def victim_manifest(engines: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((engines / VICTIM / "build.json").read_text())
    data["model"] = "victim/model"
    return data


def write_victim(engines: Path, data: dict[str, Any] | str) -> None:
    text = data if isinstance(data, str) else json.dumps(data)  # json writes NaN and Infinity as JavaScript does
    (engines / VICTIM / "build.json").write_text(text)


def first_variant(data: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], next(iter(data["variants"].values())))


def poison(kind: str, data: dict[str, Any]) -> dict[str, Any] | str:
    variant = first_variant(data)
    engine = variant["actual"]["engines"][0]
    if kind == "infinity-width":
        engine["width"] = math.inf
    elif kind == "nan-time":
        engine["seconds"] = math.nan
    elif kind == "1e20-bytes":
        engine["bytes"] = 1e20
    elif kind == "negative-sizes":
        engine["bytes"] = -3_000_000_000_000_000
        next(iter(data["engines"].values()))["size"] = -3_000_000_000_000_000
    elif kind == "1e300-time":
        engine["seconds"] = 1e300
        variant["duration"] = 1e300
    elif kind == "nested-3000":
        return json.dumps(data)[:-1] + ', "deep": ' + "[" * 3000 + "]" * 3000 + "}"
    return data


POISONS = ["infinity-width", "nan-time", "1e20-bytes", "negative-sizes", "1e300-time", "nested-3000"]


@pytest.mark.parametrize("kind", POISONS)
def test_a_poisoned_build_record_of_another_model_breaks_nothing_and_is_named_once(
    kind: str, engines: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_victim(engines, poison(kind, victim_manifest(engines)))
    caplog.set_level(logging.WARNING)
    # The estimate (the preview's and the build's): only the good build teaches it, every figure finite and sane.
    history = load_history(engines)
    assert [past.name.split("/")[0] for past in history] == ["stabilityai--sd-turbo"], history
    promised = estimate(shape_of(params(engines), True), history, "NVIDIA GeForce RTX 4090")
    assert 0 < promised.disk_needed < 100 * 1024**3, promised
    assert math.isfinite(promised.time.high) and promised.time.high < 24 * 3600, promised.time
    # The preview of a local model whose folder is the poisoned one (its owner is read from build.json).
    local = engines.parent / "models" / "victim--model"
    local.mkdir(parents=True)
    assert derive.engine_dir(params(engines, model=str(local))).parent == engines
    from sdprep.ui.components.preview import estimate_text

    shown = estimate_text(params(engines), [], "en")
    assert "TiB" not in shown and "nan" not in shown.lower() and "inf" not in shown.lower(), shown
    # The library: the poisoned model is listed, its bad record left out and named, or the file unreadable.
    models = {model.slug: model for model in list_models(engines)}
    victim, turbo = models[VICTIM], models["stabilityai--sd-turbo"]
    assert turbo.latest is not None and turbo.latest.status == "ready"
    if kind == "nested-3000":
        assert victim.unreadable, victim
    elif kind in ("negative-sizes",):
        assert victim.skipped and "outside" in victim.skipped[0], victim.skipped
        assert "Build records left out" in library_html([victim], engines, "en")
    else:
        actual_is_poisoned = kind in ("infinity-width", "nan-time", "1e20-bytes")
        assert victim.skipped or actual_is_poisoned, victim
    assert library_html(list(models.values()), engines, "en")
    # Named once, however often the form changes.
    for _ in range(5):
        load_history(engines)
        list_models(engines)
    named = [record.getMessage() for record in caplog.records if VICTIM in record.getMessage()]
    assert kind == "nested-3000" or len(named) == len(set(named)) >= 1, named


@pytest.mark.parametrize("kind", ["infinity-width", "nan-time", "1e20-bytes", "nested-3000"])
def test_the_cli_builds_beside_a_poisoned_record(kind: str, engines: Path) -> None:
    write_victim(engines, poison(kind, victim_manifest(engines)))
    done = cli("build", "--steps", "2", "--engines-dir", str(engines), cwd=engines.parent)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "TiB" not in done.stdout + done.stderr
    listing = cli("list", "--engines-dir", str(engines), cwd=engines.parent)
    assert listing.returncode == 0 and VICTIM in listing.stdout, listing.stderr


def test_values_a_newer_version_wrote_read_as_unknown(engines: Path) -> None:
    data = victim_manifest(engines)
    variant = first_variant(data)
    variant["profile"] = "turbo"
    variant["check"] = {
        "outcome": "skipped",
        "checked_at": "2030-01-01T00:00:00+0000",
        "reason": {"code": "reason_from_the_future", "params": {"n": 1}},
    }
    write_victim(engines, data)
    [victim] = [model for model in list_models(engines) if model.slug == VICTIM]
    for lang, unknown in (("en", "unknown"), ("ru", "неизвестно")):
        html = library_html([victim], engines, lang)
        assert f"{unknown} (turbo)" in html and f"{unknown} (skipped)" in html, html
        assert f"{unknown} (reason_from_the_future)" in html, html
    listing = cli("list", "--engines-dir", str(engines), cwd=engines.parent)
    assert listing.returncode == 0, listing.stderr
    assert "unknown (skipped)" in listing.stdout, listing.stdout
    as_json = cli("list", "--json", "--engines-dir", str(engines), cwd=engines.parent)
    assert as_json.returncode == 0 and "turbo" in as_json.stdout, as_json.stderr


def test_build_records_are_parsed_once_per_change(engines: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A form change of a local model asks whose its folder is and what earlier builds took: parsed once."""
    parsed: list[Path] = []
    real = parse_manifest

    def counting(raw: bytes, path: Path) -> Any:
        parsed.append(path)
        return real(raw, path)

    monkeypatch.setattr(model_folder, "parse_manifest", counting)
    for folder in model_folder.model_folders(engines):  # not the shared timing cache's dot folder
        age(folder / "build.json")
    local = engines.parent / "models" / "victim--model"
    local.mkdir(parents=True)
    for _ in range(10):
        derive.engine_dir(params(engines, model=str(local)))
        load_history(engines)
        list_models(engines)
    assert sorted(path.parent.name for path in parsed) == sorted(["stabilityai--sd-turbo", VICTIM]), parsed
    write_victim(engines, victim_manifest(engines))  # a change: parsed again, once
    age(engines / VICTIM / "build.json", 30)
    for _ in range(3):
        list_models(engines)
    assert [path.parent.name for path in parsed].count(VICTIM) == 2


def test_the_library_reads_while_a_build_sets_engines_aside(engines: Path) -> None:
    """A build creates and removes .aside/ (and engine folders) while the page lists the library: never an error."""
    folder = engines / "stabilityai--sd-turbo"
    stop = threading.Event()
    cycles = [0]

    def churn() -> None:
        while not stop.is_set():
            for top in (folder / ".aside" / "20260101-000000", folder / "stabilityai" / "sd-turbo--moving"):
                deep = top / "a" / "b"
                deep.mkdir(parents=True, exist_ok=True)
                (deep / "unet.engine").write_bytes(b"x")
                shutil.rmtree(top, ignore_errors=True)
            shutil.rmtree(folder / ".aside", ignore_errors=True)
            cycles[0] += 1

    worker = threading.Thread(target=churn, name="aside-churn")
    worker.start()
    errors: list[BaseException] = []
    try:
        for _ in range(1500):
            try:
                models = list_models(engines)
                assert {model.slug for model in models} == {"stabilityai--sd-turbo", VICTIM}
                assert all(".aside" not in engine["path"] for m in models for v in m.variants for engine in v.engines)
            except BaseException as error:  # counted: the test is about zero of them
                errors.append(error)
    finally:
        stop.set()
        worker.join()
    assert cycles[0] > 50, "the churn ran alongside"
    assert not errors, f"{len(errors)} of 1500 listings failed, first: {errors[0]!r}"


def test_links_out_of_the_engines_folder_are_shown_and_never_read(engines: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.yaml").write_text("model_id: secret/outside-model\nwidth: 768\n")
    (outside / "build.json").write_text(json.dumps(victim_manifest(engines)))
    (engines / "linked-config").mkdir()
    (engines / "linked-config" / "config.yaml").symlink_to(outside / "config.yaml")
    (engines / "linked-records").mkdir()
    (engines / "linked-records" / "build.json").symlink_to(outside / "build.json")
    (engines / "linked-folder").symlink_to(outside, target_is_directory=True)
    (engines / "alias").symlink_to(engines / VICTIM, target_is_directory=True)
    models = {model.slug: model for model in list_models(engines)}
    assert "alias" not in models, "a link to a folder inside is that folder again"
    config_link = models["linked-config"]
    assert config_link.config_outside and config_link.config is None and config_link.model == "?"
    assert models["linked-records"].outside and not models["linked-records"].variants
    assert models["linked-folder"].outside and models["linked-folder"].config is None
    found = find_model(engines, "linked-config")
    assert found is not None and found.config is None, "Load has nothing to read"
    html = library_html(list(models.values()), engines, "en")
    assert "secret/outside-model" not in html and str(outside) not in html, html
    assert "points outside the engines folder" in html
    listing = cli("list", "--engines-dir", str(engines), cwd=tmp_path)
    assert listing.returncode == 0 and "secret" not in listing.stdout, listing.stdout
    assert "points outside" in listing.stdout


def test_save_refuses_a_model_folder_that_resolves_outside(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    engines.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (engines / "stabilityai--sd-turbo").symlink_to(outside, target_is_directory=True)
    saved = save_config(params(engines), RUNTIME)
    assert saved.outcome == "refused" and "points outside the engines folder" in said(saved.reason), saved
    assert list(outside.iterdir()) == []
    (engines / "stabilityai--sd-turbo").unlink()
    (engines / "stabilityai--sd-turbo").mkdir()
    (engines / "stabilityai--sd-turbo" / "configs").symlink_to(outside, target_is_directory=True)
    saved = save_config(params(engines), RUNTIME)
    assert saved.outcome == "refused" and list(outside.iterdir()) == [], saved


def test_a_build_refuses_a_model_folder_that_resolves_outside(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    engines.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (engines / "stabilityai--sd-turbo").symlink_to(outside, target_is_directory=True)
    done = cli("build", "--engines-dir", str(engines), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "points outside the engines folder" in done.stdout + done.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("value", ["5", "[engines, other]", "{a: 1}", "true"])
def test_build_from_config_refuses_an_engine_dir_that_is_not_text(value: str, tmp_path: Path) -> None:
    config = tmp_path / "hand.yaml"
    config.write_text(f"model_id: stabilityai/sd-turbo\nengine_dir: {value}\n")
    done = cli("build", "--from-config", str(config), "--config-only", "--engines-dir", "engines", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "engine_dir" in lines[0] and "--from-config" in lines[0], done.stderr
    assert not (tmp_path / "engines").exists()


def test_a_save_refused_during_a_check_names_the_check(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    folder = derive.engine_dir(params(engines))
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from sdprep.locks import model_lock;"
            "lock = model_lock(Path(sys.argv[1])); assert lock.acquire('check of config.yaml', job='check');"
            "print('held', flush=True); time.sleep(60)",
            str(folder),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        saved = save_config(params(engines), RUNTIME)
        assert saved.outcome == "busy", saved
        assert "a check" in said(saved.reason) and "being built" not in said(saved.reason), said(saved.reason)
        assert "проверка" in word(saved.reason, "ru")
    finally:
        holder.kill()
        holder.wait()
    assert model_lock(folder).acquire("test", wait=False)


def test_the_stamp_cache_parses_once_per_change_and_stays_within_its_bytes(tmp_path: Path) -> None:
    parsed: list[str] = []

    def parse(path: Path) -> str:
        parsed.append(path.name)
        return path.read_text()

    cache: StampCache[str | None] = StampCache(size=8, file_bytes=100)
    first, second = tmp_path / "first", tmp_path / "second"
    for path in (first, second):
        path.write_text("x" * 80)
        age(path)
    assert [cache.get(first, parse, None) for _ in range(3)] == ["x" * 80] * 3 and parsed == ["first"]
    cache.get(second, parse, None)  # 160 bytes behind two entries: the first goes
    cache.get(first, parse, None)
    assert parsed == ["first", "second", "first"]
    first.write_text("y" * 80)  # written just now: not kept, so a second write in the same tick is seen
    assert cache.get(first, parse, None) == "y" * 80
    first.write_text("z" * 80)
    assert cache.get(first, parse, None) == "z" * 80
    assert cache.get(tmp_path / "missing", parse, None) is None
