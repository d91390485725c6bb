"""`hpexp services`: real PostgreSQL and a real MLflow server on 127.0.0.1, started, found running,
stopped and started again; the password stays in `pgpass`; a missing PostgreSQL or a busy port
is one line.

Tests that start servers share the session's `services` fixture (tests/conftest.py); they need
Debian's postgresql and are skipped without it, unless HPEXP_REQUIRE_POSTGRES=1 (as in CI).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from hpexp import services as svc
from hpexp.cli import main
from tests.conftest import free_ports, require_postgres

optuna.logging.set_verbosity(optuna.logging.WARNING)


def hpexp_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`hpexp ARGS` in a fresh process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "hpexp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def password(pgpass: Path) -> str:
    return pgpass.read_text().splitlines()[0].split(":", 4)[4]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# -- with servers ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_up_serves_an_optuna_storage_and_mlflow(services: svc.Services, tmp_path: Path) -> None:
    state = svc.status(services.root)
    assert state["postgres"].healthy and state["mlflow"].healthy, state
    assert services.storage_url == f"postgresql://hpexp@127.0.0.1:{services.pg_port}/hpexp"
    assert services.tracking_uri == f"http://127.0.0.1:{services.mlflow_port}"

    name = f"svc-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=services.storage_url)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
    loaded = optuna.load_study(study_name=name, storage=services.storage_url)
    assert len(loaded.trials) == 3

    client = MlflowClient(tracking_uri=services.tracking_uri)
    run = client.create_run(client.create_experiment(name))
    client.log_param(run.info.run_id, "learning_rate", 0.01)
    client.log_metric(run.info.run_id, "val_loss", 0.25)
    (tmp_path / "notes.txt").write_text("an artifact")
    client.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"))
    client.set_terminated(run.info.run_id)

    got = client.get_run(run.info.run_id)
    assert got.data.params == {"learning_rate": "0.01"}
    assert got.data.metrics == {"val_loss": 0.25}
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["notes.txt"]
    stored = list((services.root / "mlartifacts").rglob("notes.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "an artifact"


@pytest.mark.slow
@pytest.mark.postgres
def test_up_again_reports_the_running_servers(services: svc.Services) -> None:
    before = svc.status(services.root)
    again = svc.up(services.root, *free_ports(2))  # other ports: ignored, both run
    assert again == services
    after = svc.status(services.root)
    assert [s.pid for s in after.values()] == [s.pid for s in before.values()]

    out = hpexp_cli("services", "up", "--root", str(services.root))
    assert out.returncode == 0, out.stderr
    assert f"--storage {services.storage_url} --tracking-uri {services.tracking_uri}" in out.stdout
    assert f"export PGPASSFILE={services.pgpass}" in out.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_the_password_lives_only_in_pgpass(services: svc.Services) -> None:
    import psycopg

    pgpass = services.pgpass
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    secret = password(pgpass)
    assert len(secret) >= 24
    port = services.pg_port
    assert pgpass.read_text().splitlines() == [
        f"127.0.0.1:{port}:hpexp:hpexp:{secret}",
        f"127.0.0.1:{port}:mlflow:hpexp:{secret}",
    ]

    shown = [hpexp_cli("services", verb, "--root", str(services.root)) for verb in ("up", "status")]
    assert all(out.returncode == 0 for out in shown), [out.stderr for out in shown]
    assert "healthy" in shown[1].stdout and "NOT" not in shown[1].stdout
    logs = [services.root / "mlflow.log", services.root / "postgres" / "postgres.log"]
    ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, timeout=60)
    assert "-m mlflow server" in ps.stdout and f"-p {port}" in ps.stdout  # both servers listed
    for text in [*(o.stdout + o.stderr for o in shown), *(p.read_text() for p in logs), ps.stdout]:
        assert secret not in text

    # scram-sha-256 over TCP: the password from pgpass logs in, another one does not
    with psycopg.connect(services.storage_url, passfile=str(pgpass)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("hpexp",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(services.storage_url, password="not-" + secret, connect_timeout=10)


@pytest.mark.slow
@pytest.mark.postgres
def test_down_stops_both_and_keeps_the_data(services: svc.Services) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=services.storage_url).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    experiment = MlflowClient(tracking_uri=services.tracking_uri).create_experiment(name)
    try:
        out = hpexp_cli("services", "down", "--root", str(services.root))
        assert out.returncode == 0, out.stderr
        state = svc.status(services.root)
        assert not state["postgres"].running and not state["mlflow"].running
        assert "stopped" in hpexp_cli("services", "status", "--root", str(services.root)).stdout
    finally:
        again = svc.up(services.root, services.pg_port, services.mlflow_port)
    assert again == services
    assert len(optuna.load_study(study_name=name, storage=services.storage_url).trials) == 1
    client = MlflowClient(tracking_uri=services.tracking_uri)
    assert client.get_experiment_by_name(name).experiment_id == experiment


# -- without servers -------------------------------------------------------------------------


def test_missing_postgres_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(svc, "PG_DIRS", str(tmp_path / "nowhere" / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["services", "up", "--root", str(tmp_path / "svc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hpexp: error: ")
    assert "sudo apt-get install postgresql" in err
    assert not (tmp_path / "svc").exists()  # nothing made


@pytest.mark.postgres
@pytest.mark.parametrize("option", ["--pg-port", "--mlflow-port"])
def test_busy_port_is_one_line(
    option: str, listening: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    root = tmp_path / "svc"
    pg_port, mlflow_port = free_ports(2)
    ports = {"--pg-port": pg_port, "--mlflow-port": mlflow_port, option: listening}
    args = [str(a) for pair in ports.items() for a in pair]
    assert main(["services", "up", "--root", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"port {listening} on 127.0.0.1 is already in use" in err
    assert f"hpexp services up {option} {listening + 1}" in err
    assert not (root / "postgres").exists() and not (root / "pgpass").exists()  # nothing started


def test_use_local_pgpass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    svc.use_local_pgpass()
    assert "PGPASSFILE" not in os.environ  # no file, nothing set
    (tmp_path / "hpexp-services").mkdir()
    (tmp_path / "hpexp-services" / "pgpass").touch(mode=0o600)
    svc.use_local_pgpass()
    assert os.environ["PGPASSFILE"] == str(tmp_path / "hpexp-services" / "pgpass")
    monkeypatch.setenv("PGPASSFILE", "/elsewhere")
    svc.use_local_pgpass()
    assert os.environ["PGPASSFILE"] == "/elsewhere"  # the user's own stays
