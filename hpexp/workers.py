"""Several processes training one study's trials at once on this host (`--workers N`).

`WorkerPool`, in the study process, starts N workers. Each joins the study in its storage,
samples from a stream of its own (workers never propose the same configuration), trains trials
until the study's budget is reached, and tells the pool about each trial it finished with one
JSON line on a pipe. The study process hands those to the MLflow writer and the progress bar,
and passes Ctrl-C and SIGTERM on to the workers, which stop at a safe point as a single study
does. A worker that dies (kill -9) leaves its trial RUNNING under a dead pid; the others close it
as interrupted and re-run it (see `runner._recover`).

Workers are forked from the study process (named `hpexp-worker` in `ps -e`): they start in
milliseconds with everything already imported and the dataset already loaded, which is most of
a short study's time otherwise. Through Optuna's gRPC proxy, whose channels do not survive a
fork, or where fork fails, they are started as `python -m hpexp.workers` instead.

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
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpexp.background import BLAS_THREADS
from hpexp.lifeline import die_with_parent, name_this_process
from hpexp.search.stop import StopRequest

if TYPE_CHECKING:
    from hpexp.data.dataset import Dataset
    from hpexp.search.objective import ModelFiles
    from hpexp.search.spec import StudySpec

__all__ = ["WORKER_NAME", "WorkerPool", "threads_per_worker"]

#: Seconds a worker gets to stop by itself after the pool passed on a signal, before SIGKILL.
STOP_SECONDS = 60.0
#: What a forked worker is called in /proc/PID/comm (`ps -e`, `top`).
WORKER_NAME = "hpexp-worker"


def threads_per_worker(workers: int) -> int:
    """BLAS threads for each of `workers` processes: together no more than the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


@dataclass
class Work:
    """What a worker needs to train the study's trials, already in memory in the study
    process (a forked worker shares it) or rebuilt from the storage (a started one)."""

    spec: StudySpec
    dataset: Dataset
    models: ModelFiles
    config: dict[str, Any]  # {"n_trials", "timeout", "heartbeat"}


class _Worker:
    """One worker process as the pool sees it: its pid, the read end of its message pipe,
    and `poll()` (None while it runs, else its exit code; -N for signal N)."""

    def __init__(self, pid: int, fd: int, poll: Callable[[], int | None]) -> None:
        self.pid, self.fd, self._poll = pid, fd, poll

    def poll(self) -> int | None:
        return self._poll()


class WorkerPool:
    """N worker processes on one study; `run()` waits for them and reports their trials."""

    def __init__(
        self,
        config: dict[str, Any],
        workers: int,
        work: Work | None = None,
        close_in_workers: Iterable[int] = (),
    ) -> None:
        """`config`: {"study", "storage", "n_trials", "timeout", "heartbeat"}. With `work`
        the workers are forked and train it; `close_in_workers`: file descriptors of the
        study process a forked worker must not hold (the MLflow writer's pipe)."""
        threads = threads_per_worker(workers)
        self.workers: list[_Worker] = []
        for number in range(1, workers + 1):
            worker = None
            if work is not None:
                worker = _fork(work, number, threads, tuple(close_in_workers))
            self.workers.append(worker or _spawn(config, number, threads))
        self.reasons: list[str] = []
        self.lost: list[tuple[int, int]] = []  # (worker number, exit code) of workers that died

    def run(
        self, on_trial: Callable[[int, str], None], stop: StopRequest, on_lost: Callable[[], None]
    ) -> str:
        """Wait for every worker; call `on_trial(number, status)` for each finished trial and
        `on_lost()` when a worker dies. Returns why they stopped ("budget", "timeout",
        "exhausted", "interrupted" or "failed")."""
        buffers = {w.fd: b"" for w in self.workers}
        open_fds = set(buffers)
        passed_on, deadline = 0, None
        reported: set[int] = set()
        while open_fds or any(w.poll() is None for w in self.workers):
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
                    os.close(fd)
                buffers[fd] += chunk
                *lines, buffers[fd] = buffers[fd].split(b"\n")
                for line in lines:
                    self._message(line, on_trial)
            for number, worker in enumerate(self.workers, 1):
                code = worker.poll()
                if code is not None and number not in reported:
                    reported.add(number)
                    if code != 0 and stop.signum is None:
                        self.lost.append((number, code))
                        on_lost()
        if stop.signum is not None:
            return "interrupted"
        if len(self.lost) == len(self.workers):
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
        for worker in self.workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)


# -- starting a worker --------------------------------------------------------------------------


def _fork(work: Work, number: int, threads: int, close: tuple[int, ...]) -> _Worker | None:
    """Worker `number` forked from this process; None where fork fails (out of processes or
    memory: the caller starts one instead)."""
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):  # or the child would print them again
        with contextlib.suppress(Exception):
            stream.flush()
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the worker: never returns into the study process's code
        code = 70
        try:
            os.close(read)
            for fd in close:
                with contextlib.suppress(OSError):
                    os.close(fd)
            os.setsid()  # signals reach workers through the pool, once
            name_this_process(WORKER_NAME)
            code = work_trials(work, number, threads, parent, _pipe_say(write))
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)
    os.close(write)
    status: list[int] = []

    def poll() -> int | None:
        if not status:
            done, how = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(os.waitstatus_to_exitcode(how))
        return status[0] if status else None

    return _Worker(pid, read, poll)


def _spawn(config: dict[str, Any], number: int, threads: int) -> _Worker:
    """Worker `number` as a fresh `python -m hpexp.workers` process, told what to do on stdin."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict.fromkeys(BLAS_THREADS, str(threads))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpexp.workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,  # signals reach workers through the pool, once
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    line = {**config, "worker": number, "threads": threads, "parent": os.getpid()}
    proc.stdin.write((json.dumps(line) + "\n").encode())
    proc.stdin.close()
    return _Worker(proc.pid, os.dup(proc.stdout.fileno()), proc.poll)


def _pipe_say(fd: int) -> Callable[[dict[str, Any]], None]:
    def say(message: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(message) + "\n").encode())

    return say


def _stdout_say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- a worker -----------------------------------------------------------------------------------


def work_trials(
    work: Work, number: int, threads: int, parent: int, say: Callable[[dict[str, Any]], None]
) -> int:
    """The body of worker `number`: train the study's trials until its budget, its timeout or
    a signal; `say` each finished trial and, at the end, why it stopped. Returns the exit
    code."""
    from threadpoolctl import threadpool_limits

    from hpexp.errors import HpexpError
    from hpexp.nn._memory import keep_freed_memory
    from hpexp.search.objective import Objective
    from hpexp.search.runner import join_study, optimize, quiet_optuna
    from hpexp.search.states import trial_status
    from hpexp.search.stop import signals_request

    stop = StopRequest()
    with quiet_optuna(), signals_request(stop):
        # stop (SIGTERM, a clean stop) when the study process dies, even by kill -9
        if not die_with_parent(parent):  # it died before that was set
            os.kill(os.getpid(), signal.SIGTERM)
        try:
            study = join_study(work.spec, number, work.config.get("heartbeat"))
            objective = Objective(work.spec, work.dataset, work.models, stop)
            with keep_freed_memory(), threadpool_limits(threads, "blas"):
                reason = optimize(
                    study,
                    work.spec,
                    objective,
                    n_trials=work.config.get("n_trials"),
                    timeout=work.config.get("timeout"),
                    on_trial=lambda t: say({"trial": t.number, "status": trial_status(t)}),
                )
        except HpexpError as e:
            print(f"hpexp: error: worker {number}: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 128 + (stop.signum or signal.SIGINT)
    say({"stopped": reason})
    return 0


def main() -> int:
    """A worker started as `python -m hpexp.workers`: its orders come as one JSON line on
    stdin; it rebuilds the study's spec, dataset and model folder from the storage."""
    config = json.loads(sys.stdin.readline())
    from hpexp.errors import HpexpError
    from hpexp.search.factories import models_root
    from hpexp.search.objective import ModelFiles
    from hpexp.search.runner import reopen_study
    from hpexp.search.spec import study_dataset

    try:
        spec, _ = reopen_study(config["study"], config["storage"])
        work = Work(
            spec,
            study_dataset(spec.dataset),
            ModelFiles(models_root(spec.storage) / spec.name),
            config,
        )
    except HpexpError as e:
        print(f"hpexp: error: worker {config['worker']}: {e}", file=sys.stderr)
        return 2
    return work_trials(
        work, int(config["worker"]), int(config["threads"]), int(config["parent"]), _stdout_say
    )


if __name__ == "__main__":
    raise SystemExit(main())
