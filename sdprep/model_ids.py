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
# The prepared ids that may be suggested, by the prepared ids read: they are compared with every known id, which every
# form change would otherwise do again for an engines folder that has not changed.
_suggestible: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
_recent_lock = threading.Lock()


def edits(a: str, b: str, limit: int | None = None) -> int:
    """The optimal-string-alignment distance: inserts, deletes, replacements and swaps of neighbours, one each.

    With `limit`, a distance above it is answered as limit + 1 as soon as that is certain: every form change compares
    the typed id with dozens of known ones, and nearly all of them are far off (a full table costs ~0.1 ms each)."""
    beyond = len(a) + len(b) + 1 if limit is None else limit + 1
    if abs(len(a) - len(b)) >= beyond:  # each letter of the difference is an insert at least
        return beyond
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        # A cell is at least the smallest of the row above or (through a swap) the one above that, plus one: once
        # two rows in a row are past the limit, so is every later one.
        if min(current) >= beyond and min(previous) >= beyond:
            return beyond
        previous2, previous = previous, current
    return min(previous[-1], beyond)


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
        ids += _suggestible_ids(recent_ids(engines_root), tuple(ids))
    seen: set[str] = set()
    unique = []
    for model in ids:
        if model.lower() not in seen:
            seen.add(model.lower())
            unique.append(model)
    return tuple(unique)


def _suggestible_ids(prepared: tuple[str, ...], listed: tuple[str, ...]) -> tuple[str, ...]:
    with _recent_lock:
        known = _suggestible.get((prepared, listed))
    if known is not None:
        return known
    fitting = tuple(model for model in prepared if did_you_mean(model, listed) is None)
    with _recent_lock:
        if len(_suggestible) >= 16:  # a few engines folders at most; forget the oldest
            del _suggestible[next(iter(_suggestible))]
        _suggestible[prepared, listed] = fitting
    return fitting


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
        distance = edits(lowered, model.lower(), allowed)
        if 0 < distance <= allowed and (best is None or distance < best[0]):
            best = (distance, model)
    return best[1] if best else None
