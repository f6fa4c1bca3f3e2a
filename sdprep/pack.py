"""Pack one build into one file, to put it on identical machines (`python gradio_prepare.py pack`, the library's Pack).

A pack is a zip (why: sdprep.pack_archive) holding the build's config, every engine file it uses, its build record,
its check image and, with `with_model`, the local model; and sdpack.json (sdprep.pack_manifest) with the machine and
software that built the engines and the size and SHA-256 of every file. Files are streamed in chunks and hashed while
they are written (memory stays flat for gigabytes); the pack is written under a temporary dot name and renamed when
complete, so a pack that exists is whole. The model's lock is held meanwhile: no build changes its engines mid-pack.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat as stat_mode
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sdprep.config_load import ConfigError
from sdprep.jobs.check_files import find_variant, model_folder, read_check_config
from sdprep.jobs.environment import cached
from sdprep.jobs.process import ChildSpec
from sdprep.locks import job_message, model_lock
from sdprep.manifest import Manifest, ManifestUnreadable, VariantRecord, manifest_text, now_iso
from sdprep.messages import Message, msg, os_reason
from sdprep.model_folder import CONFIG_NAME, MANIFEST_NAME, engine_file, outside, read_manifest, safe_relative
from sdprep.pack_archive import PackProblem
from sdprep.pack_manifest import (
    APP_VERSION,
    MANIFEST_ENTRY,
    MODELS_DIR,
    PACK_SUFFIX,
    BuiltOn,
    Identity,
    PackedFile,
    PackManifest,
    manifest_json,
)
from sdprep.paths import is_hf_id
from sdprep.setup.driver import driver_version, version_text

CHUNK = 1024 * 1024
MAX_MODEL_FILES = 2_000  # a diffusers folder holds a few dozen
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass
class Packed:
    path: Path
    manifest: PackManifest
    seconds: float
    notes: list[Message] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    name: str  # the entry's name in the zip
    path: Path
    role: str
    size: int


def default_pack_path(engines_root: Path, folder: str, variant: str) -> Path:
    """Where a pack goes unless told: the engines folder (the library lists packs there for Import)."""
    return engines_root / f"{folder}--{variant}{PACK_SUFFIX}"


def is_pack(path: Path) -> bool:
    return path.name.lower().endswith(PACK_SUFFIX)


def pack(
    config_path: Path,
    out: Path | None = None,
    with_model: bool = False,
    spec: ChildSpec | None = None,
    on_progress: Progress = lambda done, total: None,
) -> Packed:
    """Pack the build `config_path` (a model's config.yaml or configs/<variant>.yaml) belongs to; PackProblem when it
    cannot (no recorded build of this config, an engine missing or changed, the model busy, a disk error)."""
    started = time.monotonic()
    config_path = config_path.absolute()
    try:
        config = read_check_config(config_path)
    except ConfigError as problem:
        raise PackProblem("refused", problem.message) from None
    folder = model_folder(config_path).resolve()
    root = folder.parent
    lock = model_lock(folder)
    with lock.held(f"pack of {folder}", job="pack") as got:
        if not got:
            holder = lock.holder()
            raise PackProblem("busy", msg("pack_busy", path=folder, what=holder.get("what") or job_message(holder)))
        try:
            manifest = read_manifest(folder)
        except ManifestUnreadable as problem:
            raise PackProblem(
                "refused", msg("pack_record_unreadable", path=problem.path, reason=problem.reason)
            ) from None
        variant = find_variant(manifest, config_path, config)
        if variant is None:
            raise PackProblem("refused", msg("pack_no_build", config=config_path))
        record = manifest.variants[variant]
        sources = _build_files(root, folder, manifest, variant, record)
        model, loras, model_sources = _identities(config, folder.name, with_model)
        target = (out or default_pack_path(root, folder.name, variant)).absolute()
        if not is_pack(target):
            target = target.with_name(target.name + PACK_SUFFIX)
        built_on = _built_on(record, spec or ChildSpec())
        packed = PackManifest(
            app_version=APP_VERSION,
            created_at=now_iso(),
            machine=socket.gethostname(),
            folder=folder.name,
            variant=variant,
            config=record.config,
            current=any(source.role == "config" and source.path.name == CONFIG_NAME for source in sources),
            built_on=built_on,
            model=model,
            loras=loras,
            files=[],
        )
        record_text = _own_record(manifest, variant, record).encode("utf-8")
        _write(target, sources + model_sources, record_text, packed, on_progress)
    notes = [] if with_model or not model.local else [msg("pack_model_not_included", model=model.id)]
    return Packed(target, packed, time.monotonic() - started, notes)


def _build_files(root: Path, folder: Path, manifest: Manifest, variant: str, record: VariantRecord) -> list[_Source]:
    """The files of one build: its configs, engines and check image (build.json is written from its record)."""
    sources: list[_Source] = []

    def add(relative: str, role: str) -> None:
        path = folder / relative
        if not safe_relative(relative) or outside(root, path):
            raise PackProblem("refused", msg("pack_outside", path=path, root=root))
        try:
            found = os.stat(path)
        except OSError:
            raise PackProblem("refused", msg("pack_file_missing", path=path, variant=variant)) from None
        if not stat_mode.S_ISREG(found.st_mode):
            raise PackProblem("refused", msg("pack_file_missing", path=path, variant=variant))
        sources.append(_Source(f"{folder.name}/{relative}", path, role, found.st_size))

    add(record.config, "config")
    current = folder / CONFIG_NAME
    try:
        if find_variant(manifest, current, read_check_config(current)) == variant:
            add(CONFIG_NAME, "config")
    except ConfigError:
        pass  # no readable config.yaml: the variant's own config is the build's config
    for relative in record.engines:
        engine = engine_file(folder, relative)
        written = manifest.engines.get(relative)
        if engine is None:
            raise PackProblem("refused", msg("pack_file_missing", path=folder / relative, variant=variant))
        if written is None or (written.size, written.mtime_ns) != (engine.size, engine.mtime_ns):
            raise PackProblem("refused", msg("pack_engine_changed", path=engine.path))
        add(relative, "engine")
    image = record.check.image if record.check and record.check.outcome == "passed" else None
    if image and safe_relative(image) and (folder / image).is_file():
        add(image, "image")
    return sources


def _own_record(manifest: Manifest, variant: str, record: VariantRecord) -> str:
    """build.json holding only this build and its engines' records."""
    engines = {relative: manifest.engines[relative] for relative in record.engines if relative in manifest.engines}
    own = Manifest(model=manifest.model, config=CONFIG_NAME, latest_variant=variant, variants={variant: record})
    own.engines = engines
    return manifest_text(own)


def _model_files(path: Path, folder: str) -> list[_Source]:
    """The local model (a file, or a diffusers folder's plain files) as entries under <folder>/models/<name>."""
    base = f"{folder}/{MODELS_DIR}/{path.name}"
    if path.is_file():
        return [_Source(base, path, "model", path.stat().st_size)]
    sources: list[_Source] = []
    for current, folders, files in os.walk(path):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            item = Path(current) / name
            if name.startswith(".") or item.is_symlink() or not item.is_file():
                continue
            if len(sources) >= MAX_MODEL_FILES:
                raise PackProblem("refused", msg("pack_model_too_many", path=path, limit=MAX_MODEL_FILES))
            relative = item.relative_to(path).as_posix()
            sources.append(_Source(f"{base}/{relative}", item, "model", item.stat().st_size))
    return sources


def _identity(model_id: str, folder: str, include: bool) -> tuple[Identity, list[_Source]]:
    if is_hf_id(model_id) or not Path(model_id).expanduser().exists():
        return Identity(id=model_id, local=not is_hf_id(model_id)), []
    path = Path(model_id).expanduser().absolute()
    sources = _model_files(path, folder)
    size = sum(source.size for source in sources)
    if include:  # hashed while written into the pack
        return Identity(id=model_id, local=True, size=size, included=f"{MODELS_DIR}/{path.name}"), sources
    digest = hashlib.sha256()
    for source in sources:
        with open(source.path, "rb") as file:
            for chunk in _chunks(file):
                digest.update(chunk)
    return Identity(id=model_id, local=True, size=size, sha256=digest.hexdigest()), []


def _identities(
    config: dict[str, Any], folder: str, with_model: bool
) -> tuple[Identity, list[Identity], list[_Source]]:
    model, sources = _identity(str(config["model_id"]), folder, with_model)
    loras = config.get("lora_dict")
    identities = [_identity(str(name), folder, False)[0] for name in loras] if isinstance(loras, dict) else []
    return model, identities, sources


def _built_on(record: VariantRecord, spec: ChildSpec) -> BuiltOn:
    """What built the engines: the build's record; the driver and the fork's origin from this machine's cached probe
    when it is the same GPU and software (the packing machine built them)."""

    def text(value: object) -> str | None:
        return str(value) if value is not None else None

    recorded = record.environment
    built = BuiltOn(
        gpu=text(recorded.get("gpu")),
        compute_capability=text(recorded.get("compute_capability")),
        tensorrt=text(recorded.get("tensorrt")),
        cuda=text(recorded.get("cuda")),
        torch=text(recorded.get("torch")),
        python=text(recorded.get("python")),
        streamdiffusion=text(recorded.get("streamdiffusion")),
        driver=version_text(driver_version()),
    )
    environment = cached(spec)
    if environment is not None and environment.engine_key() == record.engine_key:
        origin = environment.streamdiffusion.get("origin")
        origin = origin if isinstance(origin, dict) else {}
        built.fork_url = text(origin.get("url"))
        built.fork_commit = text(origin.get("commit")) or git_head(environment.streamdiffusion.get("location"))
        driver = environment.report.get("driver")
        if isinstance(driver, dict) and driver.get("version"):
            built.driver = text(driver["version"])
    return built


def git_head(location: object, levels: int = 6) -> str | None:
    """The commit of the git checkout a package was imported from (a source checkout: --streamdiffusion-src), by
    reading .git/HEAD; None elsewhere."""
    if not isinstance(location, str):
        return None
    for folder in list(Path(location).parents)[:levels]:
        head = folder / ".git" / "HEAD"
        try:
            text = head.read_text(encoding="utf-8", errors="replace")[:512].strip()
        except OSError:
            continue
        if not text.startswith("ref: "):
            return text or None
        ref = text[5:].strip()
        try:
            return (folder / ".git" / ref).read_text(encoding="utf-8", errors="replace")[:64].strip() or None
        except OSError:
            return None
    return None


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(CHUNK):
        yield chunk


def _entry(name: str, when: float) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime(max(when, 315_532_800))[:6])  # zip's dates start in 1980
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (stat_mode.S_IFREG | 0o644) << 16
    info.create_system = 3  # Unix: the mode above says "a plain file"
    return info


def _write(
    target: Path,
    sources: list[_Source],
    record_text: bytes,
    packed: PackManifest,
    on_progress: Progress,
) -> None:
    """Write the zip under a temporary dot name beside `target`, then rename it (a pack that exists is whole)."""
    record_name = f"{packed.folder}/{MANIFEST_NAME}"
    total = sum(source.size for source in sources) + len(record_text)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    done = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            archive.writestr(_entry(record_name, time.time()), record_text)
            packed.files.append(
                PackedFile(record_name, hashlib.sha256(record_text).hexdigest(), "record", len(record_text))
            )
            done += len(record_text)
            for source in sources:
                info = _entry(source.name, source.path.stat().st_mtime)
                info.file_size = source.size  # known up front: zipfile chooses ZIP64 for a file over 4 GB
                digest, written = hashlib.sha256(), 0
                with open(source.path, "rb") as file, archive.open(info, "w") as out:
                    for chunk in _chunks(file):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                        on_progress(done + written, total)
                if written != source.size:
                    raise PackProblem("failed", msg("pack_file_changed", path=source.path))
                done += written
                packed.files.append(PackedFile(source.name, digest.hexdigest(), source.role, written))
            model_files = packed.entry("model")
            if packed.model.included and len(model_files) == 1:  # a model file's hash (a folder's: each file's)
                packed.model.sha256 = model_files[0].sha256
            archive.writestr(_entry(MANIFEST_ENTRY, time.time()), manifest_json(packed))
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except OSError as problem:
        raise PackProblem("failed", msg("pack_unwritten", path=target, reason=os_reason(problem))) from None
    finally:
        temporary.unlink(missing_ok=True)
