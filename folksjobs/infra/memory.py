"""The worker's C heap: fewer malloc arenas, and freed pages given back between chunks.

glibc only (ctypes); elsewhere both are no-ops. Why (bench/notes.md "The hot path"):
over a 500-chunk import the Python heap is flat (tracemalloc), but each chunk allocates
and frees ~100k small objects while the SDK's threads allocate beside the event loop, and
glibc keeps freed pages resident in each thread's arena. Two arenas and a trim after each
chunk took a 5M-row import's worker from 1.14x to 1.06-1.08x of its 100k-row peak.
"""

from __future__ import annotations

import ctypes
import functools

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # The process's own symbols (no library search, no subprocess): glibc's when linked
    # against it; musl and macOS have no malloc_trim and get None.
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim, libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(n: int) -> None:
    """At most `n` malloc arenas, before the process starts its threads: fewer half-empty
    arenas to keep resident."""
    libc = _libc()
    if libc is not None and n > 0:
        libc.mallopt(_M_ARENA_MAX, n)


def release_free_memory() -> None:
    """Give freed heap pages back to the system (0.25 ms typically; call between large units)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
