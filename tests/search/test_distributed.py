"""Workers on a real PostgreSQL and a real MLflow tracking server (`hpexp services`): started
together on a fresh database, one killed mid-trial (heartbeats re-run its trial), through
Optuna's gRPC storage proxy, and the one-line errors for stores that are not there."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpexp import check_study
from hpexp import services as svc
from hpexp.search.factories import make_storage
from hpexp.search.states import counts_against_budget, retry_of, trial_status
from tests.conftest import free_ports, listens

from .conftest import (
    HPEXP_TIMEOUT,
    hpexp_env,
    one_line,
    params_key,
    tiny,
    wait_for_writers,
    write_study,
)
from .test_workers import LONGER, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def hpexp(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def database(services: svc.Services, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh, empty database on the services' PostgreSQL: (its URL, an environment whose
    PGPASSFILE reaches it)."""
    import psycopg2

    name = "t_" + uuid.uuid4().hex[:12]
    secret = services.pgpass.read_text().splitlines()[0].split(":", 4)[4]
    pgpass = any_database_pgpass(services, tmp_path)
    conn = psycopg2.connect(
        host="127.0.0.1", port=services.pg_port, user="hpexp", dbname="hpexp", password=secret
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    env = {**hpexp_env(), "PGPASSFILE": str(pgpass)}
    yield f"postgresql://hpexp@127.0.0.1:{services.pg_port}/{name}", env
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def any_database_pgpass(services: svc.Services, where: Path) -> Path:
    """A password file (mode 600, outside the study folder) for every database there."""
    secret = services.pgpass.read_text().splitlines()[0].split(":", 4)[4]
    folder = where.parent / (where.name + "-secrets")
    folder.mkdir(exist_ok=True)
    pgpass = folder / "pgpass"
    fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"127.0.0.1:{services.pg_port}:*:hpexp:{secret}\n")
    return pgpass


def study_in(url: str, name: str, env: dict[str, str]) -> optuna.Study:
    os.environ["PGPASSFILE"] = env["PGPASSFILE"]
    return optuna.load_study(study_name=name, storage=make_storage(url))


def assert_whole(url: str, name: str, n_trials: int, env: dict[str, str], where: Path) -> None:
    """Exactly `n_trials` counted, nothing running, no configuration twice unless re-run,
    every interrupted trial re-run, and `hpexp check` (in this process) clean against the
    tracking server."""
    trials = study_in(url, name, env).get_trials(deepcopy=False)
    assert sum(counts_against_budget(t) for t in trials) == n_trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    counted = [params_key(t.params) for t in trials if counts_against_budget(t)]
    reruns = {params_key(t.params) for t in trials if retry_of(t) is not None}
    assert {k for k in counted if counted.count(k) > 1} <= reruns
    interrupted = {t.number for t in trials if trial_status(t) == "interrupted"}
    assert interrupted <= {retry_of(t) for t in trials}
    tracking = study_in(url, name, env).user_attrs["tracking_uri"]
    with contextlib.chdir(where):  # the trials' model files are in where/hpexp-models
        assert check_study(name, storage=url, tracking_uri=tracking) == []  # PGPASSFILE: study_in


def test_workers_started_together_on_a_fresh_database(
    services: svc.Services, database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = database
    name = "pg" + uuid.uuid4().hex[:8]
    path = write_study(tmp_path, tiny(name=name, budget={"n_trials": 9}))
    args = ("worker", str(path), "--storage", url, "--tracking-uri", services.tracking_uri)
    procs = [hpexp(*args, cwd=tmp_path, env=env) for _ in range(3)]
    outputs = [p.communicate(timeout=HPEXP_TIMEOUT) for p in procs]
    wait_for_writers(tmp_path)
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
        assert "stopped: the study has 9 of 9 finished trials" in out
    trials = study_in(url, name, env).get_trials(deepcopy=False)
    # every worker trained (a duplicate proposal is recorded by a worker's proposer process)
    assert len({t.user_attrs["worker"] for t in trials if counts_against_budget(t)}) == 3
    assert_whole(url, name, 9, env, tmp_path)
    assert url.split("@")[0].endswith("hpexp")  # no password in the URL, only in PGPASSFILE


def test_a_dead_worker_is_found_by_its_heartbeat_and_its_trial_re_run(
    services: svc.Services, database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = database
    name = "hb" + uuid.uuid4().hex[:8]
    path = write_study(tmp_path, dict(LONGER, name=name, budget={"n_trials": 4}))
    args = ("worker", str(path), "--storage", url, "--tracking-uri", services.tracking_uri,
            "--heartbeat", "1")  # fmt: skip
    # the victim works in another folder: to the survivor it is a worker on another host
    # (no shared lock, no pid to look at), found only by its missing heartbeats
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = hpexp(*args, cwd=elsewhere, env=env)

    def victims_trial() -> bool:
        try:
            trials = study_in(url, name, env).get_trials(deepcopy=False)
        except KeyError:
            return False
        return any(
            t.state == TrialState.RUNNING
            and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
            for t in trials
        )

    wait_until(victims_trial, limit=HPEXP_TIMEOUT, what="the victim's trial")
    time.sleep(0.3)  # Optuna creates a trial, then its first heartbeat: not in between
    victim.kill()
    victim.wait()
    killed_at = time.monotonic()
    survivor = hpexp(*args, cwd=tmp_path, env=env)
    _out, err = survivor.communicate(timeout=HPEXP_TIMEOUT)
    assert survivor.returncode == 0, err
    wait_for_writers(tmp_path)
    wait_for_writers(elsewhere)
    trials = study_in(url, name, env).get_trials(deepcopy=False)
    dead = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
            and t.state == TrialState.FAIL]  # fmt: skip
    assert len(dead) == 1 and trial_status(dead[0]) == "interrupted"
    retries = [t for t in trials if retry_of(t) == dead[0].number]
    assert len(retries) == 1 and retries[0].state.is_finished()
    assert retries[0].params == dead[0].params
    assert retries[0].datetime_start is not None
    assert time.monotonic() - killed_at < HPEXP_TIMEOUT
    assert_whole(url, name, 4, env, tmp_path)


def test_workers_through_the_grpc_storage_proxy(
    services: svc.Services, database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = database
    (port,) = free_ports(1)
    proxy = hpexp("storage-proxy", "--storage", url, "--port", str(port), cwd=tmp_path, env=env)
    try:
        grpc = f"grpc://127.0.0.1:{port}"
        # As a user would: workers are started once the proxy listens (on 2 busy cores its
        # start can take longer than the 5 s a worker waits for it).
        wait_until(lambda: proxy.poll() is not None or listens(port), limit=HPEXP_TIMEOUT,
                   what="the proxy to listen")  # fmt: skip
        assert proxy.poll() is None, proxy.communicate()[1]
        name = "rpc" + uuid.uuid4().hex[:8]
        path = write_study(tmp_path, tiny(name=name, budget={"n_trials": 6}))
        args = ("worker", str(path), "--storage", grpc, "--tracking-uri", services.tracking_uri)
        deadline = time.monotonic() + 60
        procs = [hpexp(*args, cwd=tmp_path, env=env) for _ in range(2)]
        outputs = [p.communicate(timeout=HPEXP_TIMEOUT) for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
        assert time.monotonic() < deadline + HPEXP_TIMEOUT
        wait_for_writers(tmp_path)
        assert_whole(url, name, 6, env, tmp_path)
    finally:
        proxy.send_signal(signal.SIGINT)
        _, err = proxy.communicate(timeout=30)
    assert proxy.returncode == 130, err  # stopped by Ctrl-C, as every hpexp command
    assert "Traceback" not in err and "proxy stopped" in err


@pytest.mark.parametrize(
    "storage, expected",
    [
        ("postgresql://hpexp:sekret-pw@127.0.0.1:{closed}/hpexp", "start the database"),
        ("postgresql://hpexp:sekret-pw@127.0.0.1:{pg}/hpexp", "password"),
        ("postgresql://hpexp@127.0.0.1:{pg}/no_such_db", "create the database"),
        ("grpc://127.0.0.1:{closed}", "no gRPC storage proxy answers"),
    ],
)
def test_stores_that_are_not_there_are_one_line(
    services: svc.Services, tmp_path: Path, storage: str, expected: str
) -> None:
    (closed,) = free_ports(1)
    url = storage.format(closed=closed, pg=services.pg_port)
    path = write_study(tmp_path, tiny())
    env = {k: v for k, v in hpexp_env().items() if k != "PGPASSFILE"}
    if "no_such_db" in url:
        env["PGPASSFILE"] = str(any_database_pgpass(services, tmp_path))
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hpexp", "worker", str(path), "--storage", url],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - start < 20  # 10 s to give up, plus starting Python
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert expected in line
    assert "sekret-pw" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # nothing written


def test_a_tracking_server_that_is_down_at_the_start(tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    path = write_study(tmp_path, tiny())
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hpexp", "worker", str(path),
         "--tracking-uri", f"http://127.0.0.1:{closed}"],
        cwd=tmp_path, env=hpexp_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - start < 20
    assert done.returncode == 2
    assert f"127.0.0.1:{closed}" in one_line(done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
