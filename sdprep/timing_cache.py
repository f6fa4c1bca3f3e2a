"""TensorRT timing caches: where they live, and how a build shares them. One owner of the layout, for the build
(seed before the child, keep after it), the library (sizes) and `clean`.

    <engines>/<model>/_timing_cache/timing_trt<version>.cache      the fork's own, beside the model's engine folders
    <engines>/<model>/<owner>/_timing_cache/timing_trt<version>.cache   ... of a hub id's engines (owner/name nests)
    <engines>/.timing_cache/<gpu key>/timing_trt<version>.cache    the app's shared one, per GPU model and TensorRT
                                                                   version (a dot folder: never taken for a model)

The fork loads and saves `<parent of each engine folder>/_timing_cache/timing_trt<version>.cache` around every engine
it builds (docs/streamdiffusion-facts.md §15), so it shares nothing between this app's model folders. A cache is only
valid for the GPU model and TensorRT version that wrote it (the fork loads it with ignore_mismatch=False), so the
shared one is keyed by both, and a cache in a model folder that this app does not know came from this GPU model (an
engines folder copied from another machine) is renamed out of the fork's way before a build, never loaded.

A build (jobs/build.py, under its GPU lock): `seed` sets foreign caches aside and copies the larger of the shared
cache and the model's own (known to be this GPU's) into every place the fork will look; the child builds;
`note_built` records which caches in the model folder are this GPU's (also after a failed build: the fork saves the
cache after each engine); after a successful build only, `keep` copies the grown cache back to the shared one under
a lock. Builds on one GPU are serialised, and the model's cache started as a copy of the shared one, so it is a
superset of it: a copy is the merge. Two cases lose entries, never correctness (a timing cache only saves build
time): two builds on two identical GPUs of one machine overlap (the shared cache changed since the seed: the larger
is kept), and a hub id's build with ControlNets grows two of the fork's caches (the largest is kept). A true union
needs TensorRT's ITimingCache.combine in the build Python: not done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sdprep.locks import NamedLock
from sdprep.manifest import MAX_BYTES, TimingCacheOrigin, TimingCacheUse
from sdprep.messages import Size, msg, os_reason
from sdprep.paths import Stamp, is_hf_id
from sdprep.paths import stamp as file_stamp

if TYPE_CHECKING:
    from sdprep.jobs.environment import Environment

MODEL_CACHE_DIR = "_timing_cache"  # the fork's name, one level above each engine's folder
SHARED_CACHE_DIR = ".timing_cache"
# A cache of this app's models is megabytes; a larger file is not copied (a bound on what a build reads and writes).
MAX_CACHE_BYTES = 2 * 1024**3
# A cache set aside: `timing_trt<version>.cache.foreign-<stamp>` beside it, a name the fork never loads.
FOREIGN_SUFFIX = ".foreign-"
_VERSION = r"[0-9][0-9A-Za-z.+_-]{0,40}"  # a TensorRT version, as it may stand in a file name
_CACHE_FILE = re.compile(rf"^timing_trt(?P<version>{_VERSION})\.cache$")
_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z.+-]+")


@dataclass(frozen=True)
class TimingCache:
    path: Path
    trt_version: str
    gpu_key: str | None  # None: a model folder's own cache (the fork's), whose GPU the file does not say
    size: int


def gpu_key(gpu_name: str, compute_capability: str) -> str:
    """A folder name for one GPU model: its name and compute capability ("NVIDIA GeForce RTX 4090", "8.9" ->
    "NVIDIA-GeForce-RTX-4090-cc89"). Bounded, and safe on every file system."""
    name = _KEY_UNSAFE.sub("-", gpu_name).strip("-.")[:64] or "gpu"
    return f"{name}-cc{compute_capability.replace('.', '')[:4]}"


def cache_file_name(trt_version: str) -> str:
    return f"timing_trt{trt_version}.cache"


def shared_cache(engines_root: Path, key: str, trt_version: str) -> Path:
    return engines_root / SHARED_CACHE_DIR / key / cache_file_name(trt_version)


def model_cache(model_folder: Path, trt_version: str) -> Path:
    return model_folder / MODEL_CACHE_DIR / cache_file_name(trt_version)


def _caches_in(folder: Path, key: str | None) -> list[TimingCache]:
    found = []
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return []
    for entry in entries:
        match = _CACHE_FILE.match(entry.name)
        if not match:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:  # gone since the listing
            continue
        found.append(TimingCache(Path(entry.path), match["version"], key, size))
    return found


def shared_caches(engines_root: Path) -> list[TimingCache]:
    """Every shared cache under the engines folder, by GPU key."""
    shared = engines_root / SHARED_CACHE_DIR
    try:
        with os.scandir(shared) as listing:
            keys = sorted(entry.name for entry in listing if entry.is_dir(follow_symlinks=False))
    except OSError:
        return []
    return [cache for key in keys for cache in _caches_in(shared / key, key)]


def _subfolders(model_folder: Path) -> list[Path]:
    """The model folder's own folders one level down (a hub id's owner folder among them), not its working ones."""
    try:
        with os.scandir(model_folder) as listing:
            names = [entry.name for entry in listing if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return [model_folder / name for name in sorted(names) if not name.startswith(".") and name != MODEL_CACHE_DIR]


def model_caches(model_folder: Path) -> list[TimingCache]:
    """The fork's own caches in one model folder: beside its engine folders, and beside a hub id's (one level down)."""
    return [cache for folder in [model_folder, *_subfolders(model_folder)] for cache in caches_beside(folder)]


def caches_beside(folder: Path) -> list[TimingCache]:
    """The fork's caches in one folder's `_timing_cache` (beside the engine folders in `folder`)."""
    return _caches_in(folder / MODEL_CACHE_DIR, None)


def foreign_caches(model_folder: Path) -> list[Path]:
    """Caches a build set aside (another GPU's, or of unknown origin): never loaded, only kept for a person; `clean`
    may remove them."""
    return sorted(path for folder in [model_folder, *_subfolders(model_folder)] for path in foreign_beside(folder))


def foreign_beside(folder: Path) -> list[Path]:
    """The set-aside caches in one folder's `_timing_cache`."""
    found = []
    with contextlib.suppress(OSError), os.scandir(folder / MODEL_CACHE_DIR) as listing:
        found = [Path(entry.path) for entry in listing if FOREIGN_SUFFIX in entry.name and entry.is_file()]
    return found


def fork_cache_dirs(model_folder: Path, model: str) -> list[Path]:
    """Where the fork will look for a cache while it builds this model: beside its engine folders. The ControlNet
    folders sit in the model folder itself; those of the UNet, VAE and safety checker too, unless the model is a hub
    id, whose `owner/name` nests them one level down (docs/streamdiffusion-facts.md §1.4)."""
    folders = [model_folder / MODEL_CACHE_DIR]
    if is_hf_id(model):
        owner = PurePosixPath(model.strip()).parent
        if owner.parts and all(part not in ("", ".", "..") for part in owner.parts):
            folders.append(model_folder.joinpath(*owner.parts) / MODEL_CACHE_DIR)
    return folders


def expect_warm(environment: Environment | None, engines_root: Path) -> bool:
    """Whether a build on this machine would start warm (for its estimate): the engines folder has a shared cache
    for this GPU model and TensorRT version."""
    known = _probed(environment)
    return known is not None and bool(_size(shared_cache(engines_root, gpu_key(known[0], known[1]), known[2])))


def _probed(environment: Environment | None) -> tuple[str, str, str] | None:
    """The GPU model's name, its compute capability and the TensorRT version, as the probe says them; None when it
    does not say all three, or names a version that cannot stand in a file name."""
    if environment is None:
        return None
    name, capability, version = environment.gpu_name, environment.compute_capability, environment.tensorrt_version
    if not (isinstance(name, str) and isinstance(capability, str) and isinstance(version, str)):
        return None
    if not (name.strip() and capability.strip() and re.fullmatch(_VERSION, version)):
        return None
    return name, capability, version


# --- a build's use of the caches ---------------------------------------------------------------------------------


def _copy_atomic(source: Path, target: Path) -> None:
    """`target` becomes a copy of `source` whole (with its permissions), or stays as it was (temp file in its folder,
    fsync, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as read:
            shutil.copyfileobj(read, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(source, temp_name)  # the fork's file mode, not the temp file's private one
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _size(path: Path) -> int | None:
    """The size of a regular file no larger than MAX_CACHE_BYTES; None when there is none (or it is too large)."""
    try:
        found = os.stat(path, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_CACHE_BYTES:
        return None
    return found.st_size


def _relative(model_folder: Path, path: Path) -> str:
    return path.relative_to(model_folder).as_posix()


def shared_lock(engines_root: Path, key: str, trt_version: str) -> NamedLock:
    """The lock of one shared cache (its lock file lives with the app's other locks, sdprep.locks)."""
    where = str(shared_cache(engines_root, key, trt_version).expanduser().resolve())
    return NamedLock(f"timing-{hashlib.sha1(where.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}")


Say = Callable[..., None]  # Job.say: a message code and its fields, into the build's log


@dataclass
class Seeded:
    """What `seed` did for one build, and what `note_built` and `keep` need after the child."""

    engines_root: Path
    model_folder: Path
    gpu_name: str
    key: str
    trt_version: str
    use: TimingCacheUse
    targets: list[Path] = field(default_factory=list)  # the fork's cache files of this build
    seeded: dict[Path, Stamp | None] = field(default_factory=dict)  # each target as the child found it
    shared_before: Stamp | None = None


def _trusted(origins: dict[str, TimingCacheOrigin], relative: str, path: Path, key: str, trt_version: str) -> bool:
    """The cache at `path` is exactly one this app recorded as written on this GPU model and TensorRT version."""
    origin = origins.get(relative)
    found = file_stamp(path)
    return (
        origin is not None
        and found is not None
        and (origin.gpu_key, origin.tensorrt) == (key, trt_version)
        and (origin.mtime_ns, origin.size) == (found[0], found[1])
    )


def seed(
    environment: Environment,
    engines_root: Path,
    model_folder: Path,
    model: str,
    origins: dict[str, TimingCacheOrigin],
    say: Say,
) -> Seeded | None:
    """Before a build's child, holding its GPU: the fork's caches for this TensorRT version hold this GPU model's
    best cache (the shared one, or the model's own when it is larger), and none of unknown origin. `origins` is the
    model's build.json record of its caches; it is updated with what was written here. None when the probe does not
    name the GPU model and TensorRT version (nothing is touched), or when the caches cannot be written (said; the
    build goes on as the fork would, without the shared cache)."""
    known = _probed(environment)
    if known is None:
        return None
    try:
        return _seed(engines_root, model_folder, model, (known[0], known[1]), known[2], origins, say)
    except OSError as problem:
        say("tcache_unusable", reason=os_reason(problem))
        return None


def _seed(
    engines_root: Path,
    model_folder: Path,
    model: str,
    gpu: tuple[str, str],
    trt_version: str,
    origins: dict[str, TimingCacheOrigin],
    say: Say,
) -> Seeded:
    key = gpu_key(*gpu)
    use = TimingCacheUse(state="cold", gpu_key=key, tensorrt=trt_version)
    seeded = Seeded(engines_root, model_folder, gpu[0], key, trt_version, use)
    wanted = cache_file_name(trt_version)
    # Every cache of this version in the model folder (not only where this build looks): one of unknown origin here
    # may be loaded by a later build with other parameters.
    for cache in model_caches(model_folder):
        if cache.path.name != wanted:
            continue
        relative = _relative(model_folder, cache.path)
        if not _trusted(origins, relative, cache.path, key, trt_version):
            aside = cache.path.with_name(f"{cache.path.name}{FOREIGN_SUFFIX}{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(cache.path, aside)
            origins.pop(relative, None)
            use.set_aside.append(_relative(model_folder, aside))
            say("tcache_set_aside", path=relative, kept=aside.name)
    shared = shared_cache(engines_root, key, trt_version)
    seeded.shared_before = file_stamp(shared)
    seeded.targets = [folder / wanted for folder in fork_cache_dirs(model_folder, model)]
    candidates = [(size, "shared", shared) for size in [_size(shared)] if size]
    candidates += [(size, "model", path) for path in seeded.targets for size in [_size(path)] if size]
    if candidates:
        size, source, best = max(candidates, key=lambda item: item[0])
        for target in seeded.targets:
            if target != best:
                _copy_atomic(best, target)
        use.state, use.source, use.size = "warm", source, size
        say("tcache_warm", gpu=gpu[0], source=msg(f"tcache_source_{source}"), size=Size(size))
    else:
        say("tcache_cold", gpu=gpu[0], tensorrt=trt_version)
    for target in seeded.targets:
        seeded.seeded[target] = file_stamp(target)
    note_built(seeded, origins)
    return seeded


def note_built(seeded: Seeded | None, origins: dict[str, TimingCacheOrigin]) -> None:
    """After the child (whatever its end): the caches where this build looked are this GPU model's, as the fork
    saved them (it saves after each engine, so a failed build leaves a good cache too)."""
    if seeded is None:
        return
    for target in seeded.targets:
        found = file_stamp(target)
        if found is None:
            continue
        origins[_relative(seeded.model_folder, target)] = TimingCacheOrigin(
            gpu_key=seeded.key, tensorrt=seeded.trt_version, size=min(found[1], MAX_BYTES), mtime_ns=found[0]
        )


def keep(seeded: Seeded | None, say: Say) -> None:
    """After a successful build: the grown cache becomes the shared one, under its lock. Nothing when no engine was
    built (no cache grew). A cache that cannot be written is said, never a failed build."""
    if seeded is None:
        return
    try:
        _keep(seeded, say)
    except OSError as problem:
        say("tcache_unusable", reason=os_reason(problem))


def _keep(seeded: Seeded, say: Say) -> None:
    grown = [
        (size, target)
        for target in seeded.targets
        if file_stamp(target) != seeded.seeded.get(target)
        for size in [_size(target)]
        if size
    ]
    if not grown:
        return
    size, best = max(grown, key=lambda item: item[0])
    shared = shared_cache(seeded.engines_root, seeded.key, seeded.trt_version)
    lock = shared_lock(seeded.engines_root, seeded.key, seeded.trt_version)
    lock.acquire(f"timing cache {seeded.key}", job="build")
    try:
        now = file_stamp(shared)
        if now != seeded.shared_before and (_size(shared) or 0) > size:
            # Another build on an identical GPU of this machine kept a larger cache meanwhile: it stays.
            say("tcache_kept_other", gpu=seeded.gpu_name, size=Size(now[1] if now else 0))
            seeded.use.kept = _size(shared)
            return
        _copy_atomic(best, shared)
    finally:
        lock.release()
    seeded.use.kept = size
    say("tcache_kept", size=Size(size), gpu=seeded.gpu_name)
