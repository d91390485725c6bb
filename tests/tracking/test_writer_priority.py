"""The MLflow writer runs on CPU time that training leaves idle, also where Linux groups
processes by session (autogroup): there its own session's group must weigh next to nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hpexp.background import BackgroundSync
from tests.conftest import wait_until

pytestmark = [
    pytest.mark.slow,  # a subprocess that imports MLflow
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling"),
]


def test_the_writer_yields_to_training() -> None:
    writer = BackgroundSync("sqlite:///unused.db")
    try:
        assert writer.proc is not None
        pid = writer.proc.pid
        assert os.getsid(pid) != os.getsid(0)  # Ctrl-C in the terminal does not reach it
        wait_until(lambda: os.sched_getscheduler(pid) == os.SCHED_IDLE, 30, "SCHED_IDLE")
        group = Path(f"/proc/{pid}/autogroup")
        if not group.exists():
            pytest.skip("this kernel has no autogroup")
        # its session's group at nice 19: else the group would get a core's fair share
        wait_until(lambda: group.read_text().split()[-1] == "19", 30, "autogroup nice 19")
    finally:
        writer.discard()
