"""Where the project, the stand-in StreamDiffusion and the tests' artifacts are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "gradio_prepare.py"
STANDIN = ROOT / "tests" / "standin"  # stand-in streamdiffusion, torch and tensorrt that follow the real API
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots and figures the tests leave for the docs (not committed)
