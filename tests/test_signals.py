"""Signals stop hpexp's long-running commands cleanly, with the conventional exit code 128 + the
signal's number (Ctrl-C 130, SIGTERM 143): `hpexp run` (one process or a pool of workers) and
`hpexp worker` stop at a safe point and resume with the same command; `hpexp ui` takes the MLflow
server it started (its whole process group: the server and its web server) down with it, even
when it is killed with SIGKILL. Real processes, each in a session of its own, as a service
manager or `kill` would stop them. A pool of workers stopped by either signal:
tests/search/test_workers.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpexp.search.states import counts_against_budget

from .conftest import empty_mlflow_store, free_ports, listens
from .search.conftest import (
    HPEXP_TIMEOUT,
    hpexp_env,
    journal_study,
    kill_writers,
    tiny,
    wait_for_writers,
    write_study,
)

RESUME = "run the same command again to resume"
N_TRIALS = 8
#: Short trials (iris, a few hundred updates each): eight of them still run for a second or more
#: after the first one started training, time enough to be stopped in the middle.
BUDGET = ("--n-trials", str(N_TRIALS), "--set", "search.iterations={int: [300, 600]}")
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


@contextlib.contextmanager
def started(*args: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`python -m hpexp ARGS` in a session of its own; whatever is left of it (its process
    group, its background MLflow writer) is killed on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env=hpexp_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.communicate()
        kill_writers(cwd)


def wait_until(proc: subprocess.Popen[str], ready, what: str, limit: float = HPEXP_TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"it ended (exit code {proc.returncode}) before {what}:\n{out}{err}")
        assert time.monotonic() < deadline, f"no {what} within {limit} s"
        time.sleep(0.05)


def training(where: Path) -> bool:
    """Whether a trial has reported a learning-curve point to the journal (it is training)."""
    try:
        data = (where / "optuna.journal").read_bytes()
    except FileNotFoundError:
        return False
    return b'"op_code":7' in data or b'"op_code": 7' in data


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[str, str]:
    proc.send_signal(sig)
    return proc.communicate(timeout=HPEXP_TIMEOUT)


def assert_stopped(proc: subprocess.Popen[str], out: str, err: str, sig: int) -> None:
    """128 + the signal's number, the resume hint once, no traceback."""
    assert proc.returncode == EXIT[sig], f"exit code {proc.returncode}:\n{out}{err}"
    assert out.count(RESUME) == 1, out + err
    assert "Traceback" not in out + err


def assert_completes(where: Path, *args: str) -> None:
    """The same command again finishes the study: the whole budget, nothing left running (in
    the Optuna storage; its MLflow writer, still adding plots, is not waited for)."""
    wait_for_writers(where)
    try:
        again = subprocess.run(
            [sys.executable, "-m", "hpexp", *args],
            cwd=where,
            env=hpexp_env(),
            capture_output=True,
            text=True,
            timeout=HPEXP_TIMEOUT,
        )
    finally:
        kill_writers(where)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    trials = journal_study(where, "signals").get_trials(deepcopy=False)
    assert sum(counts_against_budget(t) for t in trials) == N_TRIALS
    assert [t.number for t in trials if t.state.name == "RUNNING"] == []


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A short iris study and an empty MLflow store in `tmp_path`."""
    write_study(tmp_path, tiny(name="signals"))
    empty_mlflow_store(tmp_path)
    return tmp_path


# -- hpexp run, hpexp worker (a pool of workers: tests/search/test_workers.py) -----------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_run_stopped_by_a_signal_exits_128_plus_it_and_resumes(study: Path, sig: int) -> None:
    args = ("run", "study.yaml", *BUDGET, "--no-progress")
    with started(*args, cwd=study) as proc:
        wait_until(proc, lambda: training(study), "a trial training")
        out, err = stop(proc, sig)
    assert_stopped(proc, out, err, sig)
    assert_completes(study, *args)


@pytest.mark.slow
def test_a_worker_stopped_by_sigterm_exits_143_and_resumes(study: Path) -> None:
    args = ("worker", "study.yaml", *BUDGET)
    with started(*args, cwd=study) as proc:
        wait_until(proc, lambda: training(study), "a trial training")
        out, err = stop(proc, signal.SIGTERM)
    assert_stopped(proc, out, err, signal.SIGTERM)
    assert_completes(study, *args)


# -- hpexp ui ------------------------------------------------------------------------------------

#: Seconds the MLflow server may take to answer, and its processes to be gone once stopped.
UI_START_S = 120.0
UI_GONE_S = 20.0


def processes() -> dict[int, tuple[int, int, str]]:
    """Every live process: pid -> (parent pid, process group, state); zombies left out."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return found


def group_of(pgid: int) -> list[int]:
    return [pid for pid, (_, group, _) in processes().items() if group == pgid]


def answers(port: int) -> bool:
    """Whether the MLflow server on 127.0.0.1:`port` answers HTTP."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def ui_running(where: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """`hpexp ui` on a free port, once its server answers: (its process, the port, the server's
    process group). The group is killed on the way out, whatever the test did."""
    empty_mlflow_store(where)
    (port,) = free_ports(1)
    args = ("ui", "--port", str(port), "--tracking-uri", f"sqlite:///{where}/mlflow.db")
    pgid = 0
    with started(*args, cwd=where) as proc:
        try:
            wait_until(proc, lambda: answers(port), f"an answer on port {port}", UI_START_S)
            servers = [pid for pid, (ppid, _, _) in processes().items() if ppid == proc.pid]
            assert len(servers) == 1, servers
            pgid = processes()[servers[0]][1]
            assert pgid != os.getpgid(proc.pid), "the server shares hpexp ui's process group"
            assert len(group_of(pgid)) >= 2, "no web server beside the MLflow server"
            yield proc, port, pgid
        finally:
            if pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)


def assert_gone(port: int, pgid: int) -> None:
    """Within UI_GONE_S: no process of the server's group left, nothing listening on `port`."""
    deadline = time.monotonic() + UI_GONE_S
    while group_of(pgid) or listens(port):
        assert time.monotonic() < deadline, (
            f"after {UI_GONE_S} s: processes {group_of(pgid)} of the server's group are left, "
            f"port {port} {'listens' if listens(port) else 'is free'}"
        )
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["sigterm", "sigint", "sighup"]
)
def test_ui_stopped_by_a_signal_takes_its_server_down(tmp_path: Path, sig: int) -> None:
    with ui_running(tmp_path) as (proc, port, pgid):
        proc.send_signal(sig)
        # the server shares hpexp ui's stdout: the end of it means the whole group is gone
        out, err = proc.communicate(timeout=UI_GONE_S + 10)
        assert proc.returncode == EXIT[sig], f"exit code {proc.returncode}:\n{out}{err}"
        assert "Traceback" not in out + err
        assert "hpexp: error" not in err
        assert_gone(port, pgid)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
def test_ui_killed_takes_its_server_down(tmp_path: Path) -> None:
    with ui_running(tmp_path) as (proc, port, pgid):
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert_gone(port, pgid)
