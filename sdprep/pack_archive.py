"""Reading a pack's zip safely: bounded before it is parsed, every entry name checked before anything is extracted.

Why zip (not tar): Windows opens a .zip in Explorer with no tool installed; its central directory at the end lets
the manifest be read first without reading gigabytes of engines, although it is written last (so a pack is written
in one pass, hashing while writing); and entries are stored, not compressed (engines barely compress), so packing
and unpacking run at disk speed. Python's zipfile writes and reads entries as streams (ZIP64 for files over 4 GB).

Refused here, before a byte is written: a central directory too large or with too many entries, an entry whose name
is absolute, has a drive, "..", a backslash or an empty part, names a working folder (a dot name), lies outside the
pack's model folder, or repeats another name (letter case aside: Windows folders ignore it); an entry that is a link,
a device or anything but a plain file (its Unix mode); an encrypted or compressed-by-anything-else entry; and
entries the manifest does not list, or listed ones missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sdprep.config_load import CONFIG_LIMIT
from sdprep.messages import Message, Quote, msg
from sdprep.model_folder import CONFIG_NAME, is_working
from sdprep.pack_manifest import (
    MANIFEST_ENTRY,
    MANIFEST_LIMIT,
    MAX_FILES,
    MODELS_DIR,
    PACK_SUFFIX,
    NotAPack,
    PackManifest,
    parse_pack_manifest,
)

Outcome = Literal["refused", "unavailable", "busy", "failed"]
CENTRAL_DIRECTORY_LIMIT = 16 * 1024 * 1024
_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
_END_SEARCH = 65_536 + 22  # the end record and the longest comment a zip may have


class PackProblem(Exception):
    """Why a pack or an unpack stops, with its outcome (the CLI's exit code: refused 2, unavailable 3, busy 4)."""

    def __init__(self, outcome: Outcome, message: Message) -> None:
        super().__init__(message.code)
        self.outcome = outcome
        self.message = message


def damaged(path: Path, reason: Message | Quote | str) -> PackProblem:
    return PackProblem("refused", msg("pack_damaged", path=path, reason=reason))


def directory_size(path: Path) -> tuple[int, int]:
    """(entries, bytes) of a zip's central directory, read from its end record (ZIP64 too) before zipfile parses it:
    zipfile holds every entry in memory, so a hostile file must be bounded first. ValueError when there is none."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        length = file.tell()
        start = max(0, length - _END_SEARCH)
        file.seek(start)
        tail = file.read()
        at = tail.rfind(_END)
        if at < 0 or len(tail) - at < 22:
            raise ValueError("no zip end record")
        entries, size = struct.unpack("<xxxxxxxxxxHIxxxxxx", tail[at : at + 22])[0:2]
        if entries == 0xFFFF or size == 0xFFFFFFFF:
            locator = at - 20
            if locator < 0 or tail[locator : locator + 4] != _END64_LOCATOR:
                raise ValueError("no ZIP64 end record locator")
            (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            if offset > length - 56:
                raise ValueError("ZIP64 end record outside the file")
            file.seek(offset)
            record = file.read(56)
            if record[:4] != _END64:
                raise ValueError("no ZIP64 end record")
            entries, size = struct.unpack("<QQ", record[32:48])
    return entries, size


def entry_name_problem(name: str, folder: str) -> str | None:
    """Why an entry's name cannot be extracted under the model folder `folder`; None when it can."""
    if name == MANIFEST_ENTRY:
        return None
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path or a backslash"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "'..', '.' or an empty part"
    if any(is_working(part) for part in parts):
        return "a dot name (a working file)"
    if parts[0] != folder or len(parts) < 2:
        return f"outside the model folder {folder}"
    if any(_unportable(part) for part in parts):
        return "a name no file system takes"
    return None


_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)), *(f"lpt{n}" for n in range(1, 10))}
)


def _unportable(part: str) -> bool:
    """A name Linux or Windows cannot hold as it is (a pack made on one is unpacked on the other)."""
    return (
        len(part.encode("utf-8")) > 255
        or any(char in '<>:"|?*' or ord(char) < 32 for char in part)
        or part.endswith((" ", "."))
        or part.split(".")[0].lower() in _WINDOWS_RESERVED
    )


def entry_kind_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is not a plain file that can be extracted as it is."""
    if info.is_dir():
        return "a folder entry"
    mode = info.external_attr >> 16
    # 3: Unix, whose mode says what the entry is (no type bits: a plain file, as zipfile.writestr leaves it)
    if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return "a link or a special file"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return "compressed by an unsupported method"
    return None


@dataclass
class OpenPack:
    """A pack whose layout was checked: its manifest, and the zip entry of each file the manifest lists."""

    path: Path
    archive: zipfile.ZipFile
    manifest: PackManifest
    entries: dict[str, zipfile.ZipInfo]

    def close(self) -> None:
        self.archive.close()


def open_pack(path: Path) -> OpenPack:
    """Open a pack and check everything but the bytes of its files (sdprep.unpack hashes those while extracting);
    PackProblem("refused") naming what is wrong."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise damaged(path, msg("pack_not_file"))
        entries, size = directory_size(path)
    except FileNotFoundError:
        raise PackProblem("refused", msg("pack_missing", path=path)) from None
    except OSError as problem:
        raise damaged(path, Quote(str(problem))) from None
    except ValueError as problem:
        raise damaged(path, Quote(str(problem))) from None
    if entries > MAX_FILES + 1 or size > CENTRAL_DIRECTORY_LIMIT:
        raise damaged(path, msg("pack_too_many", count=entries, limit=MAX_FILES))
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as problem:
        raise damaged(path, Quote(str(problem))) from None
    try:
        return OpenPack(path, archive, *_checked(path, archive))
    except BaseException:
        archive.close()
        raise


def _checked(path: Path, archive: zipfile.ZipFile) -> tuple[PackManifest, dict[str, zipfile.ZipInfo]]:
    infos = archive.infolist()
    if MANIFEST_ENTRY not in {info.filename for info in infos}:
        raise damaged(path, msg("pack_no_manifest", name=MANIFEST_ENTRY))
    info = archive.getinfo(MANIFEST_ENTRY)
    if info.file_size > MANIFEST_LIMIT or entry_kind_problem(info):
        raise damaged(path, msg("pack_entry_refused", name=MANIFEST_ENTRY, why=entry_kind_problem(info) or "large"))
    try:
        with archive.open(info) as stream:
            raw = stream.read(MANIFEST_LIMIT + 1)
        manifest = parse_pack_manifest(raw)
    except (zipfile.BadZipFile, OSError, NotAPack) as problem:
        raise damaged(path, Quote(str(problem))) from None
    folder = manifest.folder  # a plain name: what every entry's first part must be (checked below)
    if entry_name_problem(f"{folder}/x", folder):
        raise damaged(path, msg("pack_entry_refused", name=Quote(folder), why="not a folder name"))
    included = manifest.model.included  # the config will point at it
    if included is not None and (
        not included.startswith(f"{MODELS_DIR}/") or entry_name_problem(f"{folder}/{included}", folder)
    ):
        raise damaged(path, msg("pack_entry_refused", name=Quote(included), why="not a path under models/"))
    by_name: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in infos:
        folded = info.filename.casefold()
        why = "a second entry of this name" if folded in seen else None
        why = why or entry_name_problem(info.filename, manifest.folder) or entry_kind_problem(info)
        if why:
            raise PackProblem("refused", msg("pack_entry_refused", name=Quote(info.filename), why=why))
        seen.add(folded)
        if info.filename != MANIFEST_ENTRY:
            by_name[info.filename] = info
    listed = [item.path for item in manifest.files]
    if len(set(listed)) != len(listed) or set(listed) != set(by_name):
        unlisted = sorted(set(by_name) - set(listed)) + sorted(set(listed) - set(by_name))
        raise damaged(path, msg("pack_list_differs", names=[Quote(name) for name in unlisted[:5]]))
    for item in manifest.files:
        if by_name[item.path].file_size != item.size:
            raise damaged(path, msg("pack_file_altered", name=item.path))
    return manifest, by_name


@contextlib.contextmanager
def config_source(path: Path) -> Iterator[Path]:
    """`path` itself, or for a pack the build's config read from inside it (checked against its hash) as a file that
    lasts the with-block: what `build --from-config PACK` rebuilds on a machine the pack's engines do not fit."""
    if not path.name.lower().endswith(PACK_SUFFIX):
        yield path
        return
    opened = open_pack(path)
    try:
        manifest = opened.manifest
        wanted = f"{manifest.folder}/{CONFIG_NAME if manifest.current else manifest.config}"
        item = next((item for item in manifest.files if item.path == wanted), None)
        if item is None or item.size > CONFIG_LIMIT:
            raise damaged(path, msg("pack_no_config", name=wanted))
        try:
            with opened.archive.open(opened.entries[item.path]) as stream:
                raw = stream.read(CONFIG_LIMIT + 1)
        except (zipfile.BadZipFile, EOFError) as problem:
            raise damaged(path, Quote(str(problem))) from None
        if hashlib.sha256(raw).hexdigest() != item.sha256:
            raise damaged(path, msg("pack_file_altered", name=item.path))
    finally:
        opened.close()
    with tempfile.TemporaryDirectory(prefix="sdprep-pack-") as folder:
        config = Path(folder) / CONFIG_NAME
        config.write_bytes(raw)
        yield config
