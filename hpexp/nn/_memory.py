"""Keep freed array memory in the process instead of returning it to the OS.

A training step frees and re-allocates the same large arrays (Z, A, dZ, dW) every iteration.
glibc serves blocks above 128 KiB with fresh mmap pages and unmaps them on free, so every step
pays for page faults and zeroing again, which nearly doubles a float64 step on small networks.
Raising glibc's mmap and trim thresholds while `train` runs lets the heap reuse those blocks;
the defaults are restored when it returns, so the rest of the process is left as it was. This
is a no-op on other C libraries, and `HPEXP_KEEP_MEMORY=0` turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT = 128 * 1024  # glibc's initial mmap and trim thresholds
_depth = 0  # nested `train` calls keep the setting until the outermost ends


@functools.cache
def _mallopt() -> Any:
    """glibc's mallopt, looked up once (finding libc runs `ldconfig -p`), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def keep_freed_memory(threshold: int = 64 * 2**20) -> Iterator[bool]:
    """While the block runs, glibc serves blocks up to `threshold` bytes from the heap and
    keeps freed memory; afterwards its default thresholds are restored. Yields whether the
    setting took effect (False off glibc or with HPEXP_KEEP_MEMORY=0)."""
    global _depth
    mallopt = _mallopt() if os.environ.get("HPEXP_KEEP_MEMORY", "1") != "0" else None
    applied = bool(mallopt) and _depth > 0
    if mallopt is not None and _depth == 0:
        applied = bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
            mallopt(_M_TRIM_THRESHOLD, 4 * threshold)
        )
    _depth += 1
    try:
        yield applied
    finally:
        _depth -= 1
        if mallopt is not None and _depth == 0 and applied:
            mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
            mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
