"""Hugging Face ids a person probably meant: a typed id one or two letters off a known or recently used one.

`stabilityai/sd-trubo` is accepted by every rule (it is a well-formed id) and fails only minutes later, when the build
downloads it. Known ids are the popular models and those of the family table; recently used ones are the models already
prepared in the engines folder. Comparison ignores case, and a swap of two neighbouring letters counts as one edit.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sdprep.derive import recorded_model
from sdprep.family import KNOWN_MODEL_FAMILIES
from sdprep.params import POPULAR_MODELS
from sdprep.paths import is_hf_id

MAX_EDITS = 2
MAX_FOLDERS = 200  # an engines folder holds a few dozen models; past this, the rest are not read for suggestions

_recent: dict[Path, tuple[int, tuple[str, ...]]] = {}  # engines folder -> (its mtime, the ids prepared there)
_recent_lock = threading.Lock()


def edits(a: str, b: str) -> int:
    """The optimal-string-alignment distance: inserts, deletes, replacements and swaps of neighbours, one each."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def recent_ids(engines_root: Path) -> tuple[str, ...]:
    """The Hugging Face ids prepared in the engines folder, read again only when the folder changes."""
    try:
        stamp = os.stat(engines_root).st_mtime_ns
    except OSError:
        return ()
    with _recent_lock:
        known = _recent.get(engines_root)
        if known is not None and known[0] == stamp:
            return known[1]
    ids: list[str] = []
    try:
        with os.scandir(engines_root) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_FOLDERS:
                    break
                if entry.is_dir(follow_symlinks=False):
                    model = recorded_model(Path(entry.path))
                    if model and is_hf_id(model):
                        ids.append(model)
    except OSError:
        return ()
    with _recent_lock:
        _recent[engines_root] = (stamp, tuple(ids))
    return tuple(ids)


def known_ids(engines_root: Path | None = None) -> tuple[str, ...]:
    """Every id a suggestion may name: the popular ones first, then the family table's, then the prepared ones."""
    ids = [*POPULAR_MODELS, *KNOWN_MODEL_FAMILIES]
    if engines_root is not None:
        # A prepared id that is itself a near miss of a known one (a typo saved once) never becomes a spelling
        # that silences the suggestion.
        listed = tuple(ids)
        ids += [model for model in recent_ids(engines_root) if did_you_mean(model, listed) is None]
    seen: set[str] = set()
    unique = []
    for model in ids:
        if model.lower() not in seen:
            seen.add(model.lower())
            unique.append(model)
    return tuple(unique)


def did_you_mean(typed: str, candidates: tuple[str, ...]) -> str | None:
    """The candidate `typed` is one or two edits (or only case) away from; None when it is one of them, or none fits.

    The known spelling of an id differing only in case is preferred (the family table is all lower case)."""
    typed = typed.strip()
    if not is_hf_id(typed) or typed in candidates:
        return None
    lowered = typed.lower()
    same_letters = [model for model in candidates if model.lower() == lowered]
    if same_letters:
        return None if typed in same_letters else same_letters[0]
    best: tuple[int, str] | None = None
    for model in candidates:
        # Only a small part of the id may differ: "sd-turbo" is not a typo of "sdxl-turbo".
        allowed = min(MAX_EDITS, len(model.split("/")[-1]) // 4)
        distance = edits(lowered, model.lower())
        if 0 < distance <= allowed and (best is None or distance < best[0]):
            best = (distance, model)
    return best[1] if best else None
