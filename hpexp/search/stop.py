"""Stopping a study cleanly: a signal is honoured at safe points, never inside a storage write.

A signal handler that raised KeyboardInterrupt wherever it landed could cut Optuna in the middle
of a journal write or lock release (recorded as the trial's own error), or between creating a
trial and tagging it (a trial RUNNING for ever). Instead the handler calls `request()`: inside
`interruptible()` (training, waiting) that raises at once; elsewhere it is remembered and raised
at the next `check()` or the next `interruptible()` block. A third request raises wherever it
lands, for a process stuck in a write.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["Stop", "StopRequest", "signals_request"]


class Stop(KeyboardInterrupt):
    """The study was asked to stop (Ctrl-C, SIGTERM); `signum` says by which signal."""

    def __init__(self, signum: int = 2) -> None:
        super().__init__(signum)
        self.signum = signum


class StopRequest:
    """Set by signal handlers; raised as `Stop` only where it is safe."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._safe = False

    def request(self, signum: int = 2) -> None:
        self.signum = self.signum or signum
        self.count += 1
        if self._safe or self.count >= 3:
            raise Stop(self.signum)

    def check(self) -> None:
        """Raise `Stop` if a stop was requested."""
        if self.signum is not None:
            raise Stop(self.signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block a stop may cut anywhere (no storage writes inside, or shielded ones)."""
        previous, self._safe = self._safe, True
        try:
            self.check()
            yield
        finally:
            self._safe = previous

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A block a stop must not cut (a storage write); the stop is raised after it."""
        previous, self._safe = self._safe, False
        try:
            yield
        finally:
            self._safe = previous
        if previous:
            self.check()


@contextlib.contextmanager
def signals_request(stop: StopRequest) -> Iterator[None]:
    """While a study runs, SIGINT and SIGTERM ask it to stop (even where the parent process
    started us with SIGINT ignored); the request is honoured at a safe point, so Ctrl-C and
    `kill` leave a resumable study and never a half-written record."""

    def handler(signum: int, frame: object) -> None:
        stop.request(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
