"""Stand-in for ``torch.version`` (build metadata of the installed wheel)."""

from __future__ import annotations

from torch import _machine

__version__: str = _machine.torch_version()
# None on a CPU-only wheel, like the real attribute.
cuda: str | None = _machine.cuda_version()
hip: str | None = None
git_version: str = "standin"
debug: bool = False
