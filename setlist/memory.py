"""How much memory a job may still take: read before a large step, so that a job too big for the
machine stops with a message that says what to do instead of being killed by the kernel half-way."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from pathlib import Path

#: of the memory available, what a job plans to use (the rest: the page cache, other processes)
USABLE_SHARE = 0.9


def _meminfo_kb(path: str, key: str) -> int | None:
    try:
        with Path(path).open() as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None when unknown."""
    return _meminfo_kb("/proc/meminfo", "MemAvailable:")


def resident_memory() -> int | None:
    """Bytes this process holds in memory now (Linux ``VmRSS``), or None when unknown."""
    return _meminfo_kb("/proc/self/status", "VmRSS:")


def gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def require_room(peak: int, what: str, setting: str, instead: str) -> None:
    """Refuse (``Refused``) a step whose estimated ``peak`` (bytes, this process's whole footprint)
    would not fit in what this process holds now plus the memory available; unknown memory is not
    guessed at. ``setting`` names the estimate's setting, ``instead`` what to do."""
    from setlist.errors import Refused

    free, held = available_memory(), resident_memory()
    if free is None or held is None or peak - held <= USABLE_SHARE * free:
        return
    raise Refused(
        f"{what} needs about {gb(peak)} at its peak ({setting}) and {gb(free)} is available beyond the "
        f"{gb(held)} already held: stopped before it rather than be killed half-way. {instead}"
    )


def _trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_malloc_trim = _trim()


def release_freed() -> None:
    """Hand memory that is free but still held back to the system: Arrow's pool keeps what a read
    freed, and the C allocator keeps freed small blocks. Neither is reused by NumPy's large arrays,
    so after reading a 4M-event log ~1 GB of freed memory stayed resident through training."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)
