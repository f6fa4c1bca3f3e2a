"""A model's folder under the engines folder: the one module that knows its layout, and reads it safely.

    <engines>/<model>/config.yaml               the model's current config (what an inference script loads)
    <engines>/<model>/configs/<variant>.yaml    each build's own config
    <engines>/<model>/build.json                what each build and engine was built from (sdprep.manifest)
    <engines>/<model>/logs/                     build and check logs
    <engines>/<model>/.aside/                   engines a running build set aside (a working folder: its name
                                                starts with a dot, like the temp files of atomic writes)
    <engines>/<model>/<prefix>/.../*.engine     StreamDiffusion's engines (docs/streamdiffusion-facts.md §1.3, §1.4)

The model's lock lives outside it (sdprep.locks). Reading here is:
- bounded: build.json through the typed parser (sdprep.manifest), which leaves out a poisoned record and names it;
- cached by each file's (path, mtime, size, inode), so a form change or a library refresh parses nothing that did
  not change (`records`, `config_model`); a writer reads afresh under the model's lock (`read_manifest`);
- consistent while a build moves engines: working folders are never walked, and a folder or file that vanishes
  mid-read is skipped, not raised;
- checked against links: what resolves outside the engines folder is reported as such, never read.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mode
import time
from pathlib import Path

from sdprep.engine_files import FILE_KINDS, EngineFile
from sdprep.manifest import MANIFEST_LIMIT, Manifest, ManifestUnreadable, manifest_text, parse_manifest
from sdprep.paths import StampCache, UnreadableFile, atomic_write_text, inside, read_limited

CONFIG_NAME = "config.yaml"
CONFIGS_DIR = "configs"
MANIFEST_NAME = "build.json"
LOGS_DIR = "logs"
ASIDE_DIR = ".aside"
ENGINE_SUFFIX = ".engine"
KEEP_LOGS = 20  # build and check runs whose logs `clean` keeps per model, newest first
MAX_WALK_DEPTH = 8  # engines sit two or three folders down (an HF id's owner, then the prefix)

log = logging.getLogger(__name__)


def is_working(name: str) -> bool:
    """A working folder or file of this app (.aside, .config.yaml.x.tmp): never part of the model's contents."""
    return name.startswith(".")


# --- build.json ----------------------------------------------------------------------------------------------------


def _parse_manifest(path: Path) -> Manifest:
    try:
        raw = read_limited(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        return Manifest()
    except (UnreadableFile, OSError) as problem:
        raise ManifestUnreadable(path, str(problem)) from None
    return parse_manifest(raw, path)


def read_manifest(folder: Path) -> Manifest:
    """The model folder's build.json, read afresh (a writer changes what it gets): an empty Manifest when there is
    none; ManifestUnreadable when it is broken."""
    return _parse_manifest(folder / MANIFEST_NAME)


def read_manifest_or_empty(folder: Path) -> Manifest:
    """For a writer that only looks up a record: an unreadable build.json counts as none (nothing is trusted)."""
    try:
        return read_manifest(folder)
    except ManifestUnreadable:
        return Manifest()


class _Unreadable:
    """What the cache keeps for a build.json that cannot be read (so it is not parsed again until it changes)."""

    def __init__(self, problem: ManifestUnreadable) -> None:
        self.problem = problem


_MANIFESTS: StampCache[Manifest | _Unreadable] = StampCache()


def _parse_for_cache(path: Path) -> Manifest | _Unreadable:
    try:
        manifest = _parse_manifest(path)
    except ManifestUnreadable as problem:
        return _Unreadable(problem)
    for reason in manifest.skipped:
        name_once(f"{path}: a build record was left out: {reason}")
    return manifest


_NAMED: set[str] = set()
_NAMED_LIMIT = 1024


def name_once(line: str) -> None:
    """Log a warning once per process (a poisoned record would otherwise be named on every form change)."""
    if line in _NAMED:
        return
    if len(_NAMED) >= _NAMED_LIMIT:
        _NAMED.clear()
    _NAMED.add(line)
    log.warning("%s", line)


def records(folder: Path) -> Manifest:
    """The model folder's build.json for readers (the library, the estimate, the preview): parsed once per change
    of the file and shared, so never change what it returns. ManifestUnreadable when it is broken."""
    cached = _MANIFESTS.get(folder / MANIFEST_NAME, _parse_for_cache, Manifest())
    if isinstance(cached, _Unreadable):
        raise cached.problem
    return cached


def records_or_empty(folder: Path) -> Manifest:
    try:
        return records(folder)
    except ManifestUnreadable:
        return Manifest()


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_text(folder / MANIFEST_NAME, manifest_text(manifest))


def set_aside_unreadable(folder: Path) -> Path | None:
    """Move a broken build.json out of the way (kept, renamed) so a new one can be written; its new path."""
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    target = path.with_name(f"{MANIFEST_NAME}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    return target


# --- config.yaml ---------------------------------------------------------------------------------------------------


def _model_id(path: Path) -> str | None:
    # config_load reads through derive, which asks this module whose a folder is: imported when first needed.
    from sdprep.config_load import ConfigError, read_config

    try:
        model = read_config(path).get("model_id")
    except ConfigError:
        return None
    return model if isinstance(model, str) else None


_CONFIG_MODELS: StampCache[str | None] = StampCache()


def config_model(folder: Path) -> str | None:
    """The model_id of the folder's config.yaml (cached like build.json); None without a readable one."""
    return _CONFIG_MODELS.get(folder / CONFIG_NAME, _model_id, None)


def recorded_model(folder: Path) -> str | None:
    """The model a prepared folder holds (build.json "model", else config.yaml's model_id); None if unknown."""
    return records_or_empty(folder).model or config_model(folder)


def holds_model(folder: Path) -> bool:
    """Whether this app prepared something here (a build.json or a config.yaml)."""
    return (folder / MANIFEST_NAME).exists() or (folder / CONFIG_NAME).exists()


# --- links ---------------------------------------------------------------------------------------------------------


def outside(root: Path, path: Path) -> bool:
    """Whether `path` (a model folder or one of its files) resolves, links followed, outside the engines folder."""
    return not inside(root, path)


def link_outside(root: Path, path: Path) -> bool:
    """outside() for a path whose folder is known to lie inside: only a link can lead out (one lstat otherwise)."""
    try:
        is_link = stat_mode.S_ISLNK(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False
    return is_link and outside(root, path)


def model_folders(root: Path) -> list[Path]:
    """The model folders directly under the engines folder, by name: real folders, and links to folders (for the
    caller to check with `outside`); a link to another folder inside is that folder again and is left out; working
    folders are left out."""
    try:
        with os.scandir(root) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return []
    folders = []
    for entry in entries:
        try:
            if is_working(entry.name) or not entry.is_dir():
                continue
            if entry.is_symlink() and not outside(root, Path(entry.path)):
                continue
        except OSError:  # gone since the listing
            continue
        folders.append(Path(entry.path))
    return folders


# --- engine files --------------------------------------------------------------------------------------------------


def safe_relative(relative: str) -> bool:
    """Whether a path build.json records (POSIX, relative to the model folder) stays inside the folder's own files:
    no "..", not absolute, not through a working folder. Cheap: checked for every recorded path on every listing."""
    parts = relative.split("/")
    return (
        bool(relative)
        and "\\" not in relative
        and all(part not in ("", "..") and not is_working(part) for part in parts)
    )


def engine_file(folder: Path, relative: str) -> EngineFile | None:
    """The engine file at `relative` (as build.json records it) if it is there; None otherwise, and for a path that
    leaves the folder or goes through a working folder."""
    name = relative.rsplit("/", 1)[-1]
    stem = name[: -len(ENGINE_SUFFIX)] if name.endswith(ENGINE_SUFFIX) else ""
    if stem not in FILE_KINDS or not safe_relative(relative):
        return None
    path = os.path.join(folder, *relative.split("/"))
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat_mode.S_ISREG(found.st_mode):
        return None
    cnet_folder = os.path.basename(os.path.dirname(path)).split("--")[0] if stem == "cnet" else None
    return EngineFile(Path(path), relative, stem, cnet_folder, found.st_size, found.st_mtime_ns)


def engine_names(folder: Path) -> list[str]:
    """The relative (POSIX) path of every engine file under a model's folder, outside its working folders (.aside),
    configs and logs; nothing is opened or stat'ed. A folder that vanishes during the walk (a build moving engines)
    is skipped; links are not followed."""
    found: list[str] = []
    pending = [(str(folder), "", 0)]
    while pending:
        current, prefix, depth = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    name = entry.name
                    if is_working(name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if depth < MAX_WALK_DEPTH and not (depth == 0 and name in (CONFIGS_DIR, LOGS_DIR)):
                            pending.append((entry.path, f"{prefix}{name}/", depth + 1))
                    elif name.endswith(ENGINE_SUFFIX) and name[: -len(ENGINE_SUFFIX)] in FILE_KINDS:
                        found.append(prefix + name)
        except OSError:  # gone, or not a folder any more
            continue
    return sorted(found)


def engine_kind(relative: str) -> str:
    """The FILE_KINDS key of an engine file by its name (unet.engine -> "unet")."""
    return relative.rsplit("/", 1)[-1].removesuffix(ENGINE_SUFFIX)


def engine_stamp(folder: Path, relative: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a recorded engine file (the library's check, cheaper than an EngineFile); None when it
    is not there, or `relative` leaves the folder."""
    if not safe_relative(relative):
        return None
    try:
        found = os.stat(os.path.join(folder, *relative.split("/")))
    except (OSError, ValueError):
        return None
    return (found.st_size, found.st_mtime_ns) if stat_mode.S_ISREG(found.st_mode) else None


def scan_engines(folder: Path) -> list[EngineFile]:
    """Every engine file under a model's folder (see engine_names), with its size and time."""
    engines = (engine_file(folder, relative) for relative in engine_names(folder))
    return [engine for engine in engines if engine is not None]


def by_relative(folder: Path) -> dict[str, EngineFile]:
    return {engine.relative: engine for engine in scan_engines(folder)}
