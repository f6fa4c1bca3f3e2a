"""Check, at import, the dependency pins the real package checks (only the one the field trips on here)."""

from __future__ import annotations

from .utils.versions import require_version_core

PINS: dict[str, str] = {"tokenizers": "tokenizers>=0.21,<0.22"}

for _name in ("tokenizers",):
    require_version_core(PINS[_name])
