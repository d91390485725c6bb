"""Optuna's gRPC storage proxy in front of a database, for very many workers.

Each worker on a database holds its own connections and polls the database; with hundreds of
workers the database saturates first. `hpexp storage-proxy --storage postgresql://... --port P`
serves the database through one process with a cache, and workers pass `--storage
grpc://HOST:P`. The proxy binds 127.0.0.1 unless told otherwise (it has no authentication:
expose it only on a trusted network).
"""

from __future__ import annotations

import signal
import sys

import optuna

from hpexp.errors import SpecError
from hpexp.search.factories import make_storage, redact_url, storage_kind
from hpexp.search.stop import Stop

__all__ = ["serve_storage"]


def serve_storage(url: str, host: str = "127.0.0.1", port: int = 13000) -> None:
    """Serve the database at `url` on host:port until interrupted."""
    if storage_kind(url) != "rdb":
        raise SpecError(
            f"--storage '{redact_url(url)}': the gRPC proxy serves a database "
            "(postgresql://..., mysql://..., sqlite:///...), not a journal file or another proxy"
        )
    if not 0 < port < 65536:
        raise SpecError(f"--port: must be from 1 to 65535, got {port}")
    _check_port_free(host, port)
    storage = make_storage(url)
    print(
        f"Optuna storage proxy for {redact_url(url)} on {host}:{port}; "
        f"workers: --storage grpc://{host}:{port}   (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Ctrl-C and SIGTERM stop it, even where it was started with SIGINT ignored (a shell's
    # background job, a supervisor).
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        print("Optuna storage proxy stopped", file=sys.stderr, flush=True)
        raise  # the command exits 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop(signum: int, frame: object) -> None:
    raise Stop(signum)


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise SpecError(
                f"cannot serve on {host}:{port} ({e.strerror or e}); pick another --port"
            ) from None
