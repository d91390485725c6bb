"""Child processes that do not outlive the process that started them, even after kill -9.

On Linux a process can ask the kernel for a signal when its parent dies (PR_SET_PDEATHSIG);
elsewhere nothing is set and children stop the ordinary way only. A worker asks for it itself
(`die_with_parent`); a program that is not ours (the MLflow server) gets it through
`subprocess.Popen(preexec_fn=dies_with_this_process())`, set between fork and exec.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["die_with_parent", "dies_with_this_process", "name_this_process"]

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


@functools.cache
def _prctl() -> Callable[..., Any] | None:
    """libc's prctl on Linux, else None (looked up once, before any fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> bool:
    """Have the kernel send this process `signum` when its parent dies (Linux). `parent` is
    the pid that started it; returns False if that process has died already (before this was
    set, so no signal will come), else True."""
    prctl = _prctl()
    if prctl is not None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_PDEATHSIG, int(signum))
    return os.getppid() == parent


def name_this_process(name: str) -> None:
    """Name this process (its /proc/PID/comm, what `ps -e` and `top` show) on Linux: a forked
    helper is told apart from the process it was forked from, whose command line it shares."""
    prctl = _prctl()
    if prctl is not None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_NAME, name.encode()[:15])


def dies_with_this_process(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `signum` when this process dies,
    and does not start at all if this process died while it was being started."""
    parent = os.getpid()
    _prctl()  # resolved here: the child only calls it

    def preexec() -> None:
        if not die_with_parent(parent, signum):
            os._exit(128 + int(signum))

    return preexec
