"""MLflow written behind the search: a child process that projects finished trials.

`BackgroundSync` starts `python -m hpexp.background` and tells it, one JSON line at a time on
its stdin, which trials finished; the child reads them from the Optuna storage and writes their
MLflow runs, so training never waits for MLflow (and MLflow's import, store creation and
requests run on another core). At the end it writes the study's artifacts and answers with the
run ids. The child is in a session of its own and ignores Ctrl-C: when the study process is
stopped or killed, it still writes what had finished, then exits. If MLflow stops answering, the
study goes on (one warning line) and `hpexp sync STUDY` or the next run fills MLflow in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import IO, Any

__all__ = ["BackgroundSync"]

#: Seconds between attempts to reach an MLflow that stopped answering.
RETRY_SECONDS = 15.0
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class BackgroundSync:
    """The study process's end of the pipe: `trial_finished(n)`, then `close(status)`."""

    def __init__(self, config: dict[str, Any]) -> None:
        # One BLAS thread and a lower priority: the writer must not take the trainer's core.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict.fromkeys(BLAS_THREADS, "1")}
        self.proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-m", "hpexp.background"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C in the terminal reaches the study, not the writer
            env=env,
        )
        self._send(config)

    def _send(self, message: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.proc = None  # it died and said why; `hpexp sync` fills MLflow in

    def trial_finished(self, number: int) -> None:
        self._send({"trial": number})

    def close(self, status: str, timeout: float = 600.0) -> dict[str, Any]:
        """Ask for the study's artifacts and end of run; wait for the answer. Returns
        {"ok": bool, "run_ids": {number: id}, ...}; {"ok": False} if there is none."""
        proc = self.proc
        self._send({"close": status})
        if proc is None or proc.stdout is None:
            return {"ok": False}
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"still writing after {timeout:g} s"}
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"ok": False}


# -- the child ----------------------------------------------------------------------------------


def _warn(text: str) -> None:
    print(f"hpexp: warning: {text}", file=sys.stderr, flush=True)


def _problem(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__


class _Writer:
    """The child's state: the syncer, trials waiting to be written, whether MLflow answers."""

    def __init__(self, config: dict[str, Any]) -> None:
        from hpexp.study import syncer_for

        self.config = config
        self.syncer, self.artifacts = syncer_for(config)
        self.pending: set[int] = set()
        self.broken_since: float | None = None
        self.opened = False

    def attempt(self, what: Any, final: bool = False) -> bool:
        """Run `what()`; on failure warn once and remember to retry later (`final`: now)."""
        waiting = self.broken_since is not None and not final
        if waiting and time.monotonic() - (self.broken_since or 0.0) < RETRY_SECONDS:
            return False
        try:
            if not self.opened:
                self.syncer.open()
                self.syncer.catch_up()
                self.opened = True
            what()
        except Exception as e:
            if self.broken_since is None:
                _warn(
                    f"MLflow at {self.config['tracking_uri_shown']} stopped answering "
                    f"({_problem(e)}); the study goes on, and its runs are written when it "
                    f"answers again or by: hpexp sync {self.config['study']}"
                )
            self.broken_since = time.monotonic()
            return False
        if self.broken_since is not None:
            _warn("MLflow answers again; writing the trials it missed")
        self.broken_since = None
        return True

    def trial(self, number: int) -> None:
        self.pending.add(number)
        if self.attempt(lambda: self.syncer.trials(self.pending)):
            self.pending.clear()

    def close(self, status: str, reply: IO[str]) -> None:
        result: dict[str, Any] = {"ok": False}

        def finish() -> None:
            self.syncer.catch_up()
            self.syncer.close(status, self.artifacts)
            runs = self.syncer.projection.trial_runs()
            result.update(
                ok=True,
                run_ids={n: r[0].info.run_id for n, r in runs.items()},
                parent_run_id=self.syncer.projection.parent_run_id,
                experiment_id=self.syncer.projection.experiment_id,
            )

        self.attempt(finish, final=True)
        try:
            reply.write(json.dumps(result) + "\n")
            reply.flush()
        except (BrokenPipeError, OSError):  # the study process stopped waiting: nobody to tell
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), reply.fileno())


def _warm_up() -> None:
    """Import what the study's end needs (plots, the pyfunc model) while trials still run."""
    with contextlib.suppress(Exception):
        import mlflow.pyfunc  # noqa: F401
        import optuna.visualization.matplotlib  # noqa: F401

        import hpexp.report.plots
        import hpexp.tracking.pyfunc  # noqa: F401


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)
    first = sys.stdin.readline()
    if not first:
        return 0
    config = json.loads(first)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # this process only reads the study
    try:
        writer = _Writer(config)
    except Exception as e:
        _warn(f"cannot write MLflow runs ({_problem(e)}); run: hpexp sync {config['study']}")
        return 1
    writer.attempt(lambda: None)  # open the store, catch up on earlier runs
    _warm_up()
    for line in sys.stdin:
        message = json.loads(line)
        if "trial" in message:
            writer.trial(int(message["trial"]))
        elif "close" in message:
            writer.close(str(message["close"]), sys.stdout)
            return 0
    # The study process went away without closing: write what finished, leave the study run.
    writer.attempt(lambda: writer.syncer.catch_up())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
