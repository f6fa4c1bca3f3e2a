"""Write installable wheels with the standard library, and a PEP 517 build backend that does the same for a tree.

Two uses, one file:
- tests/standin_wheels.py imports `write_wheel` to make the stand-in wheelhouse (torch, tensorrt-cu12, ...).
- `make_streamdiffusion_repo` copies this very file into a git repository as its in-tree build backend
  (pyproject: `backend-path = ["_backend"]`), so `uv pip install "streamdiffusion @ git+file://...@sha"` can build
  it with `--no-index --offline`: the backend needs nothing but the standard library, so the isolated build
  environment needs nothing installed (setuptools would have to come from an index).

A wheel here is what the spec asks for and no more: the package files, `<name>-<version>.dist-info/` with METADATA
(core metadata 2.1), WHEEL (pure Python, py3-none-any), top_level.txt and RECORD (sha256 of every file), and fixed
timestamps so the same input gives the same bytes. Stdlib only: it runs in uv's bare build environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

GENERATOR = "sdprep-standin-backend 1"
# Zip entries need a date; a fixed one (the earliest zip can store) makes builds byte-identical.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
METADATA_FILE = "metadata.json"  # beside this file in a source tree: what the backend builds


def normalize(name: str) -> str:
    """PEP 503 normalized project name: tensorrt_cu12 / TensorRT-cu12 -> tensorrt-cu12."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_stem(name: str, version: str) -> str:
    """`{distribution}-{version}` as wheel file and dist-info names spell it (PEP 427: '-' becomes '_')."""
    return f"{normalize(name).replace('-', '_')}-{version.replace('-', '_')}"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def core_metadata(
    name: str,
    version: str,
    summary: str = "",
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    for extra, requirements in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for requirement in requirements:
            # An existing marker is combined with the extra's; most requirements here have none.
            base, _, marker = requirement.partition(";")
            condition = f'({marker.strip()}) and extra == "{extra}"' if marker.strip() else f'extra == "{extra}"'
            lines.append(f"Requires-Dist: {base.strip()} ; {condition}")
    return "\n".join(lines) + "\n"


def dist_info_files(
    name: str, version: str, metadata: str, files: Mapping[str, bytes], tag: str = "py3-none-any"
) -> dict[str, bytes]:
    """METADATA, WHEEL and top_level.txt of a wheel holding `files` (RECORD is added by `write_wheel`)."""
    info = f"{wheel_stem(name, version)}.dist-info"
    top_level = sorted({path.split("/", 1)[0].removesuffix(".py") for path in files if not path.endswith(".pth")})
    wheel = f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: {tag}\n"
    return {
        f"{info}/METADATA": metadata.encode("utf-8"),
        f"{info}/WHEEL": wheel.encode("utf-8"),
        f"{info}/top_level.txt": "".join(f"{module}\n" for module in top_level).encode("utf-8"),
    }


def write_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    summary: str = "",
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
) -> Path:
    """Write `{dest}/{name}-{version}-py3-none-any.whl` holding `files` (archive path -> content); its path."""
    dest.mkdir(parents=True, exist_ok=True)
    metadata = core_metadata(name, version, summary, requires, extras, requires_python)
    entries = {**dict(sorted(files.items())), **dist_info_files(name, version, metadata, files)}
    record_path = f"{wheel_stem(name, version)}.dist-info/RECORD"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items())
    entries[record_path] = (record + f"{record_path},,\n").encode("utf-8")
    target = dest / f"{wheel_stem(name, version)}-py3-none-any.whl"
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16  # -rw-r--r--: without it some installers write files mode 000
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(target)
    return target


def package_files(source: Path, prefix: str) -> dict[str, bytes]:
    """Every file of a package folder (no caches) as archive paths under `prefix`."""
    found: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            found[f"{prefix}/{path.relative_to(source).as_posix()}"] = path.read_bytes()
    return found


# ----------------------------------------------------------------------------------- PEP 517 hooks (in-tree use)
# The source tree holds `_backend/standin_backend.py` (this file), `_backend/metadata.json` with
# {"name", "version", "summary", "requires", "extras", "packages": {"import name": "folder in the tree"}}, and the
# package folders. Hooks run with the source tree as the working directory (PEP 517).


def _tree_metadata() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).resolve().parent / METADATA_FILE).read_text(encoding="utf-8"))
    return data


def _tree_files(meta: dict[str, Any]) -> dict[str, bytes]:
    root = Path.cwd()
    files: dict[str, bytes] = {}
    for module, folder in meta["packages"].items():
        files.update(package_files(root / folder, module))
    return files


def _metadata_text(meta: dict[str, Any]) -> str:
    return core_metadata(
        meta["name"],
        meta["version"],
        meta.get("summary", ""),
        meta.get("requires", ()),
        meta.get("extras"),
        meta.get("requires_python"),
    )


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []  # nothing: the point of this backend is a build that needs no index


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    meta = _tree_metadata()
    info = Path(metadata_directory) / f"{wheel_stem(meta['name'], meta['version'])}.dist-info"
    for path, data in dist_info_files(meta["name"], meta["version"], _metadata_text(meta), _tree_files(meta)).items():
        (info.parent / path).parent.mkdir(parents=True, exist_ok=True)
        (info.parent / path).write_bytes(data)
    return info.name


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    meta = _tree_metadata()
    wheel = write_wheel(
        Path(wheel_directory),
        meta["name"],
        meta["version"],
        _tree_files(meta),
        meta.get("summary", ""),
        meta.get("requires", ()),
        meta.get("extras"),
        meta.get("requires_python"),
    )
    return wheel.name


def build_editable(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    """An editable wheel is one .pth line per package folder's parent: the tree itself is imported."""
    meta = _tree_metadata()
    roots = sorted({str((Path.cwd() / folder).parent) for folder in meta["packages"].values()})
    files = {f"_{normalize(meta['name']).replace('-', '_')}_editable.pth": "\n".join(roots).encode("utf-8") + b"\n"}
    wheel = write_wheel(
        Path(wheel_directory),
        meta["name"],
        meta["version"],
        files,
        meta.get("summary", ""),
        meta.get("requires", ()),
        meta.get("extras"),
        meta.get("requires_python"),
    )
    return wheel.name


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    import tarfile

    meta = _tree_metadata()
    stem = f"{normalize(meta['name']).replace('-', '_')}-{meta['version']}"
    target = Path(sdist_directory) / f"{stem}.tar.gz"
    root = Path.cwd()
    members = ["pyproject.toml", "_backend", *meta["packages"].values()]
    with tarfile.open(target, "w:gz") as archive:
        for member in members:
            archive.add(root / member, arcname=f"{stem}/{member}", filter=_no_caches)
        info = tarfile.TarInfo(f"{stem}/PKG-INFO")
        data = _metadata_text(meta).encode("utf-8")
        info.size = len(data)
        import io

        archive.addfile(info, io.BytesIO(data))
    return target.name


def _no_caches(info: Any) -> Any:
    return None if "__pycache__" in info.name else info
