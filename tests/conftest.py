"""Fixtures and helpers shared across the test packages."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import hpexp
import hpexp.services
from hpexp.data import Dataset
from hpexp.errors import ServiceError
from hpexp.nn.io import ModelMetadata
from hpexp.nn.losses import OUTPUT_FOR_TASK

_EMPTY_STORE: Path | None = None


def _built_empty_store() -> Path:
    """An empty, fully migrated MLflow SQLite store, built once per test run: the xdist
    workers of one run share it (the first builds it under a lock, the others wait for it);
    without xdist, once per process."""
    import fcntl

    from hpexp.tracking.stores import ensure_store

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        folder = Path(tempfile.mkdtemp(prefix="hpexp-empty-store-"))
    else:
        folder = Path(tempfile.gettempdir()) / f"hpexp-empty-store-{run_id}"
        folder.mkdir(exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_store(f"sqlite:///{folder / 'mlflow.db'}")  # atomic: no half-built store
    return folder / "mlflow.db"


def empty_mlflow_store(dest: Path) -> Path:
    """Put an empty, fully migrated MLflow SQLite store at `dest/mlflow.db`.

    Building the schema takes seconds (10-20 on a busy machine); it is built once per test
    run and copied. Tests that exercise store creation itself must not use this."""
    global _EMPTY_STORE
    if _EMPTY_STORE is None or not _EMPTY_STORE.is_file():
        _EMPTY_STORE = _built_empty_store()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_EMPTY_STORE, dest / "mlflow.db")
    return dest / "mlflow.db"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: the embedded stores (optuna.journal, mlflow.db) land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def studydir(workdir: Path) -> Path:
    """`workdir` with an empty MLflow store already built there, for tests that run studies."""
    empty_mlflow_store(workdir)
    return workdir


def trained(name: str) -> tuple[Dataset, hpexp.MLP]:
    """A small model trained briefly on a built-in dataset, with the metadata a study saves."""
    ds = hpexp.load_dataset(name)
    output = OUTPUT_FOR_TASK[ds.task]
    model = hpexp.MLP([ds.n_x, 8, ds.n_y], activation="tanh", output=output, seed=1)
    hpexp.train(model, ds.X_train, ds.Y_train, learning_rate=0.1, iterations=200, optimizer="adam")
    model.metadata = ModelMetadata.of_dataset(ds, params={"learning_rate": 0.1}).to_dict()
    return ds, model


def raw_rows(ds: Dataset, index: bool = True) -> pd.DataFrame:
    """The validation split as a user would hold it: raw units, one row per sample."""
    raw = ds.X_val * ds.x_std + ds.x_mean  # undo the standardization: (n_x, m)
    labels = pd.Index([f"s{k}" for k in range(ds.m_val)], name="sample") if index else None
    return pd.DataFrame(raw.T, columns=list(ds.feature_names), index=labels)


def free_ports(n: int) -> list[int]:
    """`n` different ports on 127.0.0.1 that are free now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def listens(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` now."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], object], limit: float = 120.0, what: str = "") -> None:
    """Poll `condition` every 0.1 s until it is true; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"waited {limit} s for {what}"
        time.sleep(0.1)


def require_postgres() -> None:
    """Skip unless PostgreSQL's server programs are installed; under HPEXP_REQUIRE_POSTGRES=1
    (as in CI) fail instead."""
    try:
        hpexp.services.find_postgres()
    except ServiceError as e:
        if os.environ.get("HPEXP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{e}; HPEXP_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hpexp.services.Services]:
    """PostgreSQL and an MLflow server from `hpexp.services.up` under a temporary folder, on
    free ports: one pair per test process (each xdist worker its own), deleted at the end of
    the session. Meanwhile PGPASSFILE points at its password file, so `storage_url` works."""
    require_postgres()
    root = tmp_path_factory.mktemp("services") / "hpexp-services"
    pg_port, mlflow_port = free_ports(2)
    with pytest.MonkeyPatch.context() as patch:
        try:
            started = hpexp.services.up(root, pg_port=pg_port, mlflow_port=mlflow_port)
            patch.setenv("PGPASSFILE", str(started.pgpass))
            yield started
        finally:
            hpexp.services.down(root, delete_data=True)


#: Tests that share what one process builds once (the `services` servers, a module's study) run
#: in one xdist worker under `--dist loadgroup` (pyproject's addopts), so it is built once.
SERVICES_GROUP = "services"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "services" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(SERVICES_GROUP))
