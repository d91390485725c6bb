"""MLflow written behind the search: a child process that projects finished trials.

`BackgroundSync` starts `python -m hpexp.background` and tells it, one JSON line at a time on
its stdin, which trials finished; the child reads them from the Optuna storage and writes their
MLflow runs, so training never waits for MLflow (and MLflow's import, store creation and
requests run on another core). At the end it writes the last trials' runs and answers with
the run ids; it then writes the study's artifacts (trials table, plots, report, best model) by
itself, so a study returns as soon as its trials are in MLflow (`close(..., artifacts=True)`
waits for them too). Until it is done it holds the study's MLflow lock, which `hpexp check`
waits for.

The child is in a session of its own and ignores Ctrl-C: when the study process is stopped or
killed, it still writes what had finished, then exits. If MLflow stops answering, the study
goes on (one warning line) and `hpexp sync STUDY` or the next run fills MLflow in.

A worker that joins a study run elsewhere (`hpexp worker`) writes only the trials it finished,
and ends the study's run only when it finds the study done.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["BackgroundSync"]

#: Seconds between attempts to reach an MLflow that stopped answering.
RETRY_SECONDS = 15.0
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: The nice value of this process's autogroup (Linux, see sched(7)).
AUTOGROUP = "/proc/self/autogroup"
#: Writers still finishing a study's artifacts after their study returned (reaped later).
_DETACHED: list[subprocess.Popen[str]] = []


class BackgroundSync:
    """The study process's end of the pipe: `start(config)`, `trial_finished(n)`, then
    `close(status)`; or `discard()` before `start`. The writer starts when the object is
    made, and imports MLflow while the study is checked and opened."""

    def __init__(self, tracking_uri: str = "") -> None:
        """`tracking_uri`: its scheme says which MLflow store to import ahead (only that is
        passed: a URL may hold a password)."""
        # One BLAS thread and a lower priority: the writer must not take the trainer's core.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict.fromkeys(BLAS_THREADS, "1")}
        scheme = tracking_uri.partition(":")[0].partition("+")[0]
        self.proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-m", "hpexp.background", scheme],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C in the terminal reaches the study, not the writer
            env=env,
        )
        self.started = False

    def start(self, config: dict[str, Any]) -> None:
        """Tell the writer what to write: the study, its stores, its trials' model files."""
        self.started = True
        self._send(config)

    def fds(self) -> list[int]:
        """This end's file descriptors of the pipe to the writer (a forked child closes them,
        so that the writer still sees the pipe close when this process ends)."""
        if self.proc is None:
            return []
        return [p.fileno() for p in (self.proc.stdin, self.proc.stdout) if p is not None]

    def discard(self) -> None:
        """Stop a writer that was never started (it has written nothing)."""
        if self.proc is not None and not self.started:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            self.proc = None

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

    def close(self, status: str, artifacts: bool = False, timeout: float = 600.0) -> dict[str, Any]:
        """End the study run with `status`; wait until every trial's run is written (and, with
        `artifacts`, the study's artifacts too). Returns {"ok": bool, "run_ids": {number: id},
        ...}; {"ok": False} if there is no answer."""
        proc = self.proc
        self._send({"close": status, "detach": not artifacts})
        if proc is None or proc.stdout is None:
            return {"ok": False}
        reply: dict[str, Any] = {"ok": False}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            line = proc.stdout.readline() if ready else ""
            if not line:  # the writer exited, or the time is up
                break
            if line.startswith("{"):
                reply = json.loads(line)
                break
        else:
            reply["error"] = f"still writing after {timeout:g} s"
        if artifacts or not reply.get("ok"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if proc.poll() is None:  # the rest is the writer's own business
            _DETACHED[:] = [p for p in _DETACHED if p.poll() is None] + [proc]
        self.proc = None
        return reply


# -- the child ----------------------------------------------------------------------------------


#: The study's store URLs: their passwords are masked in every message (see `_warn`).
_URLS: list[str] = []


def _warn(text: str) -> None:
    from hpexp.search.factories import scrub

    print(f"hpexp: warning: {scrub(text, *_URLS)}", file=sys.stderr, flush=True)


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
        self.mine: set[int] = set()  # trials this process finished
        self.known: dict[int, str] = {}  # {trial: run id} of the runs in MLflow up to date
        self.whole_study = not config.get("worker")  # else: only this worker's trials
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
                if self.whole_study:
                    self.known |= self.syncer.catch_up().run_ids
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
        self.mine.add(number)

        def write() -> None:  # the trials this process finished and has not written
            unwritten = self.pending - self.known.keys()
            self.known.update(self.syncer.trials(unwritten, unwritten=True))

        if self.attempt(write):
            self.pending.clear()

    def close(self, status: str, detach: bool, reply: IO[str]) -> None:
        """Write the last runs, answer with the run ids, then (`detach`) or before that (not
        `detach`) write the study's artifacts and end its run, all under the study's lock."""
        result: dict[str, Any] = {"ok": False}

        def runs() -> None:
            # What this writer has not written yet: MLflow is not searched again for the rest
            # (it caught up on earlier runs when it opened; `hpexp check` compares it all)
            owned = self.syncer.finished() if self.whole_study else self.mine
            self.known.update(self.syncer.trials(owned - self.known.keys()))
            result.update(
                ok=True,
                run_ids={n: self.known[n] for n in sorted(owned) if n in self.known},
                parent_run_id=self.syncer.projection.parent_run_id,
                experiment_id=self.syncer.projection.experiment_id,
            )

        def study_run() -> None:
            self.syncer.close(status, self.artifacts)

        if not self.whole_study and not self._study_done():
            study_run = lambda: None  # noqa: E731  (the study goes on: its run stays open)
        with self.syncer.lock():
            if self.attempt(runs, final=True) and not detach:
                result["ok"] = self.attempt(study_run, final=True)
            _answer(reply, result, Path(self.config["models"]) / "writer.log")
            if result["ok"] and detach:
                self.attempt(study_run, final=True)

    def _study_done(self) -> bool:
        from hpexp.search.runner import budget_state

        finished, running = budget_state(self.syncer.study)
        budget = self.config.get("n_trials", self.syncer.spec.n_trials)
        return running == 0 and (budget is None or finished >= budget)


def _answer(reply: IO[str], result: dict[str, Any], log: Path) -> None:
    """Answer the study process, which then stops reading. Later output goes to `log`, so a
    pipe the study's output goes through (`hpexp run ... | tee`) ends with the study."""
    with contextlib.suppress(BrokenPipeError, OSError):  # it stopped waiting: nobody to tell
        reply.write(json.dumps(result) + "\n")
        reply.flush()
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), reply.fileno())
        log.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)


def _yield_to_training() -> None:
    """Run only on CPU time that training leaves idle (SCHED_IDLE on Linux, else nice 19):
    with a worker per core, MLflow waits for the gaps between trials and the study's end.

    Where the kernel groups processes by session (autogroup, on in many distributions'
    kernels), the writer's own session would weigh as much as the study's, and its
    SCHED_IDLE would only rank it within that session: its group is set to nice 19 too."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
    for _ in range(3):  # unprivileged, the kernel takes 10 such writes a second in all
        try:
            Path(AUTOGROUP).write_text("19")
            return
        except OSError as e:  # no autogroup here (ENOENT), or its rate limit (EAGAIN)
            if e.errno != errno.EAGAIN:
                return
            time.sleep(0.11)


def _import_store(scheme: str) -> None:
    """Import the MLflow store for URIs of `scheme` (about a second of imports)."""
    with contextlib.suppress(Exception):
        if scheme in ("http", "https", "databricks"):
            importlib.import_module("mlflow.store.tracking.rest_store")
        elif scheme:
            importlib.import_module("mlflow.store.tracking.sqlalchemy_store")


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import optuna  # what writing needs, imported before the study is known

    import hpexp.study
    import hpexp.sync  # noqa: F401

    _import_store(sys.argv[1] if len(sys.argv) > 1 else "")
    # The imports ran at the study's priority, while it checks its study and loads its data
    # on one core; the runs are written on the time training leaves idle.
    _yield_to_training()
    first = sys.stdin.readline()
    if not first:
        return 0
    config = json.loads(first)
    _URLS[:] = [str(config.get("tracking_uri", "")), str(config.get("storage", ""))]
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # this process only reads the study
    try:
        writer = _Writer(config)
    except Exception as e:
        _warn(f"cannot write MLflow runs ({_problem(e)}); run: hpexp sync {config['study']}")
        return 1
    writer.attempt(lambda: None)  # open the store, catch up on earlier runs
    # What only the study's end needs (plots, the pyfunc model) is imported there: imported
    # while trials run, it would delay their runs behind a few seconds of imports.
    for line in sys.stdin:
        message = json.loads(line)
        if "trial" in message:
            writer.trial(int(message["trial"]))
        elif "close" in message:
            writer.close(str(message["close"]), bool(message.get("detach")), sys.stdout)
            return 0
    # The study process went away without closing: write what finished, leave the study run.
    if writer.whole_study:
        writer.attempt(lambda: writer.syncer.catch_up())
    else:
        writer.attempt(lambda: writer.syncer.trials(writer.mine - writer.known.keys()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
