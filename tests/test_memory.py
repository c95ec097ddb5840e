"""The worker's heap helpers run on this platform (glibc) and are harmless elsewhere."""

from __future__ import annotations

import pytest

from folksjobs.infra import memory


def test_trim_and_arena_limit_run() -> None:
    memory.limit_arenas(0)  # 0: glibc's default, nothing set
    memory.limit_arenas(2)
    memory.release_free_memory()


def test_without_glibc_they_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_libc", lambda: None)
    memory.limit_arenas(2)
    memory.release_free_memory()
