"""Keep freed array memory in the process instead of returning it to the OS.

A training step frees and re-allocates the same large arrays (Z, A, dZ, dW) every iteration.
glibc serves blocks above 128 KiB with fresh mmap pages and unmaps them on free, so every step
pays for page faults and zeroing again, which nearly doubles a float64 step on small networks.
Raising glibc's mmap and trim thresholds once lets the heap reuse those blocks. This is a no-op
on other C libraries, and `HPEXP_KEEP_MEMORY=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory(threshold: int = 64 * 2**20) -> bool:
    """Ask glibc to serve blocks up to `threshold` bytes from the heap; True if it did."""
    global _done
    if _done or os.environ.get("HPEXP_KEEP_MEMORY", "1") == "0":
        return _done
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 4 * threshold)
    )
