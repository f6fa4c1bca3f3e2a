"""Which diffusers the build Python has, and whether it is the build the fork pins (docs/streamdiffusion-facts.md §13).

The forkni fork pins diffusers from git (varshith15/diffusers@3e3b72f5…); with PyPI's diffusers, configs with cfg_type
full and initialize fail when they run. The probe reads the installed distribution's origin (PEP 610
direct_url.json) and what the installed StreamDiffusion declares; the parent warns, naming those cfg types, and the
form shows the warning on cfg_type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sdprep.jobs.environment import Environment, probe
from sdprep.jobs.process import ChildSpec
from sdprep.params import BakedParams
from sdprep.setup.pins import FORK_DIFFUSERS_COMMIT, FORK_DIFFUSERS_URL
from sdprep.text import word

from .conftest import STANDIN

PINNED = f"diffusers @ git+{FORK_DIFFUSERS_URL}@{FORK_DIFFUSERS_COMMIT}"


def dist_info(site: Path, name: str, version: str, requires: tuple[str, ...] = (), direct: Any = None) -> None:
    """An installed distribution as importlib.metadata finds it: <name>-<version>.dist-info on the path."""
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    (folder / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if direct is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct), encoding="utf-8")


def git_origin(url: str, commit: str) -> dict[str, Any]:
    return {"url": url, "vcs_info": {"vcs": "git", "commit_id": commit, "requested_revision": commit}}


def environment(diffusers: dict[str, Any], cached_attention: bool = True) -> Environment:
    return Environment(
        {"diffusers": diffusers, "streamdiffusion": {"features": {"cached_attention": cached_attention}}}
    )


@pytest.mark.parametrize(
    ("direct", "warned"),
    [
        (git_origin(FORK_DIFFUSERS_URL, FORK_DIFFUSERS_COMMIT), False),
        (None, True),
        (git_origin(FORK_DIFFUSERS_URL, "0" * 40), True),
    ],
    ids=["pinned-git-build", "pypi", "other-commit"],
)
def test_the_probe_reads_where_diffusers_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: Any, warned: bool
) -> None:
    site = tmp_path / "site"
    dist_info(site, "diffusers", "0.35.1", direct=direct)
    dist_info(site, "streamdiffusion", "0.4.0", requires=(PINNED, "diffusers-ipadapter; extra == 'ipadapter'"))
    monkeypatch.setenv("PYTHONPATH", str(site))
    found = probe(ChildSpec(streamdiffusion_src=str(STANDIN)), refresh=True)
    report = found.report["diffusers"]
    assert (report["installed"], report["version"], report["wanted"]) == (True, "0.35.1", PINNED)
    assert report["commit"] == (direct["vcs_info"]["commit_id"] if direct else None)
    mismatch = found.diffusers_mismatch()
    assert (mismatch is not None) == warned
    if mismatch is not None:
        said = word(mismatch)
        assert "full, initialize" in said and "varshith15/diffusers@3e3b72f557e9" in said and "0.35.1" in said


def test_only_full_and_initialize_get_the_warning_on_cfg_type() -> None:
    pypi = environment({"installed": True, "version": "0.35.1", "url": None, "commit": None, "wanted": PINNED})
    for cfg, expected in (("full", True), ("initialize", True), ("self", False), ("none", False)):
        problems = [p for p in pypi.refusals(BakedParams(cfg_type=cfg)) if p.field == "cfg_type"]  # type: ignore[arg-type]
        assert bool(problems) == expected, cfg
        if problems:
            assert problems[0].severity == "warning" and f"cfg_type {cfg} fails" in word(problems[0].message)


def test_no_warning_where_nothing_is_pinned_or_nothing_is_installed() -> None:
    # A fork asking for a released diffusers: nothing to compare with.
    assert (
        environment({"installed": True, "version": "0.24.0", "wanted": "diffusers==0.24.0"}).diffusers_mismatch()
        is None
    )
    # Not installed: StreamDiffusion's import fails, and the probe's missing() says so.
    assert environment({"installed": False}).diffusers_mismatch() is None
    # An old cached probe without the part.
    assert Environment({}).diffusers_mismatch() is None


def test_a_source_checkout_is_compared_with_the_forkni_pin() -> None:
    """--streamdiffusion-src: no metadata says what the fork wants; the fork with cached attention is forkni's."""
    pypi = {"installed": True, "version": "0.35.1", "url": None, "commit": None, "wanted": None}
    assert environment(pypi).diffusers_mismatch() is not None
    assert environment(pypi, cached_attention=False).diffusers_mismatch() is None
    pinned = {**pypi, "url": FORK_DIFFUSERS_URL.removesuffix(".git"), "commit": FORK_DIFFUSERS_COMMIT}
    assert environment(pinned).diffusers_mismatch() is None
