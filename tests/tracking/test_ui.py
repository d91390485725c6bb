"""`hpexp ui` without a browser: the server command line, its defaults, its errors, and the
studies' links it prints."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hpexp import cli
from hpexp.errors import HpexpError
from hpexp.tracking import ui


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def store(tmp_path: Path) -> str:
    (tmp_path / "mlflow.db").touch()
    return f"sqlite:///{tmp_path}/mlflow.db"


def _flag(cmd: list[str], name: str) -> str:
    assert cmd.count(name) == 1, cmd
    return cmd[cmd.index(name) + 1]


def test_ui_command_binds_localhost_and_passes_the_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = ui.ui_command(uri)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert _flag(cmd, "--host") == "127.0.0.1"
    assert _flag(cmd, "--port") == "5000"
    assert _flag(cmd, "--backend-store-uri") == uri
    # artifacts are served from where the runs wrote them: mlartifacts/ beside the database
    assert _flag(cmd, "--default-artifact-root") == (tmp_path / "mlartifacts").as_uri()


def test_ui_command_takes_host_and_port() -> None:
    cmd = ui.ui_command("sqlite:///mlflow.db", "0.0.0.0", 5123)
    assert _flag(cmd, "--host") == "0.0.0.0"
    assert _flag(cmd, "--port") == "5123"


def test_ui_env_turns_off_the_job_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPEXP_SOME_SETTING", "kept")
    env = ui.ui_env()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["HPEXP_SOME_SETTING"] == "kept"


def test_cli_ui_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_serve(uri: str, host: str, port: int) -> int:
        calls.append((uri, host, port))
        return 0

    monkeypatch.setattr(ui, "serve", fake_serve)
    assert cli.main(["ui"]) == 0
    assert calls == [("sqlite:///mlflow.db", "127.0.0.1", 5000)]


def test_cli_ui_without_a_store_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_server(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the server must not start without a store")

    monkeypatch.setattr(ui, "run_server", no_server)
    missing = tmp_path / "nope.db"
    code = cli.main(["ui", "--tracking-uri", f"sqlite:///{missing}"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hpexp: error: ")
    assert str(missing) in lines[0]
    assert not missing.exists()  # looking did not create an empty store


def test_serve_runs_the_server_and_warns_off_localhost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mlflow.db").touch()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    seen: dict[str, Any] = {}

    def fake_call(cmd: list[str], env: dict[str, str]) -> int:
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(ui, "run_server", fake_call)
    monkeypatch.setattr(ui, "check_port", lambda host, port: None)  # 5000 may be taken here
    assert ui.serve(uri) == 0
    assert seen["cmd"] == ui.ui_command(uri)
    assert seen["env"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    out, err = capsys.readouterr()
    assert "http://127.0.0.1:5000" in out
    assert err == ""

    assert ui.serve(uri, host="0.0.0.0", port=5001) == 0
    assert _flag(seen["cmd"], "--host") == "0.0.0.0"
    assert "warning" in capsys.readouterr().err


@pytest.mark.parametrize(
    "stop, code",
    [(KeyboardInterrupt(), 130), (ui.Stopped(signal.SIGINT), 130),
     (ui.Stopped(signal.SIGTERM), 143), (ui.Stopped(signal.SIGHUP), 129)],
    ids=["ctrl-c", "sigint", "sigterm", "sighup"],
)  # fmt: skip
def test_serve_stops_quietly_on_a_signal(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stop: BaseException,
    code: int,
) -> None:
    (tmp_path / "mlflow.db").touch()

    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise stop

    monkeypatch.setattr(ui, "run_server", interrupted)
    monkeypatch.setattr(ui, "check_port", lambda host, port: None)
    assert ui.serve(f"sqlite:///{tmp_path}/mlflow.db") == code
    assert capsys.readouterr().err == ""


def test_cli_ui_on_a_busy_port_exits_2_without_starting_the_server(
    store: str,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_server(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the server must not start on a busy port")

    monkeypatch.setattr(ui, "run_server", no_server)
    code = cli.main(["ui", "--port", str(busy_port), "--tracking-uri", store])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # no URL printed
    assert err.splitlines() == [
        f"hpexp: error: port {busy_port} on 127.0.0.1 is already in use; stop what uses it or "
        f"choose another port: hpexp ui --port {busy_port + 1}"
    ]


@pytest.mark.slow
def test_subprocess_ui_on_a_busy_port(store: str, busy_port: int, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", "ui", "--port", str(busy_port), "--tracking-uri", store],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert f"port {busy_port} on 127.0.0.1 is already in use" in proc.stderr


def test_check_port_passes_a_free_port_and_names_a_foreign_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ui.check_port("127.0.0.1", port)
    with pytest.raises(HpexpError, match=r"^cannot listen on 192\.0\.2\.1 port \d+ \("):
        ui.check_port("192.0.2.1", port)  # TEST-NET-1: an address of no machine here


def test_serve_returns_2_when_the_server_fails(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ui, "run_server", lambda cmd, env: 1)
    monkeypatch.setattr(ui, "check_port", lambda host, port: None)
    assert ui.serve(store, port=5123) == 2
    out, err = capsys.readouterr()
    assert "http://127.0.0.1:5123" in out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hpexp: error: the MLflow server stopped with exit code 1")
    assert "hpexp ui --port 5124" in lines[0]


# -- the studies' links, printed once the server answers ------------------------------------------


class FakeServer(http.server.BaseHTTPRequestHandler):
    """MLflow's health check and experiments search, two pages: one hpexp experiment holding
    two studies' views, one that is not hpexp's."""

    pages: ClassVar[list[dict[str, Any]]] = [
        {
            "experiments": [
                {
                    "experiment_id": "4",
                    "tags": [
                        {"key": "hpexp.study", "value": "b"},
                        {"key": "mlflow.sharedViewState.hpexp-b", "value": "{}"},
                        {"key": "mlflow.sharedViewState.hpexp-a", "value": "{}"},
                    ],
                }
            ],
            "next_page_token": "2",
        },
        {"experiments": [{"experiment_id": "9", "tags": [{"key": "x", "value": "y"}]}]},
    ]

    def do_GET(self) -> None:
        self._reply({"status": "OK"} if self.path == "/health" else None)

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/api/2.0/mlflow/experiments/search"
        self._reply(self.pages[1 if query.get("page_token") == "2" else 0])

    def _reply(self, doc: dict[str, Any] | None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_mlflow() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_study_links_name_each_study_view(fake_mlflow: str) -> None:
    view = "runs?viewStateShareKey=hpexp-{}&workflowType=machine_learning"
    assert ui.study_links(fake_mlflow, "http://0.0.0.0:5000") == [
        f"a: http://0.0.0.0:5000/#/experiments/4/{view.format('a')}",
        f"b: http://0.0.0.0:5000/#/experiments/4/{view.format('b')}",
    ]


def test_the_links_are_printed_once_the_server_answers(
    fake_mlflow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ui._print_links(fake_mlflow, "http://h:1", threading.Event())
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "  a: http://h:1/#/experiments/4/runs?viewStateShareKey=hpexp-a&workflowType=machine_learning",
        "  b: http://h:1/#/experiments/4/runs?viewStateShareKey=hpexp-b&workflowType=machine_learning",
    ]
    stopped = threading.Event()
    stopped.set()  # the server stopped first: nothing printed
    ui._print_links(fake_mlflow, "http://h:1", stopped)
    assert capsys.readouterr().out == ""
