"""Shared fixtures: the project root, the stand-in StreamDiffusion, and isolated lock/cache folders."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# gradio and gradio_client report usage to their makers unless told not to; tests must not reach the network.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Nor the Hugging Face Hub: the id check answers "off" unless a test serves a fake Hub and turns it on.
os.environ["HF_HUB_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "standin"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python gradio_prepare.py ARGS` as a user runs it, its build child finding the stand-in StreamDiffusion."""
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN)}
    return subprocess.run(
        [sys.executable, str(ROOT / "gradio_prepare.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own GPU lock folder and probe cache, so tests never see each other's builds."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SDPREP_LOCK_DIR", str(state / "locks"))
    monkeypatch.setenv("SDPREP_CACHE_DIR", str(state / "cache"))
    # The estimate is for real engines (gigabytes); the stand-in's are bytes, and a test machine's free disk must not
    # decide unrelated tests. Tests of the disk refusal remove this.
    monkeypatch.setenv("SDPREP_ALLOW_LOW_DISK", "1")
    for name in list(os.environ):
        if name.startswith("STANDIN_"):
            monkeypatch.delenv(name)
    yield


def said(message: object) -> str:
    """A Message (or anything) in the English a person reads: what tests compare sentences against."""
    from sdprep.messages import Message
    from sdprep.text import word

    return word(message) if isinstance(message, Message) else str(message)


def runtime_defaults() -> dict:
    """RUNTIME_DEFAULTS as written in gradio_prepare.py, read without importing it (that builds the whole UI)."""
    tree = ast.parse((ROOT / "gradio_prepare.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RUNTIME_DEFAULTS":
            return ast.literal_eval(node.value)  # type: ignore[arg-type]
    raise AssertionError("gradio_prepare.py has no RUNTIME_DEFAULTS")


@pytest.fixture
def runtime() -> dict:
    return runtime_defaults()
