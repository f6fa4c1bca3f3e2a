"""Requirement checks with the message transformers raises (an ImportError), written for the stand-in.

Only ``name>=x,<y``-style requirements with the operators below are understood, which is all the pins use.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable

_OPERATORS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
CORE_HINT = "Try: `pip install transformers -U` or `pip install -e '.[dev]'` if you're working with git main"


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def installed_version(name: str) -> str:
    """What the simulated venv has installed; only tokenizers is simulated (STANDIN_TOKENIZERS_VERSION). A venv whose
    transformers a test breaks (STANDIN_SD_BROKEN_DEP=transformers) has the too-new 0.23.2 unless told; any other has
    one in range, so code that imports transformers for itself (the rehearsal's tiny model) works."""
    if name == "tokenizers":
        broken = os.environ.get("STANDIN_SD_BROKEN_DEP") == "transformers"
        return os.environ.get("STANDIN_TOKENIZERS_VERSION") or ("0.23.2" if broken else "0.21.4")
    return "0"


def require_version(requirement: str, hint: str | None = None) -> None:
    match = re.match(r"^([A-Za-z0-9_.-]+)(.*)$", requirement.strip())
    if not match:
        raise ValueError(f"requirement needs to be in the pip package format, e.g., package_a>=1.23, got {requirement}")
    name, spec = match.groups()
    found = installed_version(name)
    suffix = f"\n{hint}" if hint else ""
    for clause in filter(None, (part.strip() for part in spec.split(","))):
        op = next(symbol for symbol in sorted(_OPERATORS, key=len, reverse=True) if clause.startswith(symbol))
        wanted = clause[len(op) :].strip()
        if not _OPERATORS[op](_parse(found), _parse(wanted)):
            raise ImportError(
                f"{requirement} is required for a normal functioning of this module, but found {name}=={found}.{suffix}"
            )


def require_version_core(requirement: str) -> None:
    """``require_version`` with the hint transformers gives for its own pins."""
    require_version(requirement, CORE_HINT)
