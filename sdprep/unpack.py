"""Unpack a pack into the engines folder (`python gradio_prepare.py unpack`, the library's Import).

In this order, and nothing is written into the engines folder until every step before the last has passed:
1. the pack's layout (sdprep.pack_archive: bounded, every entry name and kind checked, the manifest read first);
2. this machine's build Python against the manifest: another compute capability or TensorRT version cannot load the
   engines (docs/streamdiffusion-facts.md §1.4), so that is refused with the `build --from-config` line that
   rebuilds the pack's config here;
3. the model's lock (never beside a build, check, save or delete of that model) and the free space;
4. every file extracted into a working folder inside the engines folder (a dot name: the library never lists it),
   hashed while written; one byte off and the working folder is removed;
5. the configs rewritten for this machine (engine_dir; the model's path when the pack holds the model);
6. moved in: a new model folder in one rename; into an existing one file by file, build.json last (the build counts
   as there once its record is), the build recorded as imported (which pack, which machine, when).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep.config import dump_yaml
from sdprep.config_load import ConfigError, read_config
from sdprep.engine_files import baked_part, expected_slots, fingerprint, slot_key
from sdprep.jobs.environment import ProbeError, probe
from sdprep.jobs.process import ChildSpec
from sdprep.locks import job_message, model_lock
from sdprep.manifest import ImportRecord, Manifest, ManifestUnreadable, now_iso, parse_manifest
from sdprep.messages import Message, Quote, Size, msg, os_reason
from sdprep.model_folder import (
    CONFIG_NAME,
    MANIFEST_NAME,
    engine_file,
    holds_model,
    is_working,
    link_outside,
    read_manifest,
    recorded_model,
    set_aside_unreadable,
    write_manifest,
)
from sdprep.pack import CHUNK, Progress
from sdprep.pack_archive import OpenPack, PackProblem, damaged, open_pack
from sdprep.pack_manifest import PackManifest
from sdprep.paths import atomic_write_text, inside, is_hf_id, nearest_existing_parent

WORK_PREFIX = ".unpack-"
CONFIG_TEXT_LIMIT = 1024 * 1024


@dataclass
class Unpacked:
    config_path: Path
    folder: Path
    manifest: PackManifest
    seconds: float
    needs: list[Message] = field(default_factory=list)  # what the inference still needs on this machine
    notes: list[Message] = field(default_factory=list)


def rebuild_line(pack_path: Path, engines_root: Path) -> str:
    """The command that builds the pack's config on this machine instead (build reads the config inside a pack)."""
    return f"python gradio_prepare.py build --from-config {_quoted(pack_path)} --engines-dir {_quoted(engines_root)}"


def _quoted(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(char in text for char in " '\"&;|<>()$`") else text


def unpack(
    pack_path: Path,
    engines_root: Path,
    spec: ChildSpec | None = None,
    on_progress: Progress = lambda done, total: None,
) -> Unpacked:
    """Unpack `pack_path` into `engines_root`; PackProblem ("refused": damaged or altered, "unavailable": built for
    another GPU or TensorRT, "busy": the model is in use, "failed": a disk error) with nothing written."""
    started = time.monotonic()
    pack_path, root = pack_path.absolute(), engines_root.absolute()
    opened = open_pack(pack_path)
    try:
        manifest = opened.manifest
        notes = _machine_matches(manifest, pack_path, root, spec or ChildSpec())
        target = root / manifest.folder
        if link_outside(root, target) or (target.exists() and not target.is_dir()):
            raise PackProblem("refused", msg("unpack_target_not_folder", path=target))
        lock = model_lock(target)
        with lock.held(f"unpack of {pack_path.name}", job="unpack") as got:
            if not got:
                holder = lock.holder()
                raise PackProblem(
                    "busy", msg("unpack_busy", path=target, what=holder.get("what") or job_message(holder))
                )
            owner = recorded_model(target) if holds_model(target) else None
            included = (target / manifest.model.included).as_posix() if manifest.model.included else None
            if owner is not None and owner not in (manifest.model.id, included):
                raise PackProblem(
                    "refused", msg("unpack_other_model", path=target, owner=owner, model=manifest.model.id)
                )
            free = shutil.disk_usage(nearest_existing_parent(root)).free
            if free < manifest.size:
                short = msg("unpack_no_space", need=Size(manifest.size), free=Size(free), path=root)
                raise PackProblem("failed", short)
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))
            try:
                _extract(opened, work, on_progress)
                config_path, extra = _move_in(opened, work, target)
                notes += extra
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except OSError as problem:
        raise PackProblem("failed", msg("unpack_unwritten", path=root, reason=os_reason(problem))) from None
    finally:
        opened.close()
    return Unpacked(config_path, target, manifest, time.monotonic() - started, _needs(manifest, target), notes)


def _machine_matches(manifest: PackManifest, pack_path: Path, root: Path, spec: ChildSpec) -> list[Message]:
    """Refuse a pack this machine's build Python cannot load (unavailable, with the rebuild line); notes on what
    differs but loads (another GPU of the same compute capability, another fork version)."""
    line = rebuild_line(pack_path, root)
    try:
        environment = probe(spec)
    except ProbeError as problem:
        raise PackProblem("unavailable", msg("unpack_cannot_probe", reason=problem.message, line=line)) from None
    missing = environment.missing()
    if missing:
        raise PackProblem("unavailable", msg("unpack_cannot_load_here", reason=missing[0], line=line))
    built, here = manifest.built_on, environment
    differences = [
        msg("unpack_differs", what=what, pack=packed or "?", here=local or "?")
        for what, packed, local in (
            (msg("unpack_what_capability"), built.compute_capability, here.compute_capability),
            (msg("unpack_what_tensorrt"), built.tensorrt, here.tensorrt_version),
        )
        if packed != local
    ]
    if differences:
        raise PackProblem("unavailable", msg("unpack_other_machine", differences=differences, line=line))
    notes = []
    if built.gpu and here.gpu_name and built.gpu != here.gpu_name:
        notes.append(msg("unpack_other_gpu", pack=built.gpu, here=here.gpu_name))
    fork_here = here.streamdiffusion.get("version")
    if built.streamdiffusion and fork_here and built.streamdiffusion != fork_here:
        notes.append(msg("unpack_other_fork", pack=built.streamdiffusion, here=fork_here))
    return notes


def _extract(opened: OpenPack, work: Path, on_progress: Progress) -> None:
    """Every file into `work`, hashed while written; refused (damaged) at the first that differs from the manifest."""
    total, done = opened.manifest.size, 0
    for item in opened.manifest.files:
        destination = work.joinpath(*item.path.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest, written = hashlib.sha256(), 0
        try:
            with opened.archive.open(opened.entries[item.path]) as source, open(destination, "xb") as out:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > item.size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    on_progress(done + written, total)
        except Exception as problem:  # zipfile's CRC check, a truncated file, a bad deflate stream
            if isinstance(problem, OSError) and not isinstance(problem, EOFError) and problem.errno is not None:
                raise
            raise damaged(
                opened.path, msg("pack_file_unreadable", name=item.path, reason=Quote(str(problem)))
            ) from None
        if written != item.size or digest.hexdigest() != item.sha256:
            raise damaged(opened.path, msg("pack_file_altered", name=item.path))
        done += written


def _rewrite_config(path: Path, target: Path, model_id: str | None) -> dict[str, Any]:
    """A config of the pack for this machine: engine_dir (and the model's path, when the pack holds it); its header
    comments kept, with the old engines folder's path replaced."""
    try:
        config = read_config(path)
    except ConfigError as problem:
        raise PackProblem("refused", problem.message) from None
    old = str(config.get("engine_dir") or "")
    config["engine_dir"] = target.as_posix()
    if model_id is not None:
        config["model_id"] = model_id
    text = path.read_text(encoding="utf-8")[:CONFIG_TEXT_LIMIT]
    header_lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        header_lines.append(line.replace(old, target.as_posix()) if old else line)
    atomic_write_text(path, dump_yaml(config, "".join(header_lines)))
    return config


def _move_in(opened: OpenPack, work: Path, target: Path) -> tuple[Path, list[Message]]:
    manifest = opened.manifest
    staged = work / manifest.folder
    model = manifest.model
    new_model = (target / model.included).as_posix() if model.included else None
    configs = [item.path.split("/", 1)[1] for item in manifest.entry("config")]
    rewritten = {relative: _rewrite_config(staged / relative, target, new_model) for relative in configs}
    variant_config = rewritten.get(manifest.config)
    if variant_config is None:
        raise damaged(opened.path, msg("pack_no_config", name=manifest.config))
    try:
        packed_record = parse_manifest((staged / MANIFEST_NAME).read_bytes(), staged / MANIFEST_NAME)
    except ManifestUnreadable as problem:
        raise damaged(opened.path, Quote(problem.reason)) from None
    record = packed_record.variants.get(manifest.variant)
    if record is None:
        raise damaged(opened.path, msg("pack_no_config", name=MANIFEST_NAME))
    notes: list[Message] = []
    existing = Manifest()
    fresh = not target.exists()
    if not fresh:
        try:
            existing = read_manifest(target)
        except ManifestUnreadable as problem:
            kept = set_aside_unreadable(target)
            notes.append(msg("unpack_record_set_aside", path=problem.path, kept=kept or problem.path))
    # config.yaml: the pack's (else the build's own config), unless this folder's already holds this very config (a
    # person's runtime edits stay, as a build keeps them).
    if CONFIG_NAME not in rewritten:
        shutil.copyfile(staged / manifest.config, staged / CONFIG_NAME)
        rewritten[CONFIG_NAME] = variant_config
    if not fresh and _holds(target / CONFIG_NAME, rewritten[CONFIG_NAME]):
        (staged / CONFIG_NAME).unlink()
    engines = [item.path.split("/", 1)[1] for item in manifest.entry("engine")]
    # Stamps read in the working folder: a rename keeps a file's size and time.
    merged = _merged(existing, packed_record, manifest, opened.path.name, staged, variant_config, engines)
    if fresh:  # the whole folder appears at once, its record in it
        write_manifest(staged, merged)
        os.replace(staged, target)
        return target / CONFIG_NAME, notes
    moves = [relative for relative in _files_of(staged) if relative != MANIFEST_NAME]
    for relative in moves:  # a folder in the way that is a link out of the model folder: refused before any move
        folder = nearest_existing_parent(target.joinpath(*relative.split("/")).parent)
        if not inside(target, folder):
            raise PackProblem("refused", msg("unpack_target_not_folder", path=folder))
    for relative in moves:
        destination = target.joinpath(*relative.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.joinpath(*relative.split("/")), destination)
    write_manifest(target, merged)  # last: the build counts as there once its record is
    return target / CONFIG_NAME, notes


def _files_of(folder: Path) -> list[str]:
    found = []
    for current, _folders, files in os.walk(folder):
        for name in files:
            found.append((Path(current) / name).relative_to(folder).as_posix())
    return sorted(found)


def _holds(path: Path, config: dict[str, Any]) -> bool:
    try:
        old = read_config(path)
    except ConfigError:
        return False
    return old.get("engine_dir") == config.get("engine_dir") and baked_part(old) == baked_part(config)


def _merged(
    existing: Manifest,
    packed: Manifest,
    manifest: PackManifest,
    pack_name: str,
    staged: Path,
    config: dict[str, Any],
    engines: list[str],
) -> Manifest:
    """The folder's build.json with the imported build: its engines re-stamped (new files) and, when the model's
    path was rewritten, re-keyed; other builds whose engine files it replaced marked stale (as a build does)."""
    record = packed.variants[manifest.variant]
    record.fingerprint = fingerprint(config)
    record.params = {
        **record.params,
        "engines_dir": str(Path(config["engine_dir"]).parent),
        "model": config["model_id"],
    }
    record.stale = False
    record.log = None  # the logs stayed on the machine that built and checked it
    if record.check is not None:
        record.check.log = None
    record.imported = ImportRecord(
        pack=pack_name,
        machine=manifest.machine,
        packed_at=manifest.created_at,
        imported_at=now_iso(),
        gpu=manifest.built_on.gpu,
    )
    slots = expected_slots(config, safety_engine=True)
    for relative in engines:
        found = engine_file(staged, relative)
        written = packed.engines.get(relative)
        if found is None or written is None:
            continue
        slot = next((slot for slot in slots if found.matches(slot)), None)
        written.key = slot_key(slot, config) if slot is not None else written.key
        written.size, written.mtime_ns, written.fingerprint = found.size, found.mtime_ns, record.fingerprint
        before = existing.engines.get(relative)
        if before is not None and before.key != written.key:
            for name, other in existing.variants.items():
                if name != manifest.variant and relative in other.engines:
                    other.stale = True
        existing.engines[relative] = written
    existing.variants[manifest.variant] = record
    existing.model = str(config["model_id"])
    existing.config = CONFIG_NAME
    existing.latest_variant = manifest.variant
    return existing


def _needs(manifest: PackManifest, target: Path) -> list[Message]:
    """What loading the build still needs on this machine: a local model or LoRA that is not here."""
    needs: list[Message] = []
    model = manifest.model
    if model.local and not model.included and not Path(model.id).expanduser().exists():
        needs.append(msg("unpack_needs_model", model=model.id))
    elif not model.local and is_hf_id(model.id):
        needs.append(msg("unpack_needs_hub", model=model.id))
    for lora in manifest.loras:
        if lora.local and not Path(lora.id).expanduser().exists():
            needs.append(msg("unpack_needs_lora", lora=lora.id))
    return needs


def packs_in(engines_root: Path, limit: int = 200) -> list[Path]:
    """The packs directly inside the engines folder (what the library's Import offers), newest first."""
    try:
        with os.scandir(engines_root) as listing:
            found = [
                Path(entry.path)
                for entry in listing
                if not is_working(entry.name)
                and entry.name.lower().endswith(".sdpack.zip")
                and entry.is_file(follow_symlinks=False)
            ]
    except OSError:
        return []
    found.sort(key=lambda path: (_mtime(path), path.name), reverse=True)
    return found[:limit]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
