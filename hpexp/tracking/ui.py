"""The MLflow UI over a study's tracking store, bound to 127.0.0.1 unless asked otherwise."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from hpexp.errors import HpexpError
from hpexp.tracking.stores import local_artifact_root

__all__ = ["check_port", "serve", "ui_command", "ui_env"]


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
    """Run the UI in the foreground until Ctrl-C. Returns 2 (after one line on stderr) if the
    server stops with an error."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise HpexpError(f"no MLflow store at '{db}'; run a study first (make study)")
    check_port(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the UI will be reachable from other machines on {host}", file=sys.stderr)
    print(f"MLflow UI: http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    try:
        code = subprocess.call(ui_command(tracking_uri, host, port), env=ui_env())
    except KeyboardInterrupt:
        return 0
    if code != 0:
        print(
            f"hpexp: error: the MLflow server stopped with exit code {code} (see above); if port "
            f"{port} was taken meanwhile, choose another: hpexp ui --port {port + 1}",
            file=sys.stderr,
        )
        return 2
    return 0
