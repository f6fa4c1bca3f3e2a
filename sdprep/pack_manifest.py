"""A pack's manifest (sdpack.json): what a pack holds and what built it, typed and bounded.

A pack is one zip file (sdprep.pack writes it, sdprep.unpack reads it):

    sdpack.json                          this manifest (written last; a zip's central directory finds it first)
    <model folder>/configs/<variant>.yaml
    <model folder>/config.yaml           when it was this build's config when packed
    <model folder>/build.json            the build's own record (sdprep.manifest), and its engines' records
    <model folder>/<prefix>/.../*.engine every engine file the build uses
    <model folder>/configs/<variant>.check.png, check.png   the last passed check's image, if any
    <model folder>/models/<name>         the local model (file or folder), with `pack --with-model`

The manifest names every other entry with its size and SHA-256, so an unpack checks each byte before anything lands
in the engines folder; and the machine that built the engines (compute capability and TensorRT version decide
whether they load elsewhere: docs/streamdiffusion-facts.md §1.4).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from sdprep.manifest import BYTES, bounded, typed

PACK_FORMAT = 1
PACK_KIND = "sdprep-pack"
PACK_SUFFIX = ".sdpack.zip"
MANIFEST_ENTRY = "sdpack.json"
MANIFEST_LIMIT = 8 * 1024 * 1024
MAX_FILES = 10_000  # a build has a handful of engines; a model folder a few hundred files
MODELS_DIR = "models"
APP_VERSION = "0.1.0"  # pyproject.toml's version (tests/test_pack.py keeps them equal)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PackedFile:
    path: str  # the entry's name in the zip: <model folder>/<path in the model folder>
    sha256: str
    role: str  # "engine", "config", "record", "image", "model"
    size: int = bounded(*BYTES)


@dataclass
class Identity:
    """A model or LoRA: a Hugging Face id, or a local path with its size and hash."""

    id: str
    local: bool
    size: int | None = bounded(*BYTES, default=None)
    sha256: str | None = None
    included: str | None = None  # its path in the model folder when the pack holds it (models/<name>)


@dataclass
class BuiltOn:
    """The machine and software that built the engines (from the build's record, and the packing machine)."""

    gpu: str | None = None
    compute_capability: str | None = None
    tensorrt: str | None = None
    cuda: str | None = None
    driver: str | None = None
    torch: str | None = None
    python: str | None = None
    streamdiffusion: str | None = None  # the fork's version
    fork_url: str | None = None
    fork_commit: str | None = None


@dataclass
class PackManifest:
    app_version: str
    created_at: str
    machine: str
    folder: str  # the model folder's name
    variant: str
    config: str  # configs/<variant>.yaml
    current: bool  # config.yaml was this build's config when packed (and is in the pack)
    built_on: BuiltOn
    model: Identity
    files: list[PackedFile]
    loras: list[Identity] = field(default_factory=list)
    kind: str = PACK_KIND
    format: int = PACK_FORMAT

    def entry(self, role: str) -> list[PackedFile]:
        return [item for item in self.files if item.role == role]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.files)


class NotAPack(ValueError):
    """The manifest is missing, not ours, or malformed; the text says why (a program's words, shown as code)."""


def manifest_json(manifest: PackManifest) -> bytes:
    return (json.dumps(asdict(manifest), indent=2) + "\n").encode("utf-8")


def parse_pack_manifest(raw: bytes) -> PackManifest:
    """sdpack.json's bytes as a PackManifest; NotAPack naming what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("kind") != PACK_KIND:
            raise ValueError(f"{MANIFEST_ENTRY} is not an sdprep pack manifest")
        version = data.get("format")
        if not isinstance(version, int) or isinstance(version, bool) or version > PACK_FORMAT:
            raise ValueError(f"pack format {version!r} is newer than this app ({PACK_FORMAT})")
        manifest = typed(PackManifest, data, MANIFEST_ENTRY)
    except (ValueError, UnicodeDecodeError, RecursionError) as problem:
        raise NotAPack(str(problem)) from None
    if len(manifest.files) > MAX_FILES:
        raise NotAPack(f"{MANIFEST_ENTRY} lists {len(manifest.files)} files, more than {MAX_FILES}")
    for item in manifest.files:
        if not _SHA256.match(item.sha256):
            raise NotAPack(f"{MANIFEST_ENTRY}: {item.path}: not a SHA-256")
    return manifest
