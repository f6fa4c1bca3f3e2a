"""The soak's pure parts (bench/soak.py): the memory slope, the engines folder's consistency check, the raw-error
finder and the writer of its own section of docs/reliability.md. The soak itself runs from `bench/run.py --soak`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import soak
from bench.common import MB
from bench.reliability import kept_sections


def test_slope_is_least_squares_over_the_second_half_in_mb_per_minute() -> None:
    # A start-up climb of 100 MB in the first half, then 0.5 MB a minute: only the second half counts.
    samples = [
        (float(t), t / 300 * 100 * MB if t < 300 else 100 * MB + (t - 300) / 60 * 0.5 * MB) for t in range(0, 601, 5)
    ]
    assert soak.slope_mb_per_min(samples) == pytest.approx(0.5)


def test_slope_of_a_flat_noisy_series_is_near_zero_and_of_too_few_samples_is_nan() -> None:
    samples = [(float(t), float(200 * MB + (MB if t % 10 else -MB))) for t in range(0, 1200, 5)]
    assert abs(soak.slope_mb_per_min(samples)) < 0.05
    assert soak.slope_mb_per_min([]) != soak.slope_mb_per_min([])  # NaN
    assert soak.slope_mb_per_min([(0.0, 1.0)]) != soak.slope_mb_per_min([(0.0, 1.0)])


def _model(engines: Path, slug: str, variants: dict[str, list[str]], write_engines: bool = True) -> Path:
    folder = engines / slug
    (folder / "configs").mkdir(parents=True)
    records: dict[str, object] = {}
    for name, files in variants.items():
        (folder / "configs" / f"{name}.yaml").write_text("model_id: x\n", encoding="utf-8")
        records[name] = {"config": f"configs/{name}.yaml", "engines": files}
    recorded = {relative: {"kind": "unet"} for files in variants.values() for relative in files}
    for relative in recorded if write_engines else ():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b"engine")
    (folder / "build.json").write_text(json.dumps({"variants": records, "engines": recorded}), encoding="utf-8")
    return folder


def test_a_consistent_folder_has_no_problems(tmp_path: Path) -> None:
    _model(tmp_path, "standin--success-0", {"v1": ["standin/success-0/unet.engine"], "v2": ["a/vae.engine"]})
    _model(tmp_path, "standin--slow-1", {"w": ["b/unet.engine"]})
    (tmp_path / "saved-only").mkdir()  # a Save without a build: config.yaml, no build.json
    (tmp_path / "saved-only" / "config.yaml").write_text("model_id: y\n", encoding="utf-8")
    seen = {"standin--success-0": {"v1", "v2"}, "standin--slow-1": {"w"}}

    result = soak.check_folder(tmp_path, seen)

    assert result.problems() == 0, result
    assert (result.models, result.engines) == (2, 3)


def test_each_kind_of_inconsistency_is_named(tmp_path: Path) -> None:
    _model(tmp_path, "missing", {"v": ["x/unet.engine"]}, write_engines=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "build.json").write_text('{"variants": {', encoding="utf-8")
    left = _model(tmp_path, "left", {"v": ["y/unet.engine"]})
    (left / ".aside" / "20261206").mkdir(parents=True)
    (left / ".config.yaml.k3j2.tmp").write_text("", encoding="utf-8")
    (tmp_path / ".venv-build.partial").mkdir()
    seen = {"missing": {"v"}, "broken": set(), "left": {"v", "other"}, "deleted": {"z"}}

    result = soak.check_folder(tmp_path, seen)

    assert result.missing == ["missing/x/unet.engine", "missing/x/unet.engine (variant v)"]
    assert [line.split(":")[0] for line in result.unreadable] == ["broken"]
    assert sorted(result.leftovers) == [".venv-build.partial", "left/.aside", "left/.config.yaml.k3j2.tmp"]
    assert [line.split(":")[0] for line in result.mismatched] == ["left", "deleted"]
    assert result.problems() == 8


def test_raw_errors_are_found_outside_the_build_log_only() -> None:
    outputs = {
        "build-log": "Traceback (most recent call last):\n  RuntimeError: CUDA error",  # the child's own words
        "build-result": "✘ Build failed",
        "library-message": "[Errno 2] No such file or directory: '/e/m/.aside/x'",
        "library": {"value": "KeyError: 'engines'"},
    }
    found = soak.raw_errors(outputs)
    assert [item.split(":")[0] for item in found] == ["library-message", "library"]
    assert soak.raw_errors({"action-message": "Saved `config.yaml`."}) == []


def test_the_soak_section_replaces_only_its_own_block(tmp_path: Path) -> None:
    page = tmp_path / "reliability.md"
    page.write_text("# Reliability\n\n## Faults\n\ntext\n", encoding="utf-8")

    soak.write_section(page, "## Soak\n\nfirst\n")
    soak.write_section(page, "## Soak\n\nsecond\n")

    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Reliability\n\n## Faults\n\ntext\n\n<!-- soak:start -->\n## Soak\n\nsecond\n")
    assert "first" not in text and text.count("<!-- soak:start -->") == 1
    # The fault suite's writer renders the rest of the page again and carries the block over as it is.
    assert kept_sections(page) == "<!-- soak:start -->\n## Soak\n\nsecond\n<!-- soak:end -->\n"
