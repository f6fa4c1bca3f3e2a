"""The estimate against this machine (free disk and GPU memory) and in words: the refusals and the preview's rows.

free_space is the one function here that looks at the machine, through the `disk_usage` seam that tests replace to
play a nearly full disk (the build and the preview ask through free_space only).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sdprep.estimate.figures import Estimate, Figure
from sdprep.messages import Message, Problem, Size, error, msg, warning


def disk_problem(est: Estimate, free: int | None, folder: Path) -> Problem | None:
    """An error on the engines folder when its free space is below what the build needs (with the margin)."""
    if free is None or free >= est.disk_needed:
        return None
    return error(
        "engines_dir",
        "disk_low",
        folder=folder,
        free=Size(free),
        need=Size(est.disk_needed),
        peak=Size(est.disk_peak.high),
        margin=Size(est.margin),
    )


def vram_problem(est: Estimate, free: int | None, fp8: bool) -> Problem | None:
    """A warning when the GPU's free memory is below the low end of what building needs."""
    if free is None or free >= est.vram_build.low:
        return None
    return warning("fp8" if fp8 else "width", "vram_low", free=Size(free), need=Size(est.vram_build.low))


def size_words(figure: Figure) -> Message:
    if figure.about is not None and figure.high - figure.low < 0.05 * max(figure.high, 1):
        return msg("est_about", value=Size(figure.about))
    return msg("est_range", low=Size(figure.low), high=Size(figure.high))


def time_words(figure: Figure) -> Message:
    """ "about 6 min" from earlier builds, else "5-7 min" (seconds below two minutes)."""
    if figure.about is not None and figure.source.code != "est_src_time_scaled":
        if figure.about < 120:
            return msg("est_about_seconds", value=max(1, round(figure.about)))
        return msg("est_about_minutes", value=round(figure.about / 60))
    if figure.high < 120:
        return msg("est_range_seconds", low=max(0, round(figure.low)), high=max(1, round(figure.high)))
    low, high = round(figure.low / 60), round(figure.high / 60)
    return msg("est_range_minutes", low=max(1, low), high=max(high, low + 1))


@dataclass(frozen=True)
class Line:
    """One row of the estimate for people: what, how much, from where."""

    label: str  # text key
    value: Message
    source: Message
    alarm: bool = False


def lines(est: Estimate, free_disk: int | None, free_vram: int | None, folder: Path) -> list[Line]:
    rows = [
        Line("est_row_disk_engines", size_words(est.disk_engines), est.disk_engines.source),
        Line("est_row_disk_peak", msg("est_needed", need=Size(est.disk_needed)), est.disk_peak.source),
    ]
    if free_disk is not None:
        short = free_disk < est.disk_needed
        rows.append(
            Line(
                "est_row_disk_free",
                msg("est_free_short" if short else "est_free_ok", free=Size(free_disk)),
                msg("est_src_folder", folder=folder),
                alarm=short,
            )
        )
    rows.append(Line("est_row_vram_build", size_words(est.vram_build), est.vram_build.source))
    if free_vram is not None:
        low = free_vram < est.vram_build.low
        rows.append(
            Line(
                "est_row_vram_free",
                msg("est_vram_short" if low else "est_free_ok", free=Size(free_vram)),
                msg("est_src_probe"),
                alarm=low,
            )
        )
    rows.append(Line("est_row_vram_run", size_words(est.vram_run), est.vram_run.source))
    rows.append(Line("est_row_time", time_words(est.time), est.time.source))
    return rows


# The seam tests replace (see the module's docstring).
disk_usage = shutil.disk_usage


def free_space(folder: Path) -> int | None:
    """Free bytes on the filesystem that holds `folder` (or would: its nearest existing parent); None if unknown."""
    path = Path(folder)
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return int(disk_usage(path).free)
    except OSError:
        return None
