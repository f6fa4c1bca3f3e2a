"""The stale-engine guard: engines StreamDiffusion would wrongly reuse are moved aside before a build and put back
if it fails.

StreamDiffusion reuses an engine whenever its folder name matches, and several baked values are not in the names
(docs/streamdiffusion-facts.md §1.5). Before the child runs, every engine in a slot of this build whose recorded key
differs (or whose origin is unknown) goes to `.aside/<stamp>/`; a proven build drops the ones it replaced, anything else
puts them back. A killed app's leftovers are put back by the next build of that model.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdprep.engine_files import EngineFile, EngineSlot
from sdprep.manifest import Manifest, trusted_record
from sdprep.model_folder import ASIDE_DIR, CONFIGS_DIR, LOGS_DIR

# A temp file of an atomic write older than this was left by a killed process (a live write takes milliseconds).
STALE_TEMP_SECONDS = 600.0


class AsideGuard:
    def __init__(self, engine_dir: Path, stamp: str, say: Callable[..., None]) -> None:
        self.engine_dir = engine_dir
        self.stamp = stamp
        self.say = say
        self.moved: list[tuple[Path, Path]] = []  # (original, aside copy)

    def set_aside_foreign(
        self,
        before: dict[str, EngineFile],
        slots: list[EngineSlot],
        keys: dict[str, str],
        engine_key: str,
        manifest: Manifest,
        force: bool = False,
    ) -> dict[str, list[str]]:
        """Move away every engine StreamDiffusion might wrongly reuse (every one of this build's, when `force`: a
        forced build must build, and StreamDiffusion skips any engine it finds); return the ones safe to reuse."""
        reusable: dict[str, list[str]] = {}
        for engine in before.values():
            slot = next((slot for slot in slots if engine.matches(slot)), None)
            if slot is None:
                continue  # another ControlNet's engine or a safety checker that is off: not ours to touch
            record = trusted_record(manifest, engine)
            same = record is not None and record.key == keys[slot.id] and record.engine_key == engine_key
            if same and not force:
                reusable.setdefault(slot.id, []).append(engine.relative)
                self.say("engine_reused", path=engine.relative)
                continue
            if same:
                why = "aside_forced"
            elif record is None:
                why = "aside_unknown_origin"
            elif record.engine_key != engine_key:
                why = "aside_other_machine"
            else:
                why = "aside_other_params"
            target = self.engine_dir / ASIDE_DIR / self.stamp / engine.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(engine.path, target)
            self.moved.append((engine.path, target))
            self.say(why, path=engine.relative)
        return reusable

    def put_back(self, superseded: set[str]) -> set[str]:
        """Return set-aside engines to their place, except those a proven build replaced (then drop them)."""
        replaced: set[str] = set()
        for original, aside in self.moved:
            relative = original.relative_to(self.engine_dir).as_posix()
            if relative in superseded:
                aside.unlink(missing_ok=True)
                replaced.add(relative)
            else:
                original.unlink(missing_ok=True)  # an unproven new file at the old place
                original.parent.mkdir(parents=True, exist_ok=True)
                os.replace(aside, original)
        self.moved.clear()
        remove_empty_aside(self.engine_dir)
        return replaced


def remove_stale_temp_files(engine_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Temp files of atomic writes a killed app left (`.config.yaml.k3j2.tmp`): never read, so removed once old."""
    now = time.time()
    for folder in (engine_dir, engine_dir / CONFIGS_DIR, engine_dir / LOGS_DIR):
        for path in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > older_than:
                    path.unlink()


def restore_leftovers(engine_dir: Path) -> None:
    """Engines a killed app left aside go back where they were (unless something newer took the place)."""
    aside_root = engine_dir / ASIDE_DIR
    if not aside_root.is_dir():
        return
    for stamp in aside_root.iterdir():
        for path in sorted(stamp.rglob("*")):
            if path.is_file():
                original = engine_dir / path.relative_to(stamp)
                if original.exists():
                    path.unlink()
                else:
                    original.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, original)
    remove_empty_aside(engine_dir)


def remove_empty_aside(engine_dir: Path) -> None:
    aside_root = engine_dir / ASIDE_DIR
    if not aside_root.is_dir():
        return
    for folder in sorted(aside_root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if not any(aside_root.iterdir()):
        aside_root.rmdir()


def describe(engine: EngineFile, reused: bool) -> dict[str, Any]:
    """An engine file for a result: path, kind, size, when written, whether this build reused it."""
    return {
        "path": engine.relative,
        "kind": engine.kind,
        "size": engine.size,
        "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(engine.mtime_ns / 1e9)),
        "reused": reused,
    }
