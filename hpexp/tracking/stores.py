"""MLflow tracking stores: URIs, creating an embedded store atomically, reaching a server.

Nothing here imports MLflow at module level, so the study engine can check a tracking URI
without paying for MLflow's import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from hpexp.errors import SpecError, StoreError

__all__ = [
    "STATUS_FOR_STATE",
    "absolute_uri",
    "check_reachable",
    "check_tracking_uri",
    "ensure_store",
    "ensure_store_readable",
    "local_artifact_root",
    "quiet_mlflow",
]

#: Optuna trial state -> MLflow run status.
STATUS_FOR_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
#: Seconds a tracking server has to answer, and how often MLflow's client retries.
HTTP_TIMEOUT = 10
HTTP_RETRIES = 1


def quiet_mlflow() -> None:
    """Settings hpexp's MLflow clients run with unless the environment already says otherwise:
    no usage telemetry, no artifact progress bars, short HTTP timeouts and few retries (so an
    unreachable server costs seconds, not minutes). Set the variables yourself to override."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    for name in ("alembic", "mlflow.store", "mlflow.tracking", "mlflow.pyfunc", "mlflow.models"):
        logging.getLogger(name).setLevel(logging.WARNING)


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
            "a folder path, http(s)://host:port of a tracking server, or a database URL"
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


def check_reachable(tracking_uri: str, source: str = "tracking", timeout: float = 5.0) -> None:
    """A tracking server must answer its health check within `timeout` seconds."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    from hpexp.search.factories import redact_url

    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            if reply.status == 200:
                return
            problem = f"HTTP {reply.status}"
    except urllib.error.HTTPError as e:
        problem = f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        problem = str(getattr(e, "reason", e)) or type(e).__name__
    raise SpecError(
        f"{source}: tracking.uri: the MLflow server at {redact_url(tracking_uri)} does not "
        f"answer ({problem}); start it (mlflow server --host 127.0.0.1 ...) or drop "
        "--tracking-uri to use the embedded store"
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
    tmp = db.with_name(f".{db.name}.{os.getpid()}.creating")
    tmp.unlink(missing_ok=True)
    try:
        _create_sqlite_store(tmp)
        with contextlib.suppress(FileExistsError):  # another process made one first: keep it
            os.link(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_store_readable(tracking_uri: str) -> None:
    """Refuse an embedded store that exists but cannot be used, before a study starts."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if db.is_file():
            _check_sqlite_store(db)


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
