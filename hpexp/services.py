"""Local servers for scaling out: PostgreSQL (Optuna storage) and an MLflow tracking server.

    hpexp services up       # PostgreSQL on 127.0.0.1:5433, MLflow on http://127.0.0.1:5001
    hpexp services status
    hpexp services down     # stops both; the data stays

Everything lives in one folder, `root` (default ./hpexp-services):

    postgres/data/          the PostgreSQL cluster (databases `hpexp` and `mlflow`, role `hpexp`)
    postgres/postgres.log   its log
    mlflow.log, mlflow.pid  the MLflow server's output and process id
    mlartifacts/            the artifacts the MLflow server stores
    pgpass                  the generated password, in libpq's format, mode 600: the only place
                            it is written. Clients find it through PGPASSFILE; URLs carry none.

Both servers listen on 127.0.0.1 only; PostgreSQL takes TCP with scram-sha-256 and has no Unix
socket. initdb refuses to run as root, so as root PostgreSQL runs as Debian's unprivileged
`postgres` user, and its cluster folder lives in that user's home (~postgres/hpexp/NAME-DIGEST,
with `root/postgres` a symlink to it): folders such as /root or pytest's /tmp/pytest-of-root are
closed to other users, and opening them up would change permissions that others reset.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hpexp.errors import ServiceError

__all__ = [
    "ServiceState",
    "Services",
    "down",
    "find_postgres",
    "status",
    "up",
    "use_local_pgpass",
]

PG_PORT = 5433
MLFLOW_PORT = 5001
HOST = "127.0.0.1"
ROLE = "hpexp"  # owns both databases; the URLs name it, the password stays in pgpass
DATABASES = ("hpexp", "mlflow")  # Optuna storage, MLflow backend store
PG_DIRS = "/usr/lib/postgresql/*/bin"  # Debian's server programs, one folder per major version
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")
PG_ACCOUNT = "postgres"  # the unprivileged user PostgreSQL runs as when hpexp runs as root
INSTALL = "sudo apt-get install postgresql (Debian/Ubuntu)"
PG_START_S = 30  # pg_ctl -t
MLFLOW_START_S = 90  # the first start creates MLflow's tables, slowly on a busy machine
STOP_S = 15  # SIGTERM, then SIGKILL
LOCK_S = 180  # another `up` on the same folder may be waiting for its servers
DIRNAME = "hpexp-services"
GITIGNORE = "# made by hpexp services: data, logs and the password\n*\n"


@dataclass(frozen=True)
class Services:
    """Running servers and the values clients need (no password: libpq reads `pgpass`)."""

    root: Path
    pg_version: str
    pg_port: int
    mlflow_port: int
    storage_url: str  # Optuna storage: postgresql://hpexp@127.0.0.1:5433/hpexp
    tracking_uri: str  # MLflow: http://127.0.0.1:5001
    pgpass: Path  # export PGPASSFILE=... for any client


@dataclass(frozen=True)
class ServiceState:
    """One server as `status` sees it."""

    name: str  # "postgres" or "mlflow"
    running: bool
    healthy: bool  # answers: a login to database hpexp, or GET /health
    port: int | None
    pid: int | None
    url: str | None
    log: Path


def up(
    root: Path | str | None = None, pg_port: int = PG_PORT, mlflow_port: int = MLFLOW_PORT
) -> Services:
    """Start PostgreSQL and the MLflow server under `root`, or find them running (then the ports
    asked for are ignored). The first call creates the cluster, the password and `pgpass`."""
    root = _root(root)
    _check_ports(pg_port, mlflow_port)
    bins = find_postgres()
    account = _account()
    if not root.exists():
        root.mkdir(parents=True)
        (root / ".gitignore").write_text(GITIGNORE)  # never commit the password by mistake
    with _locked(root):
        version = _read(root / "postgres" / "data" / "PG_VERSION")
        if version:
            bins = find_postgres(version)
            _check_pgpass(root)
        running_pg = _pg_running(root / "postgres" / "data")
        mlflow_pid = _mlflow_pid(root)
        if running_pg is None:
            _check_port(pg_port, "--pg-port")
        if mlflow_pid is None:
            _check_port(mlflow_port, "--mlflow-port")
        port = running_pg[1] if running_pg else pg_port
        version = _postgres_up(root, bins, account, port, version, running=running_pg is not None)
        web_port = _mlflow_up(root, port, mlflow_port, mlflow_pid)
        return _services(root, version, port, web_port)


def _check_ports(pg_port: int, mlflow_port: int) -> None:
    for port, option in ((pg_port, "--pg-port"), (mlflow_port, "--mlflow-port")):
        if not 0 < port < 65536:
            raise ServiceError(f"{option} {port} is not a port; choose one in 1024-65535")
    if pg_port == mlflow_port:
        raise ServiceError(
            f"PostgreSQL and MLflow cannot share port {pg_port}; change --mlflow-port"
        )


def _check_pgpass(root: Path) -> None:
    """An existing cluster needs its password file."""
    if not (root / "pgpass").is_file():
        raise ServiceError(
            f"the password file {root / 'pgpass'} is missing, and the cluster in "
            f"{_shown(root / 'postgres')} needs it; restore the file, or delete that "
            "folder to start afresh (its data is lost)"
        )


def _postgres_up(
    root: Path,
    bins: Path,
    account: pwd.struct_passwd | None,
    port: int,
    version: str,
    *,
    running: bool,
) -> str:
    """Create the cluster (first call: with a new password) and start it on `port` unless it
    is `running` there; then make sure pgpass names `port` and both databases exist. Returns
    the cluster's PostgreSQL major version."""
    pgpass = root / "pgpass"
    cluster = _cluster(root, account)
    if not version:
        password = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: nothing to escape in pgpass
        _write_pgpass(pgpass, port, password)  # first: a cluster never lacks it
        _initdb(bins, cluster, account, password)
        version = _read(cluster / "data" / "PG_VERSION")
    password = _pgpass_password(pgpass)
    if not running:
        _pg_start(bins, cluster, account, port)
    if _pgpass_port(pgpass) != port:
        _write_pgpass(pgpass, port, password)
    _create_databases(port, password)
    return version


def _mlflow_up(root: Path, pg_port: int, mlflow_port: int, mlflow_pid: int | None) -> int:
    """Start the MLflow server on `mlflow_port` unless one runs against PostgreSQL's `pg_port`
    (one against another port is restarted). Returns the port it serves on."""
    if mlflow_pid is not None and _mlflow_pg_port(mlflow_pid) != pg_port:
        _stop_mlflow(root)  # it talks to PostgreSQL on another port: restart it
        mlflow_pid = None
        _check_port(mlflow_port, "--mlflow-port")
    if mlflow_pid is None:
        _start_mlflow(root, pg_port, mlflow_port)
        return mlflow_port
    web_port = _cmdline_port(mlflow_pid) or mlflow_port
    _wait_for_mlflow(root, web_port, None)
    return web_port


def down(root: Path | str | None = None, *, delete_data: bool = False) -> None:
    """Stop the MLflow server and PostgreSQL. The data stays unless `delete_data`, which also
    removes the cluster, the artifacts, the logs and `pgpass` (what `up` made, nothing else)."""
    root = _root(root)
    if not root.is_dir():
        return
    with _locked(root):
        _stop_mlflow(root)
        link = root / "postgres"
        cluster = link.resolve()
        data = cluster / "data"
        if _pg_running(data) is not None:
            bins = find_postgres(_read(data / "PG_VERSION") or None)
            pg_ctl = [str(bins / "pg_ctl"), "-D", str(data), "-w", "-t", str(PG_START_S)]
            result = _pg_run([*pg_ctl, "-m", "fast", "stop"], cluster, _account())
            if result.returncode != 0 and _pg_running(data) is not None:
                raise ServiceError(
                    f"PostgreSQL did not stop: {_last_line(result.stdout + result.stderr)} "
                    f"(see {_shown(link / 'postgres.log')})"
                )
        if delete_data:
            _delete(root, link, cluster)
    if delete_data:
        (root / ".lock").unlink(missing_ok=True)
        if _read(root / ".gitignore").startswith(GITIGNORE.splitlines()[0]):
            (root / ".gitignore").unlink()
        with contextlib.suppress(OSError):
            root.rmdir()  # only when nothing else is in it


def status(root: Path | str | None = None) -> dict[str, ServiceState]:
    """What runs under `root`: {"postgres": ServiceState, "mlflow": ServiceState}."""
    root = _root(root)
    link = root / "postgres"
    running = _pg_running(link / "data")
    pgpass = root / "pgpass"
    pg_port = running[1] if running else _pgpass_port(pgpass)
    postgres = ServiceState(
        name="postgres",
        running=running is not None,
        healthy=running is not None and _pg_healthy(running[1], pgpass),
        port=pg_port,
        pid=running[0] if running else None,
        url=f"postgresql://{ROLE}@{HOST}:{pg_port}/{DATABASES[0]}" if pg_port else None,
        log=link / "postgres.log",
    )
    pid = _mlflow_pid(root)
    port = _cmdline_port(pid) if pid else None
    mlflow = ServiceState(
        name="mlflow",
        running=pid is not None,
        healthy=port is not None and _mlflow_healthy(port),
        port=port,
        pid=pid,
        url=f"http://{HOST}:{port}" if port else None,
        log=root / "mlflow.log",
    )
    return {"postgres": postgres, "mlflow": mlflow}


def use_local_pgpass(root: Path | str | None = None) -> None:
    """Point libpq at `root/pgpass` (PGPASSFILE) unless PGPASSFILE is set already."""
    pgpass = _root(root) / "pgpass"
    if "PGPASSFILE" not in os.environ and pgpass.is_file():
        os.environ["PGPASSFILE"] = str(pgpass)


def find_postgres(version: str | None = None) -> Path:
    """The folder with PostgreSQL's server programs: from PATH, else the newest of Debian's
    /usr/lib/postgresql/*/bin; with `version`, the one of that major version."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted((Path(d) for d in glob.glob(PG_DIRS)), key=_major_key, reverse=True)
    usable = [d for d in candidates if all(os.access(d / p, os.X_OK) for p in PG_PROGRAMS)]
    if not usable:
        raise ServiceError(
            "PostgreSQL's server programs (initdb, pg_ctl, postgres) are neither on PATH nor in "
            f"{PG_DIRS}; install them: {INSTALL}"
        )
    if version is None:
        return usable[0]
    for d in usable:
        if _major(d) == version:
            return d
    raise ServiceError(
        f"the cluster was made by PostgreSQL {version}, but only PostgreSQL "
        f"{', '.join(sorted({_major(d) for d in usable}))} is installed; install it: "
        f"sudo apt-get install postgresql-{version}"
    )


# -- folders and files -----------------------------------------------------------------------


def _root(root: Path | str | None) -> Path:
    return (Path(root) if root is not None else Path.cwd() / DIRNAME).absolute()


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One `up` or `down` at a time on a folder."""
    with open(root / ".lock", "a") as f:
        deadline = time.monotonic() + LOCK_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"another `hpexp services` command holds {root / '.lock'} for over "
                        f"{LOCK_S}s; wait for it or stop it"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None (this user) unless hpexp runs as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_ACCOUNT)
    except KeyError:
        raise ServiceError(
            f"as root, PostgreSQL must run as the unprivileged user '{PG_ACCOUNT}', which does "
            f"not exist; it comes with: {INSTALL}"
        ) from None


def _cluster(root: Path, account: pwd.struct_passwd | None) -> Path:
    """The cluster folder (data/ and postgres.log), made on first use; as root, in the home of
    `account`, which can reach it, behind the symlink root/postgres."""
    link = root / "postgres"
    if link.exists():
        return link.resolve()
    if account is None:
        link.mkdir(mode=0o700)
        return link
    home = Path(account.pw_dir)
    if not home.is_dir():
        raise ServiceError(
            f"as root, PostgreSQL runs as '{account.pw_name}', whose home {home} is missing; "
            f"create it, owned by {account.pw_name}"
        )
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    base = home / "hpexp"
    target = base / f"{root.name}-{digest}"
    for folder in (base, target):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, account.pw_uid, account.pw_gid)
    link.unlink(missing_ok=True)  # a dangling link: its cluster was deleted
    link.symlink_to(target, target_is_directory=True)
    return target


def _delete(root: Path, link: Path, cluster: Path) -> None:
    account = _account()
    if link.is_symlink():
        home = Path(account.pw_dir) / "hpexp" if account else None
        if home is not None and cluster.parent == home.resolve():
            shutil.rmtree(cluster, ignore_errors=True)
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link, ignore_errors=True)
    shutil.rmtree(root / "mlartifacts", ignore_errors=True)
    for name in ("pgpass", "mlflow.log", "mlflow.pid"):
        (root / name).unlink(missing_ok=True)


def _write_pgpass(path: Path, port: int, password: str) -> None:
    """libpq's password file, one line per database, created with mode 600 and swapped in."""
    lines = "".join(f"{HOST}:{port}:{db}:{ROLE}:{password}\n" for db in DATABASES)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(lines)
    os.replace(tmp, path)


def _pgpass_fields(path: Path) -> list[str]:
    for line in _read(path).splitlines():
        fields = line.split(":", 4)
        if len(fields) == 5 and fields[2] == DATABASES[0]:
            return fields
    return []


def _pgpass_password(path: Path) -> str:
    fields = _pgpass_fields(path)
    if not fields:
        raise ServiceError(f"{path} has no line for database {DATABASES[0]}; restore it")
    return fields[4]


def _pgpass_port(path: Path) -> int | None:
    fields = _pgpass_fields(path)
    return int(fields[1]) if fields and fields[1].isdigit() else None


# -- processes -------------------------------------------------------------------------------


def _check_port(port: int, option: str) -> None:
    """Raise ServiceError unless a server could listen on 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as both servers do
        try:
            sock.bind((HOST, port))
        except OSError as e:
            why = (
                "is already in use" if e.errno == errno.EADDRINUSE else f"is refused ({e.strerror})"
            )
            raise ServiceError(
                f"port {port} on {HOST} {why}; stop what uses it or choose another port: "
                f"hpexp services up {option} {port + 1}"
            ) from None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        pass
    try:  # no /proc (macOS)
        out = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=10).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.split()


def _state(pid: int) -> str:
    """The process state letter from /proc ("Z": a zombie; "" when unknown)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]  # reaped
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"


def _group_alive(pgid: int) -> bool:
    """Whether process group `pgid` has a member that is not a zombie."""
    _alive(pgid)  # reaps the leader if it is this process's child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def _wait_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- PostgreSQL ------------------------------------------------------------------------------


def _major(bins: Path) -> str:
    if bins.parent.name.isdigit():  # /usr/lib/postgresql/15/bin
        return bins.parent.name
    try:
        out = subprocess.run([str(bins / "pg_ctl"), "--version"], capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"\)\s*(\d+)", out)
    return found.group(1) if found else "?"


def _major_key(bins: Path) -> int:
    return int(bins.parent.name) if bins.parent.name.isdigit() else -1


def _pg_run(
    args: list[str], cwd: Path, account: pwd.struct_passwd | None, timeout: float = PG_START_S + 30
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as `account` (None: as this user), in its own session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if account is not None:
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    try:
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{Path(args[0]).name} did not finish in {timeout:.0f}s") from None


def _initdb(bins: Path, cluster: Path, account: pwd.struct_passwd | None, password: str) -> None:
    """A new cluster in cluster/data: superuser `hpexp` with `password` (handed over in a
    mode-600 file deleted right after), scram-sha-256 over TCP on 127.0.0.1 only."""
    data = cluster / "data"
    pwfile = cluster / ".initdb-password"
    pwfile.unlink(missing_ok=True)
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if account is not None:
            os.fchown(fd, account.pw_uid, account.pw_gid)
        os.write(fd, f"{password}\n".encode())
    finally:
        os.close(fd)
    try:
        result = _pg_run(
            [str(bins / "initdb"), "-D", str(data), "-U", ROLE, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "--no-locale", "--encoding=UTF8"],
            cluster, account, timeout=300,
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise ServiceError(f"initdb failed in {data}: {_last_line(result.stderr + result.stdout)}")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# hpexp services: TCP on this machine only (the port comes with pg_ctl -o -p)\n"
            f"listen_addresses = '{HOST}'\nunix_socket_directories = ''\n"
        )
    (data / "pg_hba.conf").write_text(
        "# hpexp services: TCP from this machine only, with the password in pgpass\n"
        "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
        f"host    all       all   {HOST}/32  scram-sha-256\n"
    )


def _pg_running(data: Path) -> tuple[int, int] | None:
    """(pid, port) of the postmaster running on `data`, from its postmaster.pid."""
    lines = _read(data / "postmaster.pid").splitlines()
    if len(lines) < 4 or not lines[0].isdigit() or not lines[3].isdigit():
        return None
    pid = int(lines[0])
    if not _alive(pid) or not any("postgres" in a for a in _cmdline(pid)[:1]):
        return None
    return pid, int(lines[3])


#: Each worker on the database holds a few connections (its storage, its heartbeat, its MLflow
#: writer's reads): about 100 direct workers; more go through `hpexp storage-proxy`.
MAX_CONNECTIONS = 400


def _pg_start(bins: Path, cluster: Path, account: pwd.struct_passwd | None, port: int) -> None:
    data, log = cluster / "data", cluster / "postgres.log"
    result = _pg_run(
        [str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(PG_START_S),
         "-o", f"-p {port} -c max_connections={MAX_CONNECTIONS}", "start"],
        cluster, account,
    )  # fmt: skip
    if result.returncode == 0:
        return
    tail = _read(log)[-4000:]
    if "Address already in use" in tail:
        _check_port(port, "--pg-port")  # raises, naming the port
    reason = _last_line(tail or result.stderr + result.stdout)
    raise ServiceError(f"PostgreSQL did not start: {reason} (see {_shown(log)})")


def _create_databases(port: int, password: str) -> None:
    """Databases hpexp and mlflow, owned by role hpexp, unless they exist."""
    import psycopg2

    try:
        conn = psycopg2.connect(host=HOST, port=port, user=ROLE, password=password,
                                dbname="postgres", connect_timeout=10)  # fmt: skip
    except psycopg2.Error as e:
        raise ServiceError(
            f"cannot log in to PostgreSQL on port {port}: {_last_line(str(e))}"
        ) from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            have = {row[0] for row in cur.fetchall()}
            for db in DATABASES:
                if db not in have:
                    cur.execute(f'CREATE DATABASE "{db}" OWNER "{ROLE}"')
    finally:
        conn.close()


def _pg_healthy(port: int, pgpass: Path) -> bool:
    """A login to database hpexp with the password from `pgpass` works."""
    import psycopg2

    try:
        conn = psycopg2.connect(host=HOST, port=port, user=ROLE, dbname=DATABASES[0],
                                passfile=str(pgpass), connect_timeout=5)  # fmt: skip
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    finally:
        conn.close()


# -- MLflow ----------------------------------------------------------------------------------

#: MLflow servers this process started, so `down` can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _mlflow_pid(root: Path) -> int | None:
    """The pid in root/mlflow.pid if that process runs and is an MLflow server."""
    text = _read(root / "mlflow.pid")
    if not text.isdigit():
        return None
    pid = int(text)
    args = _cmdline(pid) if _alive(pid) else []
    return pid if "mlflow" in args and "server" in args else None


def _flag(pid: int, flag: str) -> str:
    """The value after `flag` on the command line of process `pid` ("" when absent)."""
    return next((value for f, value in itertools.pairwise(_cmdline(pid)) if f == flag), "")


def _cmdline_port(pid: int) -> int | None:
    value = _flag(pid, "--port")
    return int(value) if value.isdigit() else None


def _mlflow_pg_port(pid: int) -> int | None:
    found = re.search(r":(\d+)/", _flag(pid, "--backend-store-uri"))
    return int(found.group(1)) if found else None


def _mlflow_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_mlflow(root: Path, pg_port: int, port: int) -> None:
    """`mlflow server` on PostgreSQL's database mlflow, detached, password from PGPASSFILE."""
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", f"postgresql://{ROLE}@{HOST}:{pg_port}/mlflow",
           "--serve-artifacts", "--artifacts-destination", str(root / "mlartifacts"),
           "--host", HOST, "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}  # it would win over pgpass
    env.update(PGPASSFILE=str(root / "pgpass"), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with open(root / "mlflow.log", "ab") as log:
        log.write(f"--- hpexp services up: {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    _CHILDREN[proc.pid] = proc
    (root / "mlflow.pid").write_text(f"{proc.pid}\n")
    _wait_for_mlflow(root, port, proc)


def _wait_for_mlflow(root: Path, port: int, proc: subprocess.Popen[bytes] | None) -> None:
    """Until GET /health answers; a server that exits or stays silent is an error."""
    log = root / "mlflow.log"
    deadline = time.monotonic() + MLFLOW_START_S
    while not _mlflow_healthy(port):
        if proc is not None and proc.poll() is not None:
            (root / "mlflow.pid").unlink(missing_ok=True)
            if "address already in use" in _read(log)[-4000:].lower():
                _check_port(port, "--mlflow-port")  # raises, naming the port
            raise ServiceError(
                f"the MLflow server exited with code {proc.returncode}; see {_shown(log)}"
            )
        if time.monotonic() > deadline:
            _stop_mlflow(root)
            raise ServiceError(
                f"the MLflow server did not answer on {HOST}:{port} in {MLFLOW_START_S}s; "
                f"see {_shown(log)}"
            )
        time.sleep(0.5)


def _stop_mlflow(root: Path) -> None:
    """SIGTERM the server's process group (it and its uvicorn worker), SIGKILL after STOP_S."""
    pid = _mlflow_pid(root)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # start_new_session: its group id is its pid
        if not _wait_gone(pid, STOP_S):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_S)
    (root / "mlflow.pid").unlink(missing_ok=True)


def _services(root: Path, version: str, pg_port: int, mlflow_port: int) -> Services:
    return Services(
        root=root,
        pg_version=version,
        pg_port=pg_port,
        mlflow_port=mlflow_port,
        storage_url=f"postgresql://{ROLE}@{HOST}:{pg_port}/{DATABASES[0]}",
        tracking_uri=f"http://{HOST}:{mlflow_port}",
        pgpass=root / "pgpass",
    )
