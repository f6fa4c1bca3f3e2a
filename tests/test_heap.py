"""The server's malloc arenas (sdprep/ui/heap.py): two on glibc, the environment's MALLOC_ARENA_MAX left to decide,
nothing done elsewhere."""

from __future__ import annotations

import platform
import sys

import pytest

from sdprep.ui import heap


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's own setting"
)
def test_glibc_gets_two_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert heap.limit_arenas()


def test_a_malloc_arena_max_in_the_environment_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert not heap.limit_arenas()


@pytest.mark.parametrize("system", ["win32", "darwin"])
def test_nothing_is_done_on_other_systems(monkeypatch: pytest.MonkeyPatch, system: str) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(sys, "platform", system)
    assert not heap.limit_arenas()


def test_nothing_is_done_with_another_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform, "libc_ver", lambda *args, **kwargs: ("musl", "1.2"))
    assert not heap.limit_arenas()
