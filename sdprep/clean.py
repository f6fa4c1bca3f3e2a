"""`clean`: what under the engines folder no build refers to, with sizes, and removing exactly that.

Judged per model folder, holding that model's lock (sdprep.locks, not waiting: a model that builds, checks or saves
is skipped and named), from its build.json read afresh:

- engines no build record refers to: a whole engine folder when none of its engines is recorded (another TensorRT
  version or GPU: the fork names VAE and safety-checker folders `…--trt<version>--cc<XY>…` and keeps those of older
  versions on purpose, docs/streamdiffusion-facts.md §1.4; or a build that was replaced), else the single unrecorded
  engine file. Only in a model whose build.json records a build: engines of a model the app never built are not
  judged;
- what the fork's own clean-up deletes from an engine folder after a build but leaves after a crash (ONNX exports,
  `weights.pb`, `onnx__*` tensors, temp files: everything but `*.engine`, `*.cache`, `build_stats.json`,
  `timing.cache`, `calib_data.npz` and a finished FP8 ONNX: docs/streamdiffusion-facts.md §1.6), and
  the folder of a build that ended before its engine;
- the set-aside folder `.aside/`, except an engine a build record refers to whose place is empty (the next build of
  the model puts it back);
- temp files of atomic writes and partial check images a killed process left (older than STALE_TEMP_SECONDS);
- logs beyond the newest `keep_logs` runs, except those a build record names;
- the fork's per-model timing caches for a TensorRT version none of the model's builds used (sdprep.timing_cache);
- working folders of a clean that could not finish (`.clean-*`).

And for the engines folder itself: the shared timing caches (sdprep.timing_cache) that no recorded build of any
model could use (another TensorRT version, or another GPU) — only when every model was judged (none busy, none
unreadable), since a build that runs may be writing one.

Nothing is followed through a link, nothing outside the engines folder is listed, and the model folders' own files
(build.json, config.yaml, configs/) are never listed. Removal renames each item into a working dot-folder beside it
first (one rename: the item is either in its place or out of it), then deletes that folder; what could not be
renamed stays and is reported, and a working folder that could not be deleted is reported and listed by the next
clean.
"""

from __future__ import annotations

import os
import re
import shutil
import stat as stat_mode
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sdprep.disk import folder_size
from sdprep.engine_files import FILE_KINDS
from sdprep.jobs.aside import STALE_TEMP_SECONDS  # the age a build's own sweep uses
from sdprep.locks import job_message, model_lock
from sdprep.manifest import Manifest, ManifestUnreadable
from sdprep.messages import Message, Quote, Size, msg, os_reason
from sdprep.model_folder import (
    ASIDE_DIR,
    CONFIGS_DIR,
    ENGINE_SUFFIX,
    KEEP_LOGS,
    LOGS_DIR,
    MAX_WALK_DEPTH,
    holds_model,
    is_working,
    link_outside,
    model_folders,
    records,
    safe_relative,
)
from sdprep.paths import inside
from sdprep.timing_cache import MODEL_CACHE_DIR, TimingCache, caches_beside, foreign_beside, gpu_key, shared_caches

TRASH_PREFIX = ".clean-"

Kind = Literal["engines_other", "engines_unused", "onnx", "aside", "temp", "logs", "timing_cache", "unfinished"]
KINDS: tuple[Kind, ...] = (
    "engines_other",
    "engines_unused",
    "onnx",
    "aside",
    "temp",
    "logs",
    "timing_cache",
    "unfinished",
)

# What the fork's clean-up keeps in an engine folder (forkni builder.py _cleanup_intermediates): the rest is left
# only by a build that was killed.
_FORK_KEEPS_SUFFIXES = (ENGINE_SUFFIX, ".cache")
_FORK_KEEPS_NAMES = frozenset({"build_stats.json", "timing.cache", "calib_data.npz"})
_TAG = re.compile(r"--trt(?P<trt>[0-9][0-9A-Za-z.+_]*)--cc(?P<cc>[0-9]+)(?:--|$)")
_RUN = re.compile(r"^(?P<run>[0-9]{8}-[0-9]{6})")
Build = tuple[str | None, str | None, str | None]  # a recorded build's GPU, compute capability, TensorRT version


@dataclass(frozen=True)
class Leftover:
    """One thing no build refers to: a file or a folder, removed whole."""

    path: Path
    kind: Kind
    size: int
    model: str | None  # the model folder's name; None for the engines folder's own (shared timing caches)
    tag: str | None = None  # "10.9.0.34, cc86": the TensorRT version and GPU of engines of another machine

    def shown(self, root: Path) -> str:
        """The path relative to the engines folder, POSIX style (what a person reads)."""
        try:
            return self.path.relative_to(root).as_posix()
        except ValueError:
            return str(self.path)


@dataclass(frozen=True)
class Skipped:
    model: str
    reason: Message


@dataclass
class Plan:
    root: Path
    keep_logs: int
    items: list[Leftover] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    shared_judged: bool = True  # whether the shared timing caches were judged (every model was)

    @property
    def total(self) -> int:
        return sum(item.size for item in self.items)


@dataclass
class Removal:
    plan: Plan  # what was found (when told `only`, the part of it that was asked for)
    removed: list[Leftover] = field(default_factory=list)
    failed: list[tuple[Leftover, Message | Quote]] = field(default_factory=list)
    unfinished: list[tuple[Path, Message | Quote]] = field(default_factory=list)  # working folders not deleted

    @property
    def freed(self) -> int:
        return sum(item.size for item in self.removed) - sum(folder_size(path) for path, _ in self.unfinished)


def find_leftovers(root: Path, keep_logs: int = KEEP_LOGS) -> Plan:
    """What `clean` would remove (a dry run: nothing is changed)."""
    return _clean(root, keep_logs, remove=False, only=None).plan


def remove_leftovers(root: Path, keep_logs: int = KEEP_LOGS, only: Collection[Path] | None = None) -> Removal:
    """Find and remove the leftovers, each model's under its lock; with `only` (what a person saw and confirmed),
    just those of them that are still leftovers."""
    return _clean(root, keep_logs, remove=True, only=None if only is None else {str(path) for path in only})


def _clean(root: Path, keep_logs: int, remove: bool, only: set[str] | None) -> Removal:
    plan = Plan(root, keep_logs)
    removal = Removal(plan)
    builds: list[Build] = []
    for folder in model_folders(root):
        slug = folder.name
        if link_outside(root, folder):
            plan.skipped.append(Skipped(slug, msg("clean_skip_outside")))  # the app builds nothing there
            continue
        lock = model_lock(folder)
        with lock.held(f"clean of {folder}", job="clean") as got:
            if not got:
                plan.skipped.append(Skipped(slug, msg("clean_skip_busy", job=job_message(lock.holder()))))
                plan.shared_judged = False
                continue
            if not holds_model(folder):
                continue  # not a folder this app prepared (no build.json, no config.yaml): not ours to judge
            try:
                manifest = records(folder)  # parsed once per change (the lock keeps writers out meanwhile)
            except ManifestUnreadable as problem:
                plan.skipped.append(Skipped(slug, msg("clean_skip_unreadable", reason=Quote(problem.reason))))
                plan.shared_judged = False
                continue
            for record in manifest.variants.values():
                environment = record.environment
                builds.append(
                    (
                        _text(environment.get("gpu")),
                        _text(environment.get("compute_capability")),
                        _text(environment.get("tensorrt")),
                    )
                )
            found = _wanted(model_leftovers(root, folder, manifest, keep_logs), only)
            plan.items += found
            if remove:
                _remove(root, folder, found, removal)
    found = _wanted(_root_leftovers(root, builds, plan.shared_judged), only)
    plan.items += found
    if remove:
        _remove(root, root, found, removal)
    return removal


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _wanted(items: list[Leftover], only: set[str] | None) -> list[Leftover]:
    return items if only is None else [item for item in items if str(item.path) in only]


# --- finding ---------------------------------------------------------------------------------------------------------


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as listing:
            return sorted(listing, key=lambda entry: entry.name)
    except OSError:  # gone, or not a folder
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0


def _is_engine(name: str) -> bool:
    return name.endswith(ENGINE_SUFFIX) and name[: -len(ENGINE_SUFFIX)] in FILE_KINDS


def _fork_keeps(name: str, fp8_done: bool) -> bool:
    return name in _FORK_KEEPS_NAMES or name.endswith(_FORK_KEEPS_SUFFIXES) or (fp8_done and "fp8.onnx" in name)


def _build_output(name: str) -> bool:
    """A file only the fork's build writes into an engine folder (what makes a folder without engines one)."""
    return (
        name.endswith(".onnx")
        or ".onnx." in name
        or name in ("weights.pb", "build_stats.json")
        or name.startswith("onnx__")
    )


def model_leftovers(root: Path, folder: Path, manifest: Manifest, keep_logs: int = KEEP_LOGS) -> list[Leftover]:
    """One model folder's leftovers (the caller holds the model's lock and read `manifest` under it)."""
    slug = folder.name
    referenced = {
        relative for record in manifest.variants.values() for relative in record.engines if safe_relative(relative)
    }
    used_folders = {relative.rpartition("/")[0] for relative in referenced}
    tags = {
        (str(record.environment.get("tensorrt")), str(record.environment.get("compute_capability")).replace(".", ""))
        for record in manifest.variants.values()
    }
    versions = {_text(record.environment.get("tensorrt")) for record in manifest.variants.values()}
    judged = bool(manifest.variants)  # engines and caches are judged only against recorded builds
    items: list[Leftover] = []

    def add(path: Path, kind: Kind, size: int, tag: str | None = None) -> None:
        items.append(Leftover(path, kind, size, slug, tag))

    pending = [(folder, "", 0)]
    while pending:
        current, prefix, depth = pending.pop()
        entries = _entries(current)
        folders = [entry for entry in entries if _is_dir(entry)]
        files = [entry for entry in entries if _is_file(entry)]
        for entry in folders:
            if is_working(entry.name) or (depth == 0 and entry.name in (CONFIGS_DIR, LOGS_DIR)):
                continue  # working folders: below; configs and logs are the model's own
            if entry.name == MODEL_CACHE_DIR:
                if judged and None not in versions:
                    unused = [cache for cache in caches_beside(current) if cache.trt_version not in versions]
                    items += [Leftover(cache.path, "timing_cache", cache.size, slug) for cache in unused]
                # caches a build set aside (another GPU's, or of unknown origin) are never loaded again
                for path in foreign_beside(current):
                    try:
                        add(path, "timing_cache", os.lstat(path).st_size)
                    except OSError:  # gone since the listing
                        pass
                continue
            if depth < MAX_WALK_DEPTH:
                pending.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
        if depth == 0:
            continue  # the model folder's own files (build.json, config.yaml) are never leftovers
        engines = [entry for entry in files if _is_engine(entry.name)]
        if not engines and not any(_build_output(entry.name) for entry in files):
            continue  # not an engine folder (an owner's folder of a hub id, with the fork's build_log.jsonl)
        used = prefix.rstrip("/") in used_folders  # a recorded engine belongs here (there, or set aside)
        if not folders and not used and (judged or not engines):  # the whole folder, as one
            if not engines:
                add(current, "onnx", folder_size(current))  # a build that ended before its engine
                continue
            tag = _TAG.search(current.name)
            if tag is not None and (tag["trt"], tag["cc"]) not in tags:
                add(current, "engines_other", folder_size(current), f"{tag['trt']}, cc{tag['cc']}")
            else:
                add(current, "engines_unused", folder_size(current))
            continue
        fp8_done = any(entry.name.endswith("fp8.onnx.ok") for entry in files)
        for entry in files:
            if _is_engine(entry.name):
                if judged and prefix + entry.name not in referenced:
                    add(Path(entry.path), "engines_unused", _size(entry))
            elif not _fork_keeps(entry.name, fp8_done):
                add(Path(entry.path), "onnx", _size(entry))
    items += _aside_leftovers(folder, referenced, slug)
    items += _working_leftovers(folder, slug)
    items += _log_leftovers(folder, manifest, keep_logs, slug)
    return items


def _aside_leftovers(folder: Path, referenced: set[str], slug: str) -> list[Leftover]:
    """`.aside/`: whole, unless it holds a recorded engine whose place is empty (then each of its other files)."""
    aside = folder / ASIDE_DIR
    if not aside.is_dir() or aside.is_symlink():
        return []
    kept: set[str] = set()
    files: list[tuple[Path, int]] = []
    for stamp in _entries(aside):
        pending = [(Path(stamp.path), "", 0)] if _is_dir(stamp) else []
        while pending:
            current, prefix, depth = pending.pop()
            for entry in _entries(current):
                if _is_dir(entry) and depth < MAX_WALK_DEPTH:
                    pending.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
                elif _is_file(entry):
                    relative = prefix + entry.name
                    exiled = relative in referenced and not os.path.lexists(os.path.join(folder, *relative.split("/")))
                    if exiled:
                        kept.add(entry.path)
                    else:
                        files.append((Path(entry.path), _size(entry)))
    if not kept:
        return [Leftover(aside, "aside", folder_size(aside), slug)]
    return [Leftover(path, "aside", size, slug) for path, size in files]


def _working_leftovers(folder: Path, slug: str) -> list[Leftover]:
    """Temp files of writes and checks a killed process left, and working folders of an unfinished clean."""
    items = []
    now = time.time()
    for where in (folder, folder / CONFIGS_DIR, folder / LOGS_DIR):
        for entry in _entries(where):
            if where == folder and entry.name.startswith(TRASH_PREFIX) and _is_dir(entry):
                items.append(Leftover(Path(entry.path), "unfinished", folder_size(Path(entry.path)), slug))
                continue
            if not (entry.name.startswith(".") and entry.name.endswith((".tmp", ".png")) and _is_file(entry)):
                continue
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age > STALE_TEMP_SECONDS:
                items.append(Leftover(Path(entry.path), "temp", _size(entry), slug))
    return items


def _log_leftovers(folder: Path, manifest: Manifest, keep_logs: int, slug: str) -> list[Leftover]:
    """Logs of all but the newest `keep_logs` runs (a run: the files of one build or check, by their time stamp),
    except the runs a build record names."""
    named = set()
    for record in manifest.variants.values():
        for log in (record.log, record.check.log if record.check else None):
            if log:
                match = _RUN.match(log.rsplit("/", 1)[-1])
                named.add(match["run"] if match else log.rsplit("/", 1)[-1])
    runs: dict[str, list[os.DirEntry[str]]] = {}
    for entry in _entries(folder / LOGS_DIR):
        if is_working(entry.name) or not _is_file(entry):
            continue
        match = _RUN.match(entry.name)
        runs.setdefault(match["run"] if match else entry.name, []).append(entry)
    newest = sorted(runs, reverse=True)[: max(keep_logs, 0)]  # the stamps sort by time
    return [
        Leftover(Path(entry.path), "logs", _size(entry), slug)
        for run, entries in sorted(runs.items())
        if run not in newest and run not in named
        for entry in entries
    ]


def _root_leftovers(
    root: Path, builds: list[tuple[str | None, str | None, str | None]], judged: bool
) -> list[Leftover]:
    items = [
        Leftover(Path(entry.path), "unfinished", folder_size(Path(entry.path)), None)
        for entry in _entries(root)
        if entry.name.startswith(TRASH_PREFIX) and _is_dir(entry)
    ]
    if judged:
        items += [
            Leftover(cache.path, "timing_cache", cache.size, None)
            for cache in shared_caches(root)
            if not any(_could_use(build, cache) for build in builds)
        ]
    return items


def _could_use(build: Build, cache: TimingCache) -> bool:
    """Whether a recorded build's GPU and TensorRT could use this shared cache (what a record does not say, could)."""
    gpu, capability, tensorrt = build
    same_gpu = gpu is None or capability is None or cache.gpu_key is None or gpu_key(gpu, capability) == cache.gpu_key
    return same_gpu and (tensorrt is None or tensorrt == cache.trt_version)


# --- removing --------------------------------------------------------------------------------------------------------


def _still_there(root: Path, item: Leftover) -> bool:
    """The item is what was found: not a link, and inside the engines folder (checked again right before it goes)."""
    try:
        mode = os.lstat(item.path).st_mode
    except OSError:
        return False
    return not stat_mode.S_ISLNK(mode) and inside(root, item.path.parent) and item.path.resolve() != root.resolve()


def _remove(root: Path, where: Path, items: list[Leftover], removal: Removal) -> None:
    """Move `items` into a new working folder in `where` (one rename each), then delete that folder."""
    if not items:
        return
    try:
        trash = Path(tempfile.mkdtemp(prefix=f"{TRASH_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-", dir=where))
    except OSError as problem:
        removal.failed += [(item, os_reason(problem)) for item in items]
        return
    for index, item in enumerate(items):
        if not _still_there(root, item):
            removal.failed.append((item, msg("clean_gone")))
            continue
        try:
            os.rename(item.path, trash / str(index))
        except OSError as problem:
            removal.failed.append((item, os_reason(problem)))
            continue
        removal.removed.append(item)
    try:
        shutil.rmtree(trash)
    except OSError as problem:
        shutil.rmtree(trash, ignore_errors=True)
        if os.path.lexists(trash):
            removal.unfinished.append((trash, os_reason(problem)))


# --- words -----------------------------------------------------------------------------------------------------------


def item_message(item: Leftover, root: Path, keep_logs: int) -> Message:
    """One leftover in one line: its size, what it is, where (relative to the engines folder)."""
    if item.kind == "engines_other":
        what = msg("clean_kind_engines_other", tag=item.tag or "?")
    elif item.kind == "logs":
        what = msg("clean_kind_logs", count=keep_logs)
    else:
        what = msg(f"clean_kind_{item.kind}")
    return msg("clean_item", size=Size(item.size), what=what, path=item.shown(root))


def plan_messages(plan: Plan) -> list[Message]:
    """The plan as lines: the items of each model (the engines folder's own last), the models skipped and why, the
    total."""
    lines: list[Message] = []
    models = sorted({item.model for item in plan.items if item.model is not None})
    for model in [*models, None]:
        items = sorted(
            (item for item in plan.items if item.model == model), key=lambda item: (KINDS.index(item.kind), item.path)
        )
        if items:
            lines.append(msg("clean_model", model=model) if model else msg("clean_engines_folder"))
            lines += [item_message(item, plan.root, plan.keep_logs) for item in items]
    lines += [msg("clean_skipped", model=skipped.model, reason=skipped.reason) for skipped in plan.skipped]
    if not plan.shared_judged:
        lines.append(msg("clean_shared_not_judged"))
    if plan.items:
        lines.append(msg("clean_total", count=len(plan.items), size=Size(plan.total)))
    else:
        lines.append(msg("clean_nothing", folder=plan.root))
    return lines


def removal_messages(removal: Removal) -> list[Message]:
    """What was removed and freed, and each thing that could not be."""
    root = removal.plan.root
    lines = [msg("clean_failed", path=item.shown(root), reason=reason) for item, reason in removal.failed]
    lines += [msg("clean_unfinished", path=path, reason=reason) for path, reason in removal.unfinished]
    lines.append(msg("clean_removed", count=len(removal.removed), size=Size(max(removal.freed, 0))))
    return lines
