"""The next trial sampled while the current one trains.

Sampling a trial (TPE over the study's history, then a storage write per parameter) takes tens
of milliseconds, as long as a few hundred steps of a small network. `Proposer` forks a process
that samples ahead: while this process trains trial n, it asks the study for trial n+1 (with
the sampler and seed stream this process would use), checks that its configuration is new, and
parks it in the study's queue (WAITING) with its parameters set. This process then takes it
with `study.ask()`, as it takes an enqueued trial: the parameters are there, nothing is sampled.

The proposal for trial n+1 sees the trials finished before trial n started (trial n is running,
as with a second worker), so a study proposes the same sequence in every run with the same
seed. A trial is parked only while the study's queue is empty and its budget has room
(finished + running + queued < n_trials): a study stopped by its budget ends with nothing
queued; one stopped by a timeout or a signal keeps the parked trial queued, and the next run
trains it first. The proposer ignores Ctrl-C and SIGTERM (the process that trains stops it
between trials) and ends when its commands pipe closes, which the kernel does when the process
that trains dies, even by kill -9: a proposal under way is finished and queued first, so that
no trial is left half-asked. Through Optuna's gRPC proxy (whose channels do not survive a
fork), or once the proposer has failed, trials are sampled inline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import traceback
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["PROCESS_NAME", "Proposer"]

#: The proposer's process name (`ps -e`; its command line is its parent's).
PROCESS_NAME = "hpexp-proposer"

#: Seconds to wait for a proposal before sampling inline instead (a stuck storage, say).
PROPOSAL_SECONDS = 120.0


class Proposer:
    """A forked process that keeps the next trial of `study` queued; `None` from `start`
    where it cannot run."""

    def __init__(self, pid: int, commands: int, replies: int, storage: Any) -> None:
        self.pid, self._commands, self._storage = pid, commands, storage
        self._replies = os.fdopen(replies, "rb")
        self._asked = False  # a command is waiting for its reply

    @classmethod
    def start(
        cls, study: optuna.Study, spec: Any, n_trials: int | None, stream: tuple[int, ...]
    ) -> Proposer | None:
        from hpexp.search.factories import storage_kind

        if storage_kind(spec.storage) == "grpc":
            return None
        heartbeat = _heartbeat_seconds(study)
        command_r, command_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare (a limit on processes, memory): sample inline
            for fd in (command_r, command_w, reply_r, reply_w):
                os.close(fd)
            return None
        if pid == 0:  # the proposer: it never returns
            code = 1
            try:
                os.close(command_w)
                os.close(reply_r)
                code = _serve(spec, heartbeat, n_trials, stream, command_r, reply_w)
            finally:
                os._exit(code)
        os.close(command_r)
        os.close(reply_w)
        return cls(pid, command_w, reply_r, study._storage)

    def ready(self, stop: Any) -> tuple[str, list[FrozenTrial]]:
        """Wait until the study's queue holds a trial: ("ready", duplicates) where duplicates
        are proposals skipped as repeats (finished trials to report); ("budget", …) when the
        budget has no room now; ("exhausted", …) when the sampler proposes only repeats;
        ("inline", []) when the proposer cannot answer (sample inline)."""
        if self._commands < 0:
            return "inline", []
        try:
            if not self._asked:  # else the reply to `ahead` says it
                os.write(self._commands, b"want\n")
            self._asked = False
            with stop.interruptible():
                ready, _, _ = select.select([self._replies], [], [], PROPOSAL_SECONDS)
            line = self._replies.readline() if ready else b""
            answer = json.loads(line)
        except (OSError, ValueError):
            self.close()
            return "inline", []
        trials = [self._storage.get_trial(trial_id) for trial_id in answer["duplicates"]]
        return str(answer["status"]), trials

    def ahead(self) -> None:
        """This process took a trial from the queue: park the next one while it trains."""
        if self._commands >= 0:
            try:
                os.write(self._commands, b"ahead\n")
                self._asked = True
            except OSError:
                self.close()

    def close(self) -> None:
        """Stop the proposer (after the proposal it is making, if any) and reap it."""
        if self._commands >= 0:
            os.close(self._commands)
            self._commands = -1
            self._replies.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _heartbeat_seconds(study: optuna.Study) -> int | None:
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = study._storage
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


# -- the proposer process ---------------------------------------------------------------------


def _serve(
    spec: Any,
    heartbeat: int | None,
    n_trials: int | None,
    stream: tuple[int, ...],
    commands: int,
    replies: int,
) -> int:
    """Answer each command ("want" one queued trial, "ahead" of the one just taken) once a
    trial is queued, until the commands pipe closes. Its own storage connection; never the
    parent's."""
    from hpexp.lifeline import name_this_process
    from hpexp.search.factories import make_storage
    from hpexp.search.runner import create_study

    name_this_process(PROCESS_NAME)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the training process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        study = create_study(spec, make_storage(spec.storage, heartbeat), stream)
        queue = _Queue(study, spec, n_trials)
        with os.fdopen(commands, "rb") as lines, os.fdopen(replies, "wb") as out:
            for _ in lines:
                status = queue.fill()
                duplicates, queue.duplicates = queue.duplicates, []
                answer = {"status": status, "duplicates": duplicates}
                out.write((json.dumps(answer) + "\n").encode())
                out.flush()
    except BrokenPipeError:
        return 0
    except Exception as e:  # the training process samples inline from now on
        detail = traceback.format_exception_only(type(e), e)[-1].strip()
        print(f"hpexp: warning: sampling ahead stopped ({detail}); trials are sampled inline",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


class _Queue:
    """Keeps one proposed trial in the study's queue, within the budget."""

    def __init__(self, study: optuna.Study, spec: Any, n_trials: int | None) -> None:
        self.study, self.spec, self.n_trials = study, spec, n_trials
        self.duplicates: list[int] = []  # trial ids skipped as repeats, not yet reported
        self.in_a_row = 0
        self.exhausted = False

    def fill(self) -> str:
        """Queue a proposal unless one is queued: "ready", "budget" or "exhausted"."""
        from hpexp.search.runner import MAX_DUPLICATES_IN_A_ROW, ask, host_lock, twin
        from hpexp.search.states import DUPLICATE, counts_against_budget

        if self.exhausted:
            return "exhausted"
        with host_lock(self.spec):
            while True:
                trials = self.study.get_trials(deepcopy=False)
                if any(t.state == TrialState.WAITING for t in trials):
                    return "ready"
                taken = sum(counts_against_budget(t) or not t.state.is_finished() for t in trials)
                if self.n_trials is not None and taken >= self.n_trials:
                    return "budget"
                trial, params = ask(self.study, self.spec, random_proposal=self.in_a_row > 0)
                repeat = twin(self.study, trial, params)
                if repeat is None:
                    self.in_a_row = 0
                    self.study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
                    return "ready"
                trial.set_user_attr("fail_reason", f"{DUPLICATE} of trial {repeat}")
                self.study.tell(trial, state=TrialState.FAIL)
                self.duplicates.append(trial._trial_id)
                self.in_a_row += 1
                if self.in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                    self.exhausted = True
                    return "exhausted"
