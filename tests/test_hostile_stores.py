"""Hostile places: names that would become paths outside the working folder, passwords in store
URLs, stores that cannot be reached or cannot be created.

Each case runs `hpexp run` on a copy of studies/quickstart.yaml in a fresh folder, as a user
types it, and expects one line on stderr, exit code 2, no traceback and nothing written; an
unreachable store is reported within seconds; a password never reaches a file, the study's
Optuna attributes or MLflow.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import optuna
import pytest
import yaml

from hpexp.errors import SpecError, StoreError
from hpexp.search.factories import redact_url, scrub, unmask_url
from hpexp.search.places import MAX_NAME_LENGTH, cannot_create, name_problem
from hpexp.search.spec import load_spec
from tests.conftest import free_ports

QUICKSTART = Path(__file__).resolve().parents[1] / "studies" / "quickstart.yaml"
SECRET = "secret"
#: Short trials, for the cases that train one.
SHORT = ("--set", "search.iterations={int: [20, 40]}")
#: What a refused run may not leave behind.
STORES = ("optuna.journal", "optuna.db", "mlflow.db", "mlartifacts", "hpexp-models")
COMMAND_TIMEOUT = 300


def hpexp_run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`hpexp run study.yaml --n-trials 1 ARGS` in `cwd`; returns the process and its seconds."""
    return hpexp_cmd(cwd, "run", "study.yaml", "--n-trials", "1", "--no-progress", *args, env=env)


def hpexp_cmd(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    return proc, time.monotonic() - start


def files_under(folder: Path) -> list[str]:
    """Every file and folder under `folder`, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_refused(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit code 2, exactly one line on stderr naming `expected`, no traceback, no secret."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpexp: error: "), lines[0]
    missing = [s for s in expected if s not in lines[0]]
    assert not missing, f"{missing} not in: {lines[0]}"
    assert SECRET not in proc.stderr + proc.stdout
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A fresh working folder holding the quickstart study as study.yaml."""
    shutil.copyfile(QUICKSTART, tmp_path / "study.yaml")
    return tmp_path


@pytest.fixture(scope="module")
def startup_seconds(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Seconds `hpexp run` takes to refuse bad input at once (imports and reading the study
    file): what an unreachable store may add to is measured against it."""
    where = tmp_path_factory.mktemp("startup")
    shutil.copyfile(QUICKSTART, where / "study.yaml")
    proc, seconds = hpexp_cmd(where, "run", "study.yaml", "--n-trials", "0", "--no-progress")
    assert proc.returncode == 2, proc.stderr
    return seconds


def time_limit(startup: float) -> float:
    """10 s; on a machine so busy that starting hpexp alone takes over 5 s, 5 s more than that."""
    return max(10.0, startup + 5.0)


# -- names that become paths ------------------------------------------------------------------


@pytest.mark.slow
def test_experiment_name_cannot_escape_the_working_folder(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    doc = yaml.safe_load(QUICKSTART.read_text())
    doc["tracking"] = {"experiment": "../../../escape_exp"}
    (work / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    before = files_under(tmp_path)

    proc, _ = hpexp_run(work)

    assert_refused(proc, "study.yaml", "tracking.experiment", "/")
    assert files_under(tmp_path) == before
    assert not (tmp_path.parent / "escape_exp").exists()


@pytest.mark.slow
def test_a_300_character_experiment_name_is_refused_before_anything_is_written(
    folder: Path,
) -> None:
    proc, _ = hpexp_run(folder, "--set", "tracking.experiment=" + "e" * 300)
    assert_refused(proc, "tracking.experiment", "300 characters", str(MAX_NAME_LENGTH))
    assert files_under(folder) == ["study.yaml"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("experiment", "../up", "'/'", id="parent-path"),
        pytest.param("experiment", "a\\b", "'\\'", id="backslash"),
        pytest.param("experiment", "..", "'..'", id="dot-dot"),
        pytest.param("experiment", ".", "'..'", id="dot"),
        pytest.param("experiment", "line\nbreak", "control characters", id="newline"),
        pytest.param("experiment", "nul\x00byte", "control characters", id="nul"),
        pytest.param("experiment", "x" * (MAX_NAME_LENGTH + 1), "characters long", id="long"),
        pytest.param("experiment", "   ", "non-empty", id="blank"),
        pytest.param("name", "a..b", "'..'", id="study-name-dot-dot"),
    ],
)
def test_folder_name_rules(field: str, value: str, expected: str) -> None:
    doc = yaml.safe_load(QUICKSTART.read_text())
    if field == "experiment":
        doc["tracking"] = {"experiment": value}
    else:
        doc["name"] = value
    with pytest.raises(SpecError) as info:
        load_spec(doc)
    assert expected in str(info.value)
    assert ("tracking.experiment" if field == "experiment" else "name") in str(info.value)


def test_ordinary_names_pass() -> None:
    for name in ("quickstart", "digits α=0.01 (run 2)", "a.b-c_d", "x" * MAX_NAME_LENGTH):
        assert name_problem(name) is None, name


# -- stores that cannot be reached ------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    return free_ports(1)[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "url", "shown"),
    [
        pytest.param(
            "--tracking-uri", "http://127.0.0.1:{port}", "http://127.0.0.1:{port}", id="mlflow"
        ),
        pytest.param(
            "--tracking-uri",
            "http://u:secret@127.0.0.1:{port}",
            "http://u:***@127.0.0.1:{port}",
            id="mlflow-with-password",
        ),
        pytest.param(
            "--tracking-uri",
            "postgresql://u:secret@127.0.0.1:{port}/db",
            "postgresql://u:***@127.0.0.1:{port}/db",
            id="mlflow-postgresql",
        ),
        pytest.param(
            "--storage",
            "postgresql://u:secret@127.0.0.1:{port}/db",
            "postgresql://u:***@127.0.0.1:{port}/db",
            id="optuna-postgresql",
        ),
    ],
)
def test_an_unreachable_store_is_one_line_within_seconds(
    folder: Path, closed_port: int, startup_seconds: float, flag: str, url: str, shown: str
) -> None:
    proc, seconds = hpexp_run(folder, flag, url.format(port=closed_port))

    line = assert_refused(proc, shown.format(port=closed_port))
    assert "make services" in line or "mlflow server" in line, line  # the fix
    assert seconds < time_limit(startup_seconds), (seconds, startup_seconds)
    assert files_under(folder) == ["study.yaml"]  # no optuna.journal, mlflow.db, hpexp-models


# -- stores that cannot be created ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        pytest.param(
            "--tracking-uri", "mlruns", ("'mlruns'", "sqlite:///mlruns/mlflow.db"), id="folder"
        ),
        pytest.param(
            "--tracking-uri",
            "file:///tmp/mlruns",
            ("file:///tmp/mlruns", "sqlite:///"),
            id="file-uri",
        ),
        pytest.param(
            "--storage", "/dev/null/x.journal", ("/dev/null/x.journal", "--storage"), id="dev-null"
        ),
        pytest.param(
            "--storage",
            "sqlite:////dev/null/optuna.db",
            ("/dev/null/optuna.db", "--storage"),
            id="sqlite-under-dev-null",
        ),
        pytest.param(
            "--storage", "a-file/optuna.journal", ("a-file", "--storage"), id="under-a-file"
        ),
        pytest.param(
            "--tracking-uri",
            "sqlite:///a-file/mlflow.db",
            ("a-file", "--tracking-uri"),
            id="mlflow-under-a-file",
        ),
        pytest.param(
            "--tracking-uri",
            "sqlite:////dev/null/mlflow.db",
            ("/dev/null", "--tracking-uri"),
            id="mlflow-under-dev-null",
        ),
    ],
)
def test_a_store_that_cannot_be_created_is_one_line(
    folder: Path, flag: str, value: str, expected: tuple[str, ...]
) -> None:
    (folder / "mlruns").mkdir()
    (folder / "a-file").write_text("a regular file\n")
    before = files_under(folder)

    proc, _ = hpexp_run(folder, flag, value)

    assert_refused(proc, *expected)
    assert files_under(folder) == before
    assert (folder / "a-file").read_text() == "a regular file\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_working_folder_is_one_line(folder: Path) -> None:
    folder.chmod(0o555)
    try:
        proc, _ = hpexp_run(folder)
    finally:
        folder.chmod(0o755)
    assert_refused(proc, str(folder.resolve()), "not writable")
    assert files_under(folder) == ["study.yaml"]


def test_a_read_only_folder_is_refused_before_anything_is_created(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check in-process, as a user without write access sees it (root is not refused
    by the file system, so this one pretends)."""
    import hpexp

    real_access = os.access
    read_only = folder.resolve()

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if mode & os.W_OK and Path(str(path)).resolve() == read_only:
            return False
        return real_access(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.chdir(folder)
    monkeypatch.setattr(os, "access", access)
    with pytest.raises(StoreError) as info:
        hpexp.run_study("study.yaml", n_trials=1, progress=False, verbose=False)
    assert str(read_only) in str(info.value) and "not writable" in str(info.value)
    assert "\n" not in str(info.value)
    assert files_under(folder) == ["study.yaml"]


def test_cannot_create_names_the_reason(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    assert cannot_create(tmp_path / "new" / "deeper" / "x.db") is None
    assert "is not a folder" in str(cannot_create(tmp_path / "f" / "x.db"))
    assert "is a folder" in str(cannot_create(tmp_path / "d"))
    assert "not a regular file" in str(cannot_create("/dev/null"))


# -- passwords ----------------------------------------------------------------------------------


def test_url_helpers_mask_and_unmask() -> None:
    url = "postgresql://u:secret@db:5432/x"
    assert redact_url(url) == "postgresql://u:***@db:5432/x"
    assert unmask_url(redact_url(url)) == "postgresql://u@db:5432/x"  # libpq's sources apply
    assert unmask_url(url) == url and unmask_url("optuna.journal") == "optuna.journal"
    assert scrub("login secret failed", url) == "login *** failed"
    assert scrub("p%40ss and p@ss", "postgresql://u:p%40ss@db/x") == "*** and ***"


class _FakeMlflow(http.server.BaseHTTPRequestHandler):
    """Answers /health like an MLflow server, and 404 to everything else; keeps the
    Authorization headers it saw."""

    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        ok = self.path.startswith("/health")
        body = b"OK" if ok else json.dumps({"error_code": "ENDPOINT_NOT_FOUND"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_mlflow() -> Iterator[tuple[int, list[str]]]:
    """A tracking server that is up but writes nothing: (port, Authorization headers seen)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeMlflow)
    seen: ClassVar[list[str]] = []
    server.RequestHandlerClass = type("Handler", (_FakeMlflow,), {"seen": seen})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


def wait_for_writers(where: Path, limit: float = COMMAND_TIMEOUT) -> None:
    """Wait until no background MLflow writer (`python -m hpexp.background`) works in `where`:
    after its study returned, it may still write the study's artifacts and its log."""
    deadline = time.monotonic() + limit
    while True:
        busy = False
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = Path(os.readlink(entry / "cwd"))
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):  # not a process, gone, or not ours
                continue
            busy |= b"hpexp.background" in argv and cwd == where.resolve() and state != "Z"
        if not busy:
            return
        assert time.monotonic() < deadline, f"a background MLflow writer in {where} ran long"
        time.sleep(0.2)


def secrets_in(folder: Path, word: str) -> list[str]:
    """Files under `folder` whose bytes contain `word`."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and word.encode() in p.read_bytes()]


def study_documents(storage: str, name: str) -> str:
    """Every attribute of study `name` and of its trials, as one JSON text."""
    study = optuna.load_study(study_name=name, storage=storage)
    system = study._storage.get_study_system_attrs(study._study_id)
    doc = {
        "study": [study.user_attrs, system],
        "trials": [[t.user_attrs, t.system_attrs, t.params] for t in study.trials],
    }
    return json.dumps(doc, default=str)


@pytest.mark.slow
def test_a_password_in_a_url_is_never_written(
    folder: Path, fake_mlflow: tuple[int, list[str]]
) -> None:
    port, seen = fake_mlflow
    url = f"http://u:{SECRET}@127.0.0.1:{port}"
    proc, _ = hpexp_run(folder, "--storage", "sqlite:///optuna.db", "--tracking-uri", url, *SHORT)

    wait_for_writers(folder)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert f"http://u:***@127.0.0.1:{port}" in proc.stdout
    expected = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
    assert expected in seen  # the password was used, from the URL
    assert (folder / "optuna.db").is_file()
    assert secrets_in(folder, SECRET) == []
    attrs = study_documents(f"sqlite:///{folder / 'optuna.db'}", "quickstart")
    assert SECRET not in attrs
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert study.user_attrs["tracking_uri"] == f"http://u:***@127.0.0.1:{port}"


@pytest.mark.slow
@pytest.mark.postgres
def test_passwords_from_the_url_the_environment_or_a_password_file(
    services: object, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A study whose storage URL (in the study file) and tracking URL (a flag) carry the
    password keeps it out of every file, the Optuna attributes and MLflow; it is then
    checked with the password from PGPASSWORD and resumed with it from PGPASSFILE, as the
    same study."""
    import psycopg2
    from mlflow.tracking import MlflowClient

    pgpass = Path(services.pgpass)  # type: ignore[attr-defined]
    port = services.pg_port  # type: ignore[attr-defined]
    password = pgpass.read_text().splitlines()[0].split(":", 4)[4]
    tracking_db = f"track_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(
        host="127.0.0.1", port=port, user="hpexp", password=password, dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{tracking_db}"')
    conn.close()

    def url(db: str, secret: str | None) -> str:
        login = f"hpexp:{secret}" if secret is not None else "hpexp"
        return f"postgresql://{login}@127.0.0.1:{port}/{db}"

    name = f"pw-{uuid.uuid4().hex[:8]}"
    doc = yaml.safe_load(QUICKSTART.read_text())
    doc |= {"name": name, "storage": url("hpexp", password)}
    study_file = tmp_path_factory.mktemp("study-file") / "study.yaml"
    study_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    no_file = {"PGPASSFILE": str(tmp_path / "no-such-pgpass")}
    own_pgpass = tmp_path / "pgpass"  # any database on this server
    own_pgpass.write_text(f"127.0.0.1:{port}:*:hpexp:{password}\n")
    own_pgpass.chmod(0o600)
    env_without = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "hpexp", *args],
            cwd=work,
            env={**env_without, "PYTHONWARNINGS": "ignore", **env},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert password not in proc.stdout + proc.stderr
        return proc

    # 1. the password in both URLs, and nowhere else
    first = run(
        "run", str(study_file), "--n-trials", "1", "--no-progress", *SHORT,
        "--tracking-uri", url(tracking_db, password), env=no_file,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    masked = url(tracking_db, "***")
    assert masked in first.stdout

    # 2. checked with the stored (masked) tracking URL, the password from PGPASSWORD
    check = run(
        "check", name, "--storage", url("hpexp", "***"),
        env={**no_file, "PGPASSWORD": password},
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr

    # 3. resumed with the password from PGPASSFILE: the same study, one more trial
    again = run(
        "run", str(study_file), "--n-trials", "2", "--no-progress", *SHORT,
        "--storage", url("hpexp", None), "--tracking-uri", url(tracking_db, None),
        env={"PGPASSFILE": str(own_pgpass)},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "1 trials done" in again.stdout

    wait_for_writers(work)
    storage = url("hpexp", password)
    study = optuna.load_study(study_name=name, storage=storage)
    assert len([t for t in study.trials if t.state.is_finished()]) == 2
    assert password not in study_documents(storage, name)
    assert secrets_in(work, password) == []
    assert secrets_in(work.parent, password) == [str(own_pgpass)]
    client = MlflowClient(url(tracking_db, password))
    for experiment in client.search_experiments():
        assert password not in str(experiment)
        for r in client.search_runs([experiment.experiment_id]):
            assert password not in json.dumps([r.data.params, r.data.tags])
