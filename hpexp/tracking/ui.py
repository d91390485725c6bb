"""The MLflow UI over a study's tracking store, bound to 127.0.0.1 unless asked otherwise.

`mlflow server` runs its web server (uvicorn, or gunicorn) as processes of its own. `hpexp ui`
starts it in a process group of its own and takes that whole group down when it is stopped
(Ctrl-C, SIGTERM, SIGHUP); if `hpexp ui` is killed (kill -9), the kernel sends the server
SIGTERM (Linux), which it passes on to its web server.

Once the server answers, `hpexp ui` prints a link per study in the store: its trials, best
first (`hpexp.tracking.views`). MLflow's own pages open on GenAI views and a folded parent run;
these links are the way in.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from hpexp.errors import HpexpError
from hpexp.lifeline import dies_with_this_process
from hpexp.tracking.stores import local_artifact_root
from hpexp.tracking.views import studies_with_views, view_url

__all__ = [
    "Stopped",
    "check_port",
    "run_server",
    "serve",
    "study_links",
    "ui_command",
    "ui_env",
]

#: The signals that stop `hpexp ui` and its server.
STOP_SIGNALS = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)
)
#: Seconds the server's processes get to stop after SIGTERM, before SIGKILL.
STOP_SECONDS = 10.0
#: Seconds `hpexp ui` waits for its server to answer before it gives up printing study links.
LINKS_WAIT = 180.0


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The `mlflow server` command line for this store (artifacts read where runs put them)."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
    root = local_artifact_root(tracking_uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd


def ui_env() -> dict[str, str]:
    """The environment for `ui_command`: this process's, without MLflow's background job runner."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def check_port(host: str, port: int) -> None:
    """Raise HpexpError unless the server could listen on (host, port) now."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            # as the server sets it on POSIX: a listener still blocks, a closed one's TIME_WAIT
            # does not; on Windows it would let the bind steal a port in use, so it stays off
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(os.name != "nt"))
            sock.bind(address)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise HpexpError(
                f"port {port} on {host} is already in use; stop what uses it or choose another "
                f"port: hpexp ui --port {port + 1}"
            ) from None
        raise HpexpError(f"cannot listen on {host} port {port} ({e.strerror or e})") from None


def serve(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the UI in the foreground until Ctrl-C. Returns 128 + N when stopped by signal N
    (Ctrl-C 130, SIGTERM 143), or 2 (after one line on stderr) if the server stops with an
    error."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise HpexpError(f"no MLflow store at '{db}'; run a study first (make study)")
    check_port(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the UI will be reachable from other machines on {host}", file=sys.stderr)
    base = _http(host, port)
    print(f"MLflow UI: {base}  (Ctrl-C to stop)", flush=True)
    local = _http("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)
    done = threading.Event()
    threading.Thread(target=_print_links, args=(local, base, done), daemon=True).start()
    try:
        code = run_server(ui_command(tracking_uri, host, port), env=ui_env())
    except KeyboardInterrupt as e:  # stopped: the server is down too
        return 128 + int(getattr(e, "signum", signal.SIGINT))
    finally:
        done.set()
    if code != 0:
        print(
            f"hpexp: error: the MLflow server stopped with exit code {code} (see above); if port "
            f"{port} was taken meanwhile, choose another: hpexp ui --port {port + 1}",
            file=sys.stderr,
        )
        return 2
    return 0


def _http(host: str, port: int) -> str:
    """http://host:port, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def study_links(api: str, base: str, timeout: float = 10.0) -> list[str]:
    """`STUDY: URL` for each study's saved view in the store that the server at `api` serves,
    URLs as a browser reaches the UI at `base`."""
    found: list[tuple[str, str]] = []
    token = None
    while True:
        query = {"max_results": 1000, "filter": "tags.`hpexp.study` LIKE '%'"}
        if token:
            query["page_token"] = token
        request = urllib.request.Request(
            f"{api}/api/2.0/mlflow/experiments/search",
            data=json.dumps(query).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            page = json.load(reply)
        for experiment in page.get("experiments", []):
            tags = {t["key"]: t.get("value", "") for t in experiment.get("tags", [])}
            for study in studies_with_views(tags):
                found.append((study, view_url(base, experiment["experiment_id"], study)))
        token = page.get("next_page_token")
        if not token:
            return [f"{study}: {url}" for study, url in sorted(found)]


def _print_links(api: str, base: str, done: threading.Event) -> None:
    """Once the server at `api` answers (before `done`), print the studies' links."""
    deadline = time.monotonic() + LINKS_WAIT
    while not done.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        done.wait(0.5)
    else:
        return
    try:
        lines = study_links(api, base)
    except (OSError, ValueError, KeyError, TypeError):
        return  # the links are a convenience: the UI works without them
    if lines and not done.is_set():
        print("  " + "\n  ".join(lines), flush=True)


class Stopped(KeyboardInterrupt):
    """`hpexp ui` was stopped by signal `signum`; its server is down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_server(cmd: list[str], env: dict[str, str]) -> int:
    """Run `cmd` in a process group of its own until it exits, and return its exit code. If
    this process gets SIGINT, SIGTERM or SIGHUP meanwhile, take the whole group down and raise
    `Stopped`; if this process dies, the server gets SIGTERM."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)

    previous: dict[int, Any] = {}
    try:
        for s in STOP_SIGNALS:
            previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: signals stay with whoever handles them
        pass
    try:
        server = subprocess.Popen(cmd, env=env, **_own_group())
        try:
            while not received:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return server.wait(0.2)
            raise Stopped(received[0])
        finally:
            _stop_group(server, received)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _own_group() -> dict[str, Any]:
    """Popen arguments: a session (and so a process group) of its own, tied to this process."""
    if os.name != "posix":
        return {}
    return {"start_new_session": True, "preexec_fn": dies_with_this_process(signal.SIGTERM)}


def _stop_group(server: subprocess.Popen[Any], received: list[int]) -> None:
    """SIGTERM the server's process group (the server passes it on to its web server); give it
    STOP_SECONDS to exit (less if another signal comes), then SIGKILL whatever is left."""
    if os.name != "posix":
        if server.poll() is None:
            server.terminate()
        server.wait()
        return
    seen = len(received)
    if _signal_group(server.pid, signal.SIGTERM):
        deadline = time.monotonic() + STOP_SECONDS
        while server.poll() is None and len(received) == seen and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(server.pid, signal.SIGKILL)
    server.wait()


def _signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to process group `pgid`; False if no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of it is no longer ours
        return True
    return True
