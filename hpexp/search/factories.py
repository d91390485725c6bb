"""Optuna samplers, pruners and storages from the names and options in a study file."""

from __future__ import annotations

import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hpexp.errors import SpecError
from hpexp.registry import lookup

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "StaleTrials",
    "connect_timeout",
    "constructor",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "models_root",
    "redact_url",
    "scrub",
    "stream_seed",
    "unmask_url",
]


#: The samplers and pruners a study file names, and the Optuna class behind each; a study
#: file's options for them are that class's keyword arguments.
SAMPLERS: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}
PRUNERS: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}


def constructor(kind: str, name: object, field: str = "") -> Any:
    """The Optuna class behind sampler/pruner `name` (`kind` is "sampler" or "pruner"); an
    unknown name raises SpecError, after "{field}: " when given."""
    registry = SAMPLERS if kind == "sampler" else PRUNERS
    return lookup(registry, name, kind, field, error=SpecError)


#: Samplers that keep their place in the study itself (grid points visited, the QMC sequence's
#: index): they continue correctly with the study's own seed and must keep it.
SELF_PLACING = ("grid", "qmc")


def stream_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for sampler stream `stream` of a study seeded with `seed`."""
    if not stream:
        return seed
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def make_sampler(
    options: dict[str, Any],
    seed: int,
    grid: dict[str, list] | None = None,
    stream: tuple[int, ...] = (),
) -> optuna.samplers.BaseSampler:
    """A seeded sampler; `grid` is the search space the grid sampler enumerates.

    `stream` picks a distinct random stream (e.g. (trials already in the study, pid)) so a
    resumed study or a second process never replays the proposals of the first; a fresh study
    (no stream) uses the study's seed as it is, so it proposes the same sequence every time.
    """
    options = dict(options)
    name = options.pop("name")
    base = options.pop("seed", seed)
    options["seed"] = base if name in SELF_PLACING else stream_seed(base, *stream)
    if name == "grid":
        return _GridSampler(grid or {}, **options)
    if name == "tpe":
        options.setdefault("multivariate", True)
        options.setdefault("group", True)  # conditional spaces: per-layer units exist by depth
    if name == "cmaes":
        options.setdefault("warn_independent_sampling", False)
    if name == "qmc":
        options.setdefault("warn_independent_sampling", False)
    return constructor("sampler", name)(**options)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, except that it does not stop the study after the last point of
    the grid: `Study.stop` works only inside `Study.optimize`, and hpexp asks and tells. The
    study's budget ends it, or its duplicate proposals once the grid is exhausted."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def make_pruner(options: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner by name; median waits for 5 finished trials before it prunes."""
    options = dict(options)
    name = options.pop("name")
    return constructor("pruner", name)(**options)


#: Seconds between a worker's heartbeats on a database storage; a worker silent for
#: GRACE_BEATS heartbeats is taken for dead and its trial is re-queued by the others.
HEARTBEAT_SECONDS = 10
GRACE_BEATS = 3
#: How many times a trial whose worker died is re-run before it is left failed.
MAX_RETRIES = 2
#: Seconds to wait for a database or gRPC proxy to answer before giving up.
CONNECT_SECONDS = 5


def storage_kind(url: str) -> str:
    """ "journal" for a path (the embedded default), "grpc" for Optuna's storage proxy,
    "rdb" for a database URL."""
    if url.startswith("grpc://"):
        return "grpc"
    if "://" in url:
        return "rdb"
    return "journal"


def make_storage(url: str, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """Optuna storage for a database URL (sqlite:///, postgresql://, mysql://), a gRPC
    storage proxy (grpc://host:port) or a journal file path (the embedded default; safe for
    several worker processes on one host).

    On a database, workers send a heartbeat every `heartbeat` seconds (default
    HEARTBEAT_SECONDS); a trial whose worker stayed silent for GRACE_BEATS of them is failed by
    the next worker that asks for a trial and re-queued with the same parameters
    (RetryFailedTrialCallback, named RetryHeartbeatStaleTrialCallback since Optuna 5).
    Several processes opening a fresh database at once do not race
    on creating its tables.
    """
    kind = storage_kind(url)
    if kind == "rdb":
        return _database(url, heartbeat or HEARTBEAT_SECONDS)
    if kind == "grpc":
        return _grpc_proxy(url)
    from hpexp.search.journal import repair_journal
    from hpexp.search.journal_file import TrialSyncedJournal

    path = Path(url.removeprefix("journal:")).resolve()  # a study object outlives a chdir
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(
            f"storage '{path}': cannot create its folder ({e.strerror or e}); give --storage "
            "a path in a folder you can write to"
        ) from None
    warning = repair_journal(path)
    if warning:
        print(f"hpexp: warning: {warning}", file=sys.stderr)
    return optuna.storages.JournalStorage(TrialSyncedJournal(str(path)))


def _database(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    import optuna.storages as storages

    # RetryFailedTrialCallback, renamed RetryHeartbeatStaleTrialCallback in Optuna 5
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
    retry = retry or storages.RetryFailedTrialCallback

    shown, url = redact_url(url), unmask_url(url)
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if connect_timeout(url, CONNECT_SECONDS):
        engine["connect_args"] = connect_timeout(url, CONNECT_SECONDS)
    elif url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": 60}  # writers queue instead of "database is locked"
    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=heartbeat * GRACE_BEATS,
                    heartbeat_stale_trial_callback=StaleTrials(retry(max_retry=MAX_RETRIES)),
                )
        except Exception as e:  # bad driver, unreachable server, wrong password, bad URL
            if attempt < 5 and _schema_race(e):  # another worker is creating the tables
                time.sleep(0.2 + random.random() * (attempt + 1))
                continue
            raise SpecError(
                f"storage '{shown}': cannot open it ({scrub(_first_line(e), url)}); "
                + _storage_fix(url, e)
            ) from None
    raise AssertionError("unreachable")


def connect_timeout(url: str, seconds: int) -> dict[str, Any]:
    """SQLAlchemy `connect_args` that bound a database driver's connect to `seconds` ({} for
    a driver hpexp does not know to take one)."""
    scheme = url.split("://", 1)[0]
    if scheme.startswith("postgresql") or scheme in ("mysql", "mysql+pymysql", "mysql+mysqldb"):
        return {"connect_timeout": seconds}
    return {}


class StaleTrials:
    """Optuna's re-queueing of a trial whose worker stopped sending heartbeats; remembers the
    trials this process failed (`take()`), so that it write their MLflow runs."""

    def __init__(self, requeue: Any) -> None:
        self.requeue = requeue
        self.failed: list[int] = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.requeue(study, trial)
        self.failed.append(trial._trial_id)

    def take(self) -> list[int]:
        """Trial ids failed here since the last call."""
        taken, self.failed = self.failed, []
        return taken


def _schema_race(e: Exception) -> bool:
    text = str(e)
    return any(
        s in text
        for s in ("already exists", "duplicate key", "UniqueViolation", "database is locked")
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0][:200] if text else ""
    if "(Background on this error" in line:
        line = line.split("(Background on this error")[0].strip()
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def _storage_fix(url: str, e: Exception) -> str:
    text = str(e).lower()
    if "password" in text:
        return (
            "check the user and password (a libpq password file: PGPASSFILE, which "
            "`make services` writes)"
        )
    if "does not exist" in text and "database" in text:
        return "create the database (createdb) or fix the name in --storage"
    if "no module named" in text:
        return "install the database driver (pip install psycopg2-binary)"
    if "connect" in text or "timeout" in text or "refused" in text:
        return "start the database (make services) or fix the host and port in --storage"
    return "check --storage (sqlite:///path.db, postgresql://user@host:port/db, grpc://host:port)"


def _grpc_proxy(url: str) -> optuna.storages.BaseStorage:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise SpecError(f"storage '{redact_url(url)}': write grpc://HOST:PORT")
    try:
        from optuna.storages import GrpcStorageProxy
    except ImportError:
        raise SpecError("the gRPC storage proxy needs grpcio: pip install grpcio") from None
    proxy = GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=CONNECT_SECONDS)
    except ConnectionError:
        proxy.close()
        raise SpecError(
            f"storage '{redact_url(url)}': no gRPC storage proxy answers within "
            f"{CONNECT_SECONDS} s; start one (hpexp storage-proxy --storage postgresql://... "
            f"--port {port}) or fix --storage"
        ) from None
    return proxy


def models_root(url: str) -> Path:
    """Where trial networks are kept: `hpexp-models/` beside the journal or SQLite file, or in
    the current folder for a database server."""
    if storage_kind(url) == "journal":
        return Path(url.removeprefix("journal:")).resolve().parent / "hpexp-models"
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent / "hpexp-models"
    return Path.cwd() / "hpexp-models"


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, safe to print or log."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


#: What a password is replaced by wherever a URL is shown or stored.
MASK = "***"


def unmask_url(url: str) -> str:
    """`url` as stored or shown (password masked) made usable again: a masked password is
    dropped, so that the driver reads it from its own sources (for PostgreSQL, libpq's
    PGPASSWORD, then the password file PGPASSFILE or ~/.pgpass; for an MLflow server,
    MLFLOW_TRACKING_PASSWORD). Any other URL is returned as it is."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password != MASK:
        return url
    netloc = parts.netloc.replace(f":{MASK}@", "@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(text: str, *urls: str) -> str:
    """`text` (an error message, a log line) with the password of each of `urls` masked
    wherever it appears, as written in the URL or decoded."""
    from urllib.parse import unquote, urlsplit

    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if not password or password == MASK:
            continue
        for form in {password, unquote(password)}:
            text = text.replace(form, MASK)
    return text
