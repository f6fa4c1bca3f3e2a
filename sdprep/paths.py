"""Path helpers shared by the model, the config writer and the build: what is local, absolute, atomic."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt")
_WEIGHT_SUFFIXES = (*MODEL_FILE_SUFFIXES, ".bin", ".pt", ".pth")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def looks_like_local_path(text: str, hub_subpaths: bool = False) -> bool:
    """True for what exists on disk or cannot be a Hugging Face reference.

    A model must be a plain `owner/name` id; LoRAs, ControlNets and IP-Adapter weights may also name a file or
    folder inside a repo (`owner/name/sub/file.bin`), which `hub_subpaths` allows.
    """
    text = text.strip()
    if not text:
        return False
    if Path(text).expanduser().exists():
        return True
    if text.startswith((".", "/", "~", "\\")) or bool(_WINDOWS_DRIVE.match(text)) or "\\" in text:
        return True
    if hub_subpaths:
        return text.count("/") < 1
    return text.lower().endswith(_WEIGHT_SUFFIXES) or not _HF_ID.match(text)


def is_hf_id(text: str) -> bool:
    return not looks_like_local_path(text) and bool(text.strip())


def absolute_path(path: str) -> str:
    """Relative paths are resolved against the working directory now, not the inference script's later."""
    return os.path.abspath(os.path.expanduser(path)) if path else path


def absolute_model(model: str) -> str:
    return absolute_path(model) if looks_like_local_path(model) else model


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, flush, fsync, os.replace.

    A crash or a full disk leaves the earlier file untouched; readers never see half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def nearest_existing_parent(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current
