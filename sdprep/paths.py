"""Path helpers shared by the model, the config writer and the build: what is local, absolute, safe to read, atomic."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt")
_WEIGHT_SUFFIXES = (*MODEL_FILE_SUFFIXES, ".bin", ".pt", ".pth")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
# Longer than any real path or Hugging Face id; past it the OS would answer "File name too long".
MAX_PATH_TEXT = 1024
MAX_NAME = 255


def user_path(text: str) -> Path:
    """A typed path with `~` expanded; "~nosuchuser" stays as typed (Path.expanduser would raise RuntimeError)."""
    return Path(os.path.expanduser(text))


def _exists(path: Path) -> bool:
    """Path.exists() that answers False instead of raising for a name the OS cannot even look up."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def looks_like_local_path(text: str, hub_subpaths: bool = False) -> bool:
    """True for what exists on disk or cannot be a Hugging Face reference.

    A model must be a plain `owner/name` id; LoRAs, ControlNets and IP-Adapter weights may also name a file or
    folder inside a repo (`owner/name/sub/file.bin`), which `hub_subpaths` allows.
    """
    text = text.strip()
    if not text:
        return False
    if _exists(user_path(text)):
        return True
    if text.startswith((".", "/", "~", "\\")) or bool(_WINDOWS_DRIVE.match(text)) or "\\" in text:
        return True
    if hub_subpaths:
        return text.count("/") < 1
    return text.lower().endswith(_WEIGHT_SUFFIXES) or not _HF_ID.match(text)


def server_system() -> str:
    """The server's operating system as people name it: "Linux", "Windows", "macOS"."""
    name = platform.system()
    return {"Darwin": "macOS", "": "this system"}.get(name, name)


def foreign_path(text: str, server_os: str = os.name) -> str | None:
    """ "windows" for a Windows path typed on a POSIX server (C:\\Users\\me, \\\\host\\share), "posix" for a POSIX
    one on a Windows server (/home/me, ~/models): such a path can only name a file on another machine."""
    text = text.strip()
    if server_os != "nt" and (bool(_WINDOWS_DRIVE.match(text)) or text.startswith("\\\\")):
        return "windows"
    if server_os == "nt" and ((text.startswith("/") and not text.startswith("//")) or text.startswith("~/")):
        return "posix"
    return None


def is_hf_id(text: str) -> bool:
    return not looks_like_local_path(text) and bool(text.strip())


def absolute_path(path: str) -> str:
    """Relative paths are resolved against the working directory now, not the inference script's later."""
    return os.path.abspath(os.path.expanduser(path)) if path else path


def absolute_model(model: str, hub_subpaths: bool = False) -> str:
    """A model (or LoRA / ControlNet / IP-Adapter) reference: local paths made absolute, hub ids as they are."""
    local = looks_like_local_path(model, hub_subpaths) and len(model) <= MAX_PATH_TEXT
    # Another machine's path stays as typed: resolved here it would name a file under the working directory.
    return absolute_path(model) if local and foreign_path(model) is None else model


def too_long(text: str) -> bool:
    """A path or id the OS would refuse to look up: over MAX_PATH_TEXT, or a component over 255 characters."""
    return len(text) > MAX_PATH_TEXT or any(len(part) > MAX_NAME for part in re.split(r"[\\/]", text))


def special_file(path: Path) -> bool:
    """True for something that exists but is neither a regular file nor a folder: a FIFO, a device, a socket.

    Reading one can block forever (a FIFO, /dev/stdin) or never end (/dev/zero).
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class UnreadableFile(OSError):
    """A file that may not be read: not a regular file, or larger than the caller's limit."""


def read_limited(path: Path, limit: int, timeout: float = 5.0) -> bytes:
    """A regular file's bytes, at most `limit` of them, within `timeout` seconds; UnreadableFile otherwise.

    The file is opened without blocking and checked after opening (so a FIFO swapped in after a check cannot hang
    the caller), and read in a helper thread, so a stuck network file system costs a thread, not the server.
    """
    box: list[bytes | BaseException] = []

    def read() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise UnreadableFile(f"{path} is not a regular file")
                chunks: list[bytes] = []
                size = 0
                while size <= limit:
                    chunk = os.read(fd, min(65536, limit + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size > limit:
                    raise UnreadableFile(f"{path} is larger than {limit} bytes")
                box.append(b"".join(chunks))
            finally:
                os.close(fd)
        except BaseException as error:  # handed to the caller's thread
            box.append(error)

    reader = threading.Thread(target=read, name="sdprep-read-limited", daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise UnreadableFile(f"reading {path} did not finish within {timeout:.0f} s")
    outcome = box[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


# A file changed this recently is parsed again next time: the file system's clock is coarser than mtime_ns
# (milliseconds), so two writes of the same size in one tick could share a stamp (git calls this "racy").
RACY_NS = 2_000_000_000
V = TypeVar("V")
Stamp = tuple[int, int, int]  # mtime_ns, size, inode: an atomic replace changes at least one


def stamp(path: Path) -> Stamp | None:
    """The file's (mtime_ns, size, inode); None when it is not there (or not a regular file)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino) if stat.S_ISREG(found.st_mode) else None


class StampCache(Generic[V]):
    """Values parsed from files, kept until the file's stamp changes. Bounded by entries and by the bytes of the
    files behind them (a parsed file takes a few times its size in memory); the least recently used go first."""

    def __init__(self, size: int = 512, file_bytes: int = 32 * 1024 * 1024) -> None:
        self.size = size
        self.file_bytes = file_bytes
        self._entries: OrderedDict[str, tuple[Stamp, V]] = OrderedDict()
        self._held = 0  # the bytes of the files behind the entries
        self._lock = threading.Lock()

    def get(self, path: Path, parse: Callable[[Path], V], missing: V) -> V:
        """parse(path) once per stamp; `missing` when there is no file. An exception from parse is not cached."""
        current = stamp(path)
        if current is None:
            return missing
        key = str(path)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == current:
                self._entries.move_to_end(key)
                return hit[1]
        value = parse(path)
        if time.time_ns() - current[0] < RACY_NS:
            return value  # written just now: a second write in the same clock tick could keep this stamp
        with self._lock:
            old = self._entries.pop(key, None)
            self._held -= old[0][1] if old else 0
            self._entries[key] = (current, value)
            self._held += current[1]
            while len(self._entries) > self.size or (self._held > self.file_bytes and len(self._entries) > 1):
                _, (gone, _) = self._entries.popitem(last=False)
                self._held -= gone[1]
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0


def _current_umask() -> int:
    """The process umask, read once at import (os.umask can only be read by setting it, which races threads)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, flush, fsync, os.replace.

    A crash or a full disk leaves the earlier file untouched; readers never see half a file. The file gets the
    permissions any new file of this user gets (0644 under umask 022), so an inference script of another user can
    read it; the temp file itself is private until then.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def nearest_existing_parent(path: Path) -> Path:
    current = path
    while not _exists(current) and current.parent != current:
        current = current.parent
    return current


def inside(root: Path, candidate: Path) -> bool:
    """Whether `candidate` resolves (symlinks followed) to `root` or somewhere below it."""
    try:
        resolved_root = root.resolve()
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == resolved_root or resolved_root in resolved.parents
