"""MLflow tracking stores: URIs, creating an embedded store atomically, reaching a server.

Nothing here imports MLflow at module level, so the study engine can check a tracking URI
without paying for MLflow's import.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hpexp.errors import SpecError, StoreError

__all__ = [
    "RUN_STATUS",
    "absolute_uri",
    "check_reachable",
    "check_tracking_uri",
    "ensure_store",
    "ensure_store_readable",
    "local_artifact_root",
    "quiet_mlflow",
]

#: A trial's status (`hpexp.search.states`) -> its MLflow run's status. MLflow's runs table draws
#: FINISHED as a green tick and FAILED and KILLED alike, as a red cross. A pruned trial ended as
#: the search meant it to (the pruner's decision; its partial curves and metrics are kept): a
#: tick. An interrupted trial's process was stopped (KILLED, as MLflow means it, and as the run
#: of a stopped study) and a duplicate proposal was cancelled before training (KILLED too). The
#: run's name tells them apart: `trial-0007 · pruned@100`, `trial-0003 · failed`.
RUN_STATUS = {
    "complete": "FINISHED",
    "pruned": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
    "duplicate": "KILLED",
}
SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
#: Seconds a tracking server has to answer, and how often MLflow's client retries.
HTTP_TIMEOUT = 10
HTTP_RETRIES = 1
#: Seconds a tracking server or database has to answer before a study starts.
PROBE_SECONDS = 5
DATABASES = ("postgresql", "mysql", "mssql")
CREATING = ".creating"  # the suffix of an SQLite store being built


def quiet_mlflow() -> None:
    """Settings hpexp's MLflow clients run with unless the environment already says otherwise:
    no usage telemetry, no artifact progress bars, short HTTP timeouts and few retries (so an
    unreachable server costs seconds, not minutes; libpq's PGCONNECT_TIMEOUT likewise for a
    PostgreSQL store). Set the variables yourself to override."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(HTTP_TIMEOUT))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    for name in ("alembic", "mlflow.store", "mlflow.tracking", "mlflow.pyfunc", "mlflow.models"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _sqlite_commits_without_fsync()


@functools.cache
def _sqlite_commits_without_fsync() -> None:
    """Every SQLite store this process opens commits to a write-ahead log with
    synchronous=NORMAL: no fsync per commit (an MLflow run is about ten commits), readers and a
    writer no longer block each other. A crash of the operating system may lose the last
    commits but never corrupts the file, and what MLflow holds can be rebuilt from the Optuna
    storage (`hpexp sync`). A store still being built (`ensure_store`) keeps its rollback
    journal, so that linking its one file into place is complete."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _on_connect(connection: Any, record: Any) -> None:
        if type(connection).__module__.split(".")[0] != "sqlite3":
            return
        cursor = connection.cursor()
        try:
            files = [row[2] for row in cursor.execute("PRAGMA database_list")]
            if files and files[0] and not files[0].endswith(CREATING):
                with contextlib.suppress(Exception):  # busy: the next connection switches it
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def local_artifact_root(tracking_uri: str) -> str | None:
    """Where artifacts go for an embedded store: `mlartifacts/` beside the SQLite file."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.resolve().parent / "mlartifacts").as_uri()
    return None  # a file store keeps artifacts beside its runs; a server decides


def check_tracking_uri(tracking_uri: str, source: str = "tracking") -> None:
    """Refuse a URI MLflow cannot open, before anything is created."""
    scheme = tracking_uri.split("://", 1)[0].split("+", 1)[0] if "://" in tracking_uri else ""
    if scheme and scheme not in SCHEMES:
        raise SpecError(
            f"{source}: tracking.uri: unknown scheme '{scheme}://'; use sqlite:///mlflow.db, "
            "http(s)://host:port of a tracking server, or a database URL"
        )
    if (not scheme or scheme == "file") and not _file_store_allowed():
        from hpexp.search.factories import redact_url

        path = tracking_uri.removeprefix("file://").removeprefix("file:")
        fix = (
            f"sqlite:///{path}"
            if path.endswith((".db", ".sqlite"))
            else f"sqlite:///{path.rstrip('/') or '.'}/mlflow.db (a store file in that folder)"
        )
        raise SpecError(
            f"{source}: tracking.uri: '{redact_url(tracking_uri)}' names a folder (MLflow's "
            f"file store, which MLflow no longer opens); give {fix}, or http(s)://host:port of "
            "a tracking server"
        )
    if scheme == "sqlite" and not tracking_uri.startswith("sqlite:///"):
        raise SpecError(
            f"{source}: tracking.uri: write sqlite:///relative.db or sqlite:////absolute/path.db"
        )


def absolute_uri(tracking_uri: str) -> str:
    """`sqlite:///rel/path.db` (and a bare store path) anchored at the current directory."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(tracking_uri.removeprefix("sqlite:///")).resolve())
    if "://" not in tracking_uri and not tracking_uri.startswith("file:"):
        return Path(tracking_uri).resolve().as_uri()
    return tracking_uri


def _file_store_allowed() -> bool:
    """MLflow's folder store, opened only when MLFLOW_ALLOW_FILE_STORE says so."""
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1")


def check_reachable(
    tracking_uri: str, source: str = "tracking", timeout: float = PROBE_SECONDS
) -> None:
    """A tracking server must answer its health check, a database store a login, within
    `timeout` seconds; otherwise one line naming the URL (password masked) and the fix."""
    from hpexp.search.factories import redact_url, scrub, unmask_url

    tracking_uri = unmask_url(tracking_uri)
    if tracking_uri.split("://", 1)[0].split("+", 1)[0] in DATABASES:
        _check_database(tracking_uri, source, timeout)
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(_health_request(tracking_uri), timeout=timeout) as reply:
            if reply.status == 200:
                return
            problem = f"HTTP {reply.status}"
    except urllib.error.HTTPError as e:
        problem = f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        problem = str(getattr(e, "reason", e)) or type(e).__name__
    raise SpecError(
        f"{source}: tracking.uri: the MLflow server at {redact_url(tracking_uri)} does not "
        f"answer ({scrub(problem, tracking_uri)}); start it (mlflow server --host 127.0.0.1 "
        "...) or drop --tracking-uri to use the embedded store"
    )


def _health_request(tracking_uri: str) -> urllib.request.Request:
    """GET /health of a tracking server; a user and password in the URL go as basic auth."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(tracking_uri)
    netloc = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/health"
    request = urllib.request.Request(url)
    if parts.username is not None:
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    return request


def _check_database(uri: str, source: str, timeout: float) -> None:
    """A database tracking store must accept a login within `timeout` seconds."""
    from hpexp.search.factories import connect_timeout, redact_url, scrub

    try:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        engine = sqlalchemy.create_engine(
            uri, poolclass=NullPool, connect_args=connect_timeout(uri, max(2, round(timeout)))
        )
        try:
            with engine.connect():
                return
        finally:
            engine.dispose()
    except Exception as e:
        text = str(e).strip()
        line = text.splitlines()[0][:200] if text else type(e).__name__
        problem = scrub(line.split("(Background on this error")[0].strip(), uri)
        lowered = text.lower()
    if "password" in lowered or "authentication" in lowered:
        fix = (
            "check the user and the password (in the URL, PGPASSWORD, or a password file: "
            "PGPASSFILE or ~/.pgpass)"
        )
    elif "no module named" in lowered:
        fix = "install the database driver (pip install psycopg2-binary)"
    elif "does not exist" in lowered:
        fix = "create the database (createdb) or fix its name in --tracking-uri"
    else:
        fix = (
            "start it (make services) or fix the host and port, or drop --tracking-uri to use "
            "the embedded store"
        )
    raise SpecError(
        f"{source}: tracking.uri: cannot connect to the MLflow database at {redact_url(uri)} "
        f"({problem}); {fix}"
    )


def ensure_store(tracking_uri: str) -> None:
    """Create an embedded SQLite store if it does not exist, atomically: the schema is built in
    a temporary file that is then linked into place, so an interrupted creation leaves either
    no store or a complete one, and two processes never race on the schema. A store left
    half-built by an older version is reported with the fix."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    if db.is_file():
        _check_sqlite_store(db)
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}{CREATING}")
    tmp.unlink(missing_ok=True)
    try:
        _create_sqlite_store(tmp)
        with contextlib.suppress(FileExistsError):  # another process made one first: keep it
            os.link(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_store_readable(tracking_uri: str) -> None:
    """Refuse an embedded store that exists but cannot be used, or cannot be created where it
    is asked for, before a study starts."""
    from hpexp.search.places import cannot_create

    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if db.is_file():
            _check_sqlite_store(db)
        problem = cannot_create(db)
        if problem:
            raise StoreError(
                f"tracking '{db}': cannot create the MLflow store there: {problem}; give "
                "--tracking-uri sqlite:///PATH/mlflow.db in a folder you can write to, or run "
                "from such a folder"
            )


def _create_sqlite_store(path: Path) -> None:
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)  # builds the schema


def _check_sqlite_store(db: Path) -> None:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"{db}: not a readable MLflow store ({e}); move it away and run "
            "`hpexp sync STUDY` to rebuild it from the Optuna storage"
        ) from None
    if "alembic_version" not in tables or any(t.startswith("_alembic_tmp") for t in tables):
        raise StoreError(
            f"{db}: the MLflow store was left half-created by an interrupted run; move it away "
            "and run `hpexp sync STUDY` to rebuild it from the Optuna storage"
        )
