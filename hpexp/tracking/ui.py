"""The MLflow UI over a study's tracking store, bound to 127.0.0.1 unless asked otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpexp.errors import HpexpError
from hpexp.tracking.tracker import local_artifact_root

__all__ = ["serve", "ui_command", "ui_env"]


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


def serve(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the UI in the foreground until Ctrl-C."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise HpexpError(f"no MLflow store at '{db}'; run a study first (make study)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the UI will be reachable from other machines on {host}", file=sys.stderr)
    print(f"MLflow UI: http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(ui_command(tracking_uri, host, port), env=ui_env())
    except KeyboardInterrupt:
        return 0
