"""Several processes training one study's trials at once on this host (`--workers N`).

`WorkerPool`, in the study process, starts `python -m hpexp.workers` N times. Each worker joins
the study in its storage, samples from a stream of its own (workers never propose the same
configuration), trains trials until the study's budget is reached, and tells the pool about
each trial it finished with one JSON line on stdout. The study process hands those to the MLflow
writer and the progress bar, and passes Ctrl-C and SIGTERM on to the workers, which stop at a
safe point as a single study does. A worker that dies (kill -9) leaves its trial RUNNING under a
dead pid; the others close it as interrupted and re-run it (see `runner._recover`).

Each worker limits its BLAS threads so that workers × threads does not exceed the cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from hpexp.background import BLAS_THREADS
from hpexp.lifeline import die_with_parent
from hpexp.search.stop import StopRequest

__all__ = ["WorkerPool", "threads_per_worker"]

#: Seconds a worker gets to stop by itself after the pool passed on a signal, before SIGKILL.
STOP_SECONDS = 60.0


def threads_per_worker(workers: int) -> int:
    """BLAS threads for each of `workers` processes: together no more than the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


class WorkerPool:
    """N worker processes on one study; `run()` waits for them and reports their trials."""

    def __init__(self, config: dict[str, Any], workers: int) -> None:
        """`config`: {"study", "storage", "n_trials", "timeout", "heartbeat"}."""
        threads = threads_per_worker(workers)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict.fromkeys(BLAS_THREADS, str(threads))}
        self.procs: list[subprocess.Popen[bytes]] = []
        for number in range(1, workers + 1):
            proc = subprocess.Popen(
                [sys.executable, "-m", "hpexp.workers"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # signals reach workers through the pool, once
                env=env,
            )
            assert proc.stdin is not None
            line = {**config, "worker": number, "threads": threads, "parent": os.getpid()}
            proc.stdin.write((json.dumps(line) + "\n").encode())
            proc.stdin.close()
            self.procs.append(proc)
        self.reasons: list[str] = []
        self.lost: list[tuple[int, int]] = []  # (worker number, exit code) of workers that died

    def run(
        self, on_trial: Callable[[int, str], None], stop: StopRequest, on_lost: Callable[[], None]
    ) -> str:
        """Wait for every worker; call `on_trial(number, status)` for each finished trial and
        `on_lost()` when a worker dies. Returns why they stopped ("budget", "timeout",
        "exhausted", "interrupted" or "failed")."""
        buffers = {p.stdout.fileno(): b"" for p in self.procs if p.stdout is not None}
        open_fds = set(buffers)
        passed_on, deadline = 0, None
        reported: set[subprocess.Popen[bytes]] = set()
        while open_fds or any(p.poll() is None for p in self.procs):
            try:
                if stop.count > passed_on:
                    self._signal(stop.signum or signal.SIGINT)
                    passed_on, deadline = stop.count, time.monotonic() + STOP_SECONDS
                if deadline is not None and time.monotonic() > deadline:
                    self._signal(signal.SIGKILL)
                ready, _, _ = (
                    select.select(list(open_fds), [], [], 0.25) if open_fds else ([], [], [])
                )
                if not open_fds:
                    time.sleep(0.1)
            except KeyboardInterrupt:  # a third Ctrl-C in the pool: pass it on at once
                continue
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                buffers[fd] += chunk
                *lines, buffers[fd] = buffers[fd].split(b"\n")
                for line in lines:
                    self._message(line, on_trial)
            for number, proc in enumerate(self.procs, 1):
                code = proc.poll()
                if code is not None and proc not in reported:
                    reported.add(proc)
                    if code != 0 and stop.signum is None:
                        self.lost.append((number, code))
                        on_lost()
        if stop.signum is not None:
            return "interrupted"
        if len(self.lost) == len(self.procs):
            return "failed"
        return self.reasons[0] if self.reasons else "budget"

    def _message(self, line: bytes, on_trial: Callable[[int, str], None]) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if "trial" in message:
            on_trial(int(message["trial"]), str(message["status"]))
        elif "stopped" in message:
            self.reasons.append(str(message["stopped"]))

    def _signal(self, signum: int) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)


# -- a worker -----------------------------------------------------------------------------------


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    config = json.loads(sys.stdin.readline())
    from threadpoolctl import threadpool_limits

    from hpexp.errors import HpexpError
    from hpexp.nn._memory import keep_freed_memory
    from hpexp.search.factories import models_root
    from hpexp.search.objective import ModelFiles, Objective
    from hpexp.search.runner import join_study, optimize, quiet_optuna, reopen_study
    from hpexp.search.spec import study_dataset
    from hpexp.search.states import trial_status
    from hpexp.search.stop import signals_request

    stop = StopRequest()
    with quiet_optuna(), signals_request(stop):
        # stop (SIGTERM, a clean stop) when the study process dies, even by kill -9
        if not die_with_parent(int(config["parent"])):  # it died before that was set
            os.kill(os.getpid(), signal.SIGTERM)
        try:
            spec, _ = reopen_study(config["study"], config["storage"])
            study = join_study(spec, int(config["worker"]), config.get("heartbeat"))
            objective = Objective(
                spec,
                study_dataset(spec.dataset),
                ModelFiles(models_root(spec.storage) / spec.name),
                stop,
            )
            with keep_freed_memory(), threadpool_limits(int(config["threads"]), "blas"):
                reason = optimize(
                    study,
                    spec,
                    objective,
                    n_trials=config.get("n_trials"),
                    timeout=config.get("timeout"),
                    on_trial=lambda t: _say({"trial": t.number, "status": trial_status(t)}),
                )
        except HpexpError as e:
            print(f"hpexp: error: worker {config['worker']}: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 128 + (stop.signum or signal.SIGINT)
    _say({"stopped": reason})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
