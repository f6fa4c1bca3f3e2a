"""Packs: one build in one file, unpacked on an identical machine (the stand-in plays both machines).

Builds and checks run against the stand-in StreamDiffusion; pack and unpack run in this process (their probe in a
child Python) and through the CLI for its exit codes and last lines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from sdprep.config_load import read_config
from sdprep.engines import list_models
from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.check import CheckOptions, run_check
from sdprep.jobs.process import ChildSpec
from sdprep.locks import model_lock
from sdprep.manifest import parse_manifest
from sdprep.model_folder import read_manifest
from sdprep.pack import pack
from sdprep.pack_archive import PackProblem
from sdprep.pack_manifest import APP_VERSION, MANIFEST_ENTRY, PACK_SUFFIX
from sdprep.params import params_from_values
from sdprep.unpack import packs_in, unpack

from .conftest import ROOT, STANDIN, runtime_defaults, said
from .conftest import run_cli as cli

SPEC = ChildSpec(streamdiffusion_src=str(STANDIN))
SLUG = "stabilityai--sd-turbo"


@pytest.fixture(autouse=True)
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))


def build(engines: Path, **values: object) -> Path:
    result = run_build(
        params_from_values({"engines_dir": str(engines), **values}), runtime_defaults(), BuildOptions(child=SPEC)
    )
    assert result.ok, said(result.reason)
    assert result.config_path is not None
    return result.config_path


def written_under(folder: Path) -> list[str]:
    """Everything under a folder (working folders too): what an unpack that was refused must not have left."""
    if not folder.exists():
        return []
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    config = build(tmp_path / "here")
    return pack(config, spec=SPEC).path


def test_pack_unpack_into_another_engines_folder_and_check_passes(tmp_path: Path, packed: Path) -> None:
    assert packed.parent == tmp_path / "here" and packed.name.endswith(PACK_SUFFIX)
    with zipfile.ZipFile(packed) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read(MANIFEST_ENTRY))
    assert names[-1] == MANIFEST_ENTRY and f"{SLUG}/config.yaml" in names and f"{SLUG}/build.json" in names
    assert {item["role"] for item in manifest["files"]} == {"config", "record", "engine"}
    assert manifest["built_on"]["compute_capability"] == "8.9" and manifest["built_on"]["tensorrt"] == "10.16.1.11"
    assert manifest["built_on"]["gpu"] == "NVIDIA GeForce RTX 4090" and manifest["built_on"]["driver"] == "570.86.10"
    assert manifest["model"] == {
        "id": "stabilityai/sd-turbo",
        "local": False,
        "size": None,
        "sha256": None,
        "included": None,
    }
    assert manifest["app_version"] == APP_VERSION

    there = tmp_path / "there"
    done = unpack(packed, there, SPEC)
    folder = there / SLUG
    assert done.config_path == folder / "config.yaml"
    assert read_config(done.config_path)["engine_dir"] == folder.as_posix()
    assert folder.as_posix() in done.config_path.read_text(encoding="utf-8").split("\n")[1]  # the header's path too
    record = read_manifest(folder).variants[done.manifest.variant]
    assert record.imported is not None and record.imported.pack == packed.name and record.imported.machine
    assert record.imported.gpu == "NVIDIA GeForce RTX 4090" and record.imported.imported_at
    assert record.log is None, "the build's log is not in the pack"
    assert record.params["engines_dir"] == str(there)
    (model,) = list_models(there)
    assert [variant.status for variant in model.variants] == ["ready"]
    assert [said(need) for need in done.needs] == [
        "To run, the inference loads stabilityai/sd-turbo from Hugging Face (or its cache) the first time."
    ]
    assert not [name for name in written_under(there) if name.startswith(".")]

    checked = run_check(done.config_path, CheckOptions(child=SPEC, warmup=1, frames=2))
    assert checked.outcome == "passed", said(checked.reason)


def test_the_check_image_travels_with_the_build(tmp_path: Path) -> None:
    config = build(tmp_path / "here")
    assert run_check(config, CheckOptions(child=SPEC, warmup=1, frames=2)).outcome == "passed"
    packed = pack(config, spec=SPEC)
    assert [item.path for item in packed.manifest.entry("image")] == [f"{SLUG}/check.png"]
    done = unpack(packed.path, tmp_path / "there", SPEC)
    image = done.folder / "check.png"
    assert image.read_bytes() == (config.parent / "check.png").read_bytes()
    record = read_manifest(done.folder).variants[done.manifest.variant]
    assert record.check is not None and record.check.image == "check.png" and record.check.outcome == "passed"


def test_unpacking_twice_is_the_same_build(tmp_path: Path, packed: Path) -> None:
    there = tmp_path / "there"
    first = unpack(packed, there, SPEC)
    again = unpack(packed, there, SPEC)
    assert again.config_path == first.config_path
    (model,) = list_models(there)
    assert [variant.status for variant in model.variants] == ["ready"]


def flip_a_byte(pack_path: Path, role: str) -> str:
    """Flip one byte inside the stored data of the first entry of `role`; its name."""
    with zipfile.ZipFile(pack_path) as archive:
        manifest = json.loads(archive.read(MANIFEST_ENTRY))
        name = next(item["path"] for item in manifest["files"] if item["role"] == role)
        info = archive.getinfo(name)
    with open(pack_path, "r+b") as file:
        file.seek(info.header_offset + 26)
        name_length, extra_length = int.from_bytes(file.read(2), "little"), int.from_bytes(file.read(2), "little")
        at = info.header_offset + 30 + name_length + extra_length + info.file_size // 2
        file.seek(at)
        byte = file.read(1)
        file.seek(at)
        file.write(bytes([byte[0] ^ 0xFF]))
    return str(name)


def test_a_flipped_byte_is_refused_with_nothing_written(tmp_path: Path, packed: Path) -> None:
    name = flip_a_byte(packed, "engine")
    there = tmp_path / "there"
    with pytest.raises(PackProblem) as refused:
        unpack(packed, there, SPEC)
    assert refused.value.outcome == "refused" and name in said(refused.value.message)
    assert written_under(there) == []


def test_a_pack_for_another_compute_capability_is_refused_with_the_rebuild_line(
    tmp_path: Path, packed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_CC", "9.0")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "other-cache"))  # another machine: its own probe
    there = tmp_path / "there"
    with pytest.raises(PackProblem) as refused:
        unpack(packed, there, SPEC)
    text = said(refused.value.message)
    assert refused.value.outcome == "unavailable"
    assert "compute capability 8.9 in the pack, 9.0 here" in text
    assert f"python gradio_prepare.py build --from-config {packed} --engines-dir {there}" in text
    assert written_under(there) == []


def test_a_pack_for_another_tensorrt_is_refused(tmp_path: Path, packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_TRT_VERSION", "10.9.0.34")
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(tmp_path / "other-cache"))
    with pytest.raises(PackProblem) as refused:
        unpack(packed, tmp_path / "there", SPEC)
    assert refused.value.outcome == "unavailable" and "TensorRT 10.16.1.11 in the pack, 10.9.0.34 here" in said(
        refused.value.message
    )


def evil_pack(path: Path, entries: list[tuple[zipfile.ZipInfo, bytes]], folder: str = SLUG) -> Path:
    """A pack whose manifest lists exactly `entries` (with their true hashes): only their names or kinds are wrong."""
    files = [
        {"path": info.filename, "sha256": hashlib.sha256(data).hexdigest(), "role": "engine", "size": len(data)}
        for info, data in entries
    ]
    manifest = {
        "kind": "sdprep-pack",
        "format": 1,
        "app_version": APP_VERSION,
        "created_at": "2026-01-01T00:00:00+0000",
        "machine": "elsewhere",
        "folder": folder,
        "variant": "v",
        "config": "configs/v.yaml",
        "current": False,
        "built_on": {"compute_capability": "8.9", "tensorrt": "10.16.1.11"},
        "model": {"id": "stabilityai/sd-turbo", "local": False},
        "files": files,
    }
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
        archive.writestr(MANIFEST_ENTRY, json.dumps(manifest))
    return path


def entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([entry("/etc/evil")], "an absolute path"),
        ([entry("C:/evil")], "an absolute path"),
        ([entry(f"{SLUG}/../../evil")], "'..'"),
        ([entry("../evil")], "'..'"),
        ([entry(f"{SLUG}\\..\\evil")], "a backslash"),
        ([entry("elsewhere--model/unet.engine")], "outside the model folder"),
        ([entry(f"{SLUG}/.aside/unet.engine")], "a dot name"),
        ([entry(f"{SLUG}/link", stat.S_IFLNK | 0o777)], "a link"),
        ([entry(f"{SLUG}/device", stat.S_IFCHR | 0o644)], "a link or a special file"),
        ([entry(f"{SLUG}/a.engine"), entry(f"{SLUG}/A.engine")], "a second entry"),
        ([entry(f"{SLUG}/nul.engine")], "a name no file system takes"),
        ([entry(f"{SLUG}/a:b")], "a name no file system takes"),
    ],
    ids=[
        "absolute",
        "drive",
        "dotdot-inside",
        "dotdot",
        "backslash",
        "other-folder",
        "working",
        "symlink",
        "device",
        "duplicate",
        "reserved",
        "colon",
    ],
)
def test_archive_path_tricks_are_refused_with_nothing_written(
    tmp_path: Path, entries: list[zipfile.ZipInfo], why: str
) -> None:
    pack_path = evil_pack(tmp_path / f"evil{PACK_SUFFIX}", [(info, b"evil") for info in entries])
    there = tmp_path / "there"
    with pytest.raises(PackProblem) as refused:
        unpack(pack_path, there, SPEC)
    assert refused.value.outcome == "refused" and why in said(refused.value.message)
    assert written_under(there) == [] and not (tmp_path / "evil").exists()


def test_a_hardlink_or_any_entry_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    """A zip has no hard links; the nearest trick, an entry the manifest does not list (or lists twice), is refused."""
    pack_path = evil_pack(tmp_path / f"extra{PACK_SUFFIX}", [(entry(f"{SLUG}/unet.engine"), b"x")])
    with zipfile.ZipFile(pack_path, "a") as archive:
        archive.writestr(entry(f"{SLUG}/unlisted.engine"), b"y")
    with pytest.raises(PackProblem) as refused:
        unpack(pack_path, tmp_path / "there", SPEC)
    assert "unlisted.engine" in said(refused.value.message)
    assert written_under(tmp_path / "there") == []


@pytest.mark.parametrize("folder", ["..", ".", "", "a/b", ".aside", "nul"])
def test_a_manifest_naming_a_folder_that_is_not_one_is_refused(tmp_path: Path, folder: str) -> None:
    pack_path = evil_pack(tmp_path / f"folder{PACK_SUFFIX}", [], folder=folder)
    with pytest.raises(PackProblem) as refused:
        unpack(pack_path, tmp_path / "there", SPEC)
    assert "not a folder name" in said(refused.value.message)
    assert written_under(tmp_path) == [f"folder{PACK_SUFFIX}"]


def test_not_a_pack_is_refused(tmp_path: Path) -> None:
    for name, data in (("empty", b""), ("text", b"hello" * 100), ("truncated", b"PK\x05\x06" + b"\xff" * 18)):
        path = tmp_path / f"{name}{PACK_SUFFIX}"
        path.write_bytes(data)
        with pytest.raises(PackProblem) as refused:
            unpack(path, tmp_path / "there", SPEC)
        assert refused.value.outcome == "refused"
    assert written_under(tmp_path / "there") == []


def test_never_unpacks_into_a_model_in_use(tmp_path: Path, packed: Path) -> None:
    there = tmp_path / "there"
    lock = model_lock(there / SLUG)
    assert lock.acquire("build of it", job="build")
    try:
        with pytest.raises(PackProblem) as refused:
            unpack(packed, there, SPEC)
    finally:
        lock.release()
    assert refused.value.outcome == "busy" and "build of it" in said(refused.value.message)
    assert not (there / SLUG).exists()


def test_pack_refuses_a_config_without_a_build_and_a_missing_engine(tmp_path: Path) -> None:
    config = build(tmp_path / "here")
    loose = tmp_path / "loose.yaml"
    loose.write_text(config.read_text(encoding="utf-8").replace("denoise_steps", "x_denoise_steps"), encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    other = tmp_path / "other" / "config.yaml"
    other.parent.mkdir()
    other.write_text(text.replace("width: 512", "width: 640"), encoding="utf-8")
    with pytest.raises(PackProblem) as refused:
        pack(other)
    assert refused.value.outcome == "refused" and "No build of" in said(refused.value.message)
    next((config.parent).rglob("unet.engine")).unlink()
    with pytest.raises(PackProblem) as missing:
        pack(config)
    assert "is missing" in said(missing.value.message)
    assert list(tmp_path.rglob(f"*{PACK_SUFFIX}")) == [] and list(tmp_path.rglob(".*.tmp")) == []


def test_with_model_packs_a_local_model_and_the_config_points_at_it(tmp_path: Path) -> None:
    model = tmp_path / "models" / "mymodel.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"weights" * 1000)
    config = build(tmp_path / "here", model=str(model))
    plain = pack(config, tmp_path / "plain", spec=SPEC)
    assert plain.path.name == f"plain{PACK_SUFFIX}"
    assert plain.manifest.model.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert "--with-model" in said(plain.notes[0])
    full = pack(config, tmp_path / f"full{PACK_SUFFIX}", with_model=True, spec=SPEC)
    assert full.manifest.model.included == "models/mymodel.safetensors"
    model.unlink()  # the other machine has no such file
    without = unpack(plain.path, tmp_path / "a", SPEC)
    assert [said(need) for need in without.needs] == [
        f"To run, the inference needs the local model {model} at that path on this machine (it is not in the pack; pack --with-model includes it)."
    ]
    done = unpack(full.path, tmp_path / "b", SPEC)
    assert done.needs == []
    unpacked_model = done.folder / "models" / "mymodel.safetensors"
    assert unpacked_model.read_bytes() == b"weights" * 1000
    assert read_config(done.config_path)["model_id"] == unpacked_model.as_posix()
    (listed,) = list_models(tmp_path / "b")
    assert [variant.status for variant in listed.variants] == ["ready"]


def test_cli_exit_codes_and_last_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    built = cli("build", "--engines-dir", str(here))
    assert built.returncode == 0, built.stderr
    config = built.stdout.strip().splitlines()[-1]
    packed = cli("pack", config)
    assert packed.returncode == 0, packed.stderr
    pack_path = Path(packed.stdout.strip().splitlines()[-1])
    assert pack_path.is_file() and pack_path.parent == here and "Packed the build" in packed.stdout

    unpacked = cli("unpack", str(pack_path), "--engines-dir", str(there))
    assert unpacked.returncode == 0, unpacked.stderr
    assert unpacked.stdout.strip().splitlines()[-1] == str(there / SLUG / "config.yaml")

    other = cli(
        "unpack",
        str(pack_path),
        "--engines-dir",
        str(tmp_path / "x"),
        env={"STANDIN_CC": "9.0", "SDPREP_CACHE_DIR": str(tmp_path / "c")},
    )
    assert other.returncode == 3 and "build --from-config" in other.stderr and not (tmp_path / "x" / SLUG).exists()
    # The line it prints rebuilds the pack's config on that machine.
    rebuilt = cli(
        "build",
        "--from-config",
        str(pack_path),
        "--engines-dir",
        str(tmp_path / "x"),
        env={"STANDIN_CC": "9.0", "SDPREP_CACHE_DIR": str(tmp_path / "c")},
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip().splitlines()[-1] == str(tmp_path / "x" / SLUG / "config.yaml")

    flip_a_byte(pack_path, "engine")
    damaged = cli("unpack", str(pack_path), "--engines-dir", str(tmp_path / "y"))
    assert (
        damaged.returncode == 2 and "damaged or altered" in damaged.stderr and "Nothing was written." in damaged.stderr
    )
    assert not (tmp_path / "y" / SLUG).exists()

    missing = cli("pack", str(tmp_path / "nowhere" / "config.yaml"))
    assert missing.returncode == 2
    helped = cli("unpack", "--help")
    assert helped.returncode == 0 and "Exit codes" in helped.stdout


def test_the_library_lists_packs_of_the_engines_folder(tmp_path: Path, packed: Path) -> None:
    (tmp_path / "here" / f".hidden{PACK_SUFFIX}").write_bytes(b"")
    assert packs_in(tmp_path / "here") == [packed]


def test_app_version_is_the_project_version() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'\nversion = "{APP_VERSION}"\n' in text


def test_the_imported_record_reads_back_and_a_malformed_one_is_left_out(tmp_path: Path, packed: Path) -> None:
    done = unpack(packed, tmp_path / "there", SPEC)
    raw = json.loads((done.folder / "build.json").read_text(encoding="utf-8"))
    variant = done.manifest.variant
    assert raw["variants"][variant]["imported"]["machine"] == done.manifest.machine
    raw["variants"][variant]["imported"] = {"pack": 5}
    poisoned = parse_manifest(json.dumps(raw).encode("utf-8"), done.folder / "build.json")
    assert variant not in poisoned.variants and any("imported" in reason for reason in poisoned.skipped)


def test_never_writes_through_a_link_in_an_existing_model_folder(tmp_path: Path, packed: Path) -> None:
    there = tmp_path / "there"
    done = unpack(packed, there, SPEC)
    nested = done.folder / "stabilityai"  # the fork nests an HF id's engines under its owner's folder
    assert nested.is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(nested)
    nested.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(PackProblem) as refused:
        unpack(packed, there, SPEC)
    assert refused.value.outcome == "refused"
    assert list(elsewhere.iterdir()) == []
    assert not [path for path in there.iterdir() if path.name.startswith(".")], "no working folder left"
