"""The MLflow writer runs on CPU time that training leaves idle, also where Linux groups
processes by session (autogroup): there its own session's group must weigh next to nothing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from hpexp.background import BackgroundSync

pytestmark = [
    pytest.mark.slow,  # a subprocess that imports MLflow
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling"),
]


def _when(condition, limit: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_writer_yields_to_training() -> None:
    writer = BackgroundSync("sqlite:///unused.db")
    try:
        assert writer.proc is not None
        pid = writer.proc.pid
        assert os.getsid(pid) != os.getsid(0)  # Ctrl-C in the terminal does not reach it
        assert _when(lambda: os.sched_getscheduler(pid) == os.SCHED_IDLE)
        group = Path(f"/proc/{pid}/autogroup")
        if not group.exists():
            pytest.skip("this kernel has no autogroup")
        # its session's group at nice 19: else the group would get a core's fair share
        assert _when(lambda: group.read_text().split()[-1] == "19"), group.read_text()
    finally:
        writer.discard()
