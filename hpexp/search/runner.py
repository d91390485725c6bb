"""The search engine: open a study in its Optuna storage, run trials until the study's budget
is reached, and reopen studies later.

Opening a study that exists resumes it: its identity must match the study file (else the run is
refused before anything is written), trials left RUNNING by a dead process on this host are
closed as interrupted and re-queued with the same parameters, and each process samples from a
stream of its own, so a resumed study never replays proposals it already ran. The budget is
the study's: `optimize` stops when the storage holds `n_trials` finished trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
import time
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from hpexp.data import Dataset
from hpexp.data.fingerprint import dataset_fingerprint
from hpexp.errors import SpecError
from hpexp.search.factories import (
    SELF_PLACING,
    StaleTrials,
    make_pruner,
    make_sampler,
    make_storage,
    models_root,
    redact_url,
    stream_seed,
)
from hpexp.search.identity import check_identity, fingerprint, identity
from hpexp.search.objective import Objective, worker_id
from hpexp.search.space import flatten, grid_space, suggest
from hpexp.search.spec import DEFAULT_STORAGE, StudySpec, load_spec
from hpexp.search.states import (
    DUPLICATE,
    INTERRUPTED,
    STATUSES,
    counts_against_budget,
    retry_of,
    trial_status,
)

__all__ = [
    "MAX_DUPLICATES_IN_A_ROW",
    "ask",
    "budget_state",
    "create_study",
    "finished_count",
    "join_study",
    "list_studies",
    "open_storage",
    "open_study",
    "optimize",
    "quiet_optuna",
    "recover_dead",
    "reopen_study",
    "twin",
]

#: A sampler that proposes only configurations already tried this many times in a row has
#: (nearly) exhausted the search space: the study stops.
MAX_DUPLICATES_IN_A_ROW = 20

OnTrial = Callable[[FrozenTrial], None]


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: complete, pruned, or failed for a reason of their
    own (diverged, an error), not interrupted runs or skipped duplicate proposals."""
    return budget_state(study)[0]


def budget_state(study: optuna.Study) -> tuple[int, int]:
    """(trials that count against the budget, trials running now)."""
    finished = running = 0
    for t in study.get_trials(deepcopy=False):
        finished += counts_against_budget(t)
        running += t.state == TrialState.RUNNING
    return finished, running


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at `url`; a missing journal file is an error, not a new empty store."""
    if "://" not in url and not Path(url.removeprefix("journal:")).is_file():
        raise SpecError(f"no study storage at '{url}'; run a study first (hpexp run ...)")
    return make_storage(url)


# -- opening ----------------------------------------------------------------------------------


def open_study(
    spec: StudySpec,
    *,
    worker: int = 0,
    heartbeat: int | None = None,
    dataset: Dataset | None = None,
) -> optuna.Study:
    """Create the study or resume it (identity checked first); returns it ready to optimize.

    `worker` 0 is the process that runs the study; other numbers are workers that join it.
    Each process samples from a stream of its own, except worker 0 of a fresh study, which
    keeps the study's seed (the same seed proposes the same sequence). `heartbeat`: seconds
    between heartbeats on a database storage (see `make_storage`). A new study records the
    fingerprint of `dataset` (see `hpexp.data.fingerprint`), which `hpexp reproduce` checks."""
    storage = make_storage(spec.storage, heartbeat)
    existing = _existing(spec, storage)
    if existing is not None:
        check_identity(spec, existing.user_attrs.get("identity"))
    trials_before = len(existing.trials) if existing is not None else 0
    study = create_study(spec, storage, _stream(trials_before, worker))
    if "identity" not in study.user_attrs:  # new, or its creation was cut short
        _describe(spec, study, dataset)
    with host_lock(spec):
        _recover(study)
        _enqueue_baselines(spec, study)
    return study


def join_study(spec: StudySpec, worker: int, heartbeat: int | None = None) -> optuna.Study:
    """The study opened (by `open_study`) in another process, for worker `worker` of this host."""
    storage = make_storage(spec.storage, heartbeat)
    existing = optuna.load_study(study_name=spec.name, storage=storage)
    return create_study(spec, storage, _stream(len(existing.trials), worker))


def _stream(trials_before: int, worker: int) -> tuple[int, ...]:
    """The sampler stream of this process: none for the first process of a fresh study, else
    one told apart by the study's progress, the worker number, the host and the pid."""
    if trials_before == 0 and worker == 0:
        return ()
    host = zlib.crc32(socket.gethostname().encode())
    return (trials_before, worker, host, os.getpid())


#: The sampler stream each study object was opened with (see `_stream`).
_STREAMS: weakref.WeakKeyDictionary[optuna.Study, tuple[int, ...]] = weakref.WeakKeyDictionary()


def create_study(
    spec: StudySpec, storage: optuna.storages.BaseStorage, stream: tuple[int, ...]
) -> optuna.Study:
    """The study object (created in the storage if new) whose sampler draws from `stream`."""
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec.sampler, spec.seed, _grid(spec), stream),
        pruner=make_pruner(spec.pruner),
        directions=spec.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    _STREAMS[study] = stream
    return study


@contextlib.contextmanager
def host_lock(spec: StudySpec) -> Iterator[None]:
    """Serialise, among this host's processes on one study, what must not interleave: counting
    the budget and asking for a trial, closing and re-queueing the trials of dead processes."""
    folder = models_root(spec.storage) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".ask.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _existing(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    if spec.name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=spec.name, storage=storage)


def _grid(spec: StudySpec) -> dict[str, list] | None:
    return grid_space(spec) if spec.sampler["name"] == "grid" else None


def _describe(spec: StudySpec, study: optuna.Study, dataset: Dataset | None) -> None:
    """Store what the study is: its identity, the study file (no storage or tracking URL:
    those may hold passwords, and they are given on every run) and its data's fingerprint."""
    doc = identity(spec)
    raw = {k: v for k, v in spec.raw.items() if k not in ("storage", "tracking")}
    raw["dataset"] = dict(spec.dataset)  # file paths resolved
    study.set_user_attr("spec", raw)
    study.set_user_attr("fingerprint", fingerprint(doc))
    if dataset is not None:
        study.set_user_attr("dataset_fingerprint", dataset_fingerprint(dataset))
    study.set_user_attr("identity", doc)


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie, dead but not yet waited for
    by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _recover(study: optuna.Study) -> int:
    """Close trials a dead process on this host left RUNNING (on a storage without
    heartbeats), and re-queue every trial interrupted by a stop once with its parameters
    (unless it was re-queued already). Returns how many were re-queued. Call under
    `host_lock`."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    me_host = worker_id().split(":")[0]
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state != TrialState.RUNNING or is_heartbeat_enabled(storage):  # heartbeats do it
            continue
        host, _, pid = str(t.user_attrs.get("worker", "")).partition(":")
        if host == me_host and pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(Exception):  # another process closed it first
                storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {retry_of(t) for t in trials} | set(study.user_attrs.get("retried_trials", []))
    requeue = [  # (a trial failed by the heartbeat check has no reason: Optuna re-queued it)
        t
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("fail_reason") == INTERRUPTED
        and t.number not in retried
    ]
    for t in requeue:
        # a re-run cut short while its values were suggested recorded only some of them: the
        # configuration it was asked to run is in its enqueued (fixed) params
        params = {**t.params, **t.system_attrs.get("fixed_params", {})}
        study.enqueue_trial(params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return len(requeue)


def _enqueue_baselines(spec: StudySpec, study: optuna.Study) -> None:
    if not spec.enqueue or study.user_attrs.get("baselines_enqueued"):
        return
    for values in spec.enqueue:
        study.enqueue_trial(flatten(values), user_attrs={"baseline": True})
    study.set_user_attr("baselines_enqueued", True)


# -- running ----------------------------------------------------------------------------------


def optimize(
    study: optuna.Study,
    spec: StudySpec,
    objective: Objective,
    *,
    n_trials: int | None,
    timeout: float | None = None,
    on_trial: OnTrial = lambda t: None,
) -> str:
    """Ask, train, tell until the study has `n_trials` finished trials (counted in the storage,
    whoever ran them) or `timeout` seconds pass. Calls `on_trial` with each trial this process
    finished. Returns why it stopped: "budget", "timeout" or "exhausted".

    Many processes may run it on one study. A trial starts only while the finished and running
    trials leave room in the budget (counted under a host-wide lock, so workers on one host end
    with exactly `n_trials`; workers on other hosts may add up to one trial each); while the
    running trials fill it, the process waits, in case one of them ends without counting
    (except through the gRPC proxy, which cannot tell whether their workers are alive).

    The next trial is sampled while the current one trains, by a `Proposer` process that
    parks it in the study's queue. A proposal equal to a configuration the study already
    finished or is running is not trained: it is recorded as a `duplicate` (not counted) and
    the next proposal is drawn at random. KeyboardInterrupt (Ctrl-C, SIGTERM) marks the
    running trial interrupted and propagates; the next run re-queues it.
    """
    from hpexp.search.proposer import Proposer

    proposer = Proposer.start(study, spec, n_trials, _STREAMS.get(study, ()))
    try:
        return _optimize(study, spec, objective, n_trials, timeout, on_trial, proposer)
    finally:
        if proposer is not None:
            proposer.close()


def _optimize(
    study: optuna.Study,
    spec: StudySpec,
    objective: Objective,
    n_trials: int | None,
    timeout: float | None,
    on_trial: OnTrial,
    proposer: Any,
) -> str:
    start = time.monotonic()
    in_a_row = 0
    while True:
        objective.stop.check()
        if timeout is not None and time.monotonic() - start >= timeout:
            return "timeout"
        if proposer is not None:
            proposed, duplicates = proposer.ready(objective.stop)
            for frozen in duplicates:
                on_trial(frozen)
            if proposed == "exhausted":
                return "exhausted"
        with host_lock(spec):
            for stale in _fail_stale(study):
                on_trial(stale)  # a dead worker's trial: this process writes its record
            finished, running = budget_state(study) if n_trials is not None else (0, 0)
            if n_trials is not None and finished >= n_trials:
                return "budget"
            room = n_trials is None or finished + running < n_trials
            if not room and not _finds_dead_workers(study):
                return "budget"  # the running trials fill it, and nothing can tell if they end
            asked = ask(study, spec, random_proposal=in_a_row > 0) if room else None
            if asked is not None:
                repeat = twin(study, *asked)
                if repeat is not None:
                    asked[0].set_user_attr("fail_reason", f"{DUPLICATE} of trial {repeat}")
                    frozen = study.tell(asked[0], state=TrialState.FAIL)
        if asked is None:  # the running trials fill the budget: wait for them
            _wait_for_running(study, spec, objective)
            continue
        if proposer is not None:
            proposer.ahead()
        if repeat is None:
            frozen = _run_trial(study, objective, *asked)
        in_a_row = in_a_row + 1 if trial_status(frozen) == "duplicate" else 0
        on_trial(frozen)
        if in_a_row >= MAX_DUPLICATES_IN_A_ROW:
            return "exhausted"


#: Seconds between looks at the study while its running trials fill the budget.
WAIT_SECONDS = 0.5


def _wait_for_running(study: optuna.Study, spec: StudySpec, objective: Objective) -> None:
    with objective.stop.interruptible():
        time.sleep(WAIT_SECONDS)
    recover_dead(study, spec)  # a worker on this host that died leaves its trial to the others


def recover_dead(study: optuna.Study, spec: StudySpec) -> int:
    """Close the trials of dead processes on this host as interrupted and re-queue them."""
    with host_lock(spec):
        return _recover(study)


def _finds_dead_workers(study: optuna.Study) -> bool:
    """Whether a trial left by a dead worker is closed in time: by pid on the journal file
    (one host), by heartbeats on a database; not through the gRPC proxy."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    return isinstance(storage, optuna.storages.JournalStorage) or is_heartbeat_enabled(storage)


def _first_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """On a database: a heartbeat as soon as the trial exists, so that a worker killed before
    its trial starts training is found by the others too."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if is_heartbeat_enabled(storage) and isinstance(storage, BaseHeartbeat):
        storage.record_heartbeat(trial._trial_id)


def _fail_stale(study: optuna.Study) -> list[FrozenTrial]:
    """On a database storage: fail the trials of workers whose heartbeat stopped (Optuna then
    re-queues them through RetryFailedTrialCallback); returns those this process failed."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage) or not isinstance(storage, BaseHeartbeat):
        return []
    optuna.storages.fail_stale_trials(study)
    callback = storage.get_heartbeat_stale_trial_callback()
    if not isinstance(callback, StaleTrials):
        return []
    return [storage.get_trial(trial_id) for trial_id in callback.take()]


def _run_trial(
    study: optuna.Study, objective: Objective, trial: optuna.Trial, params: dict[str, Any]
) -> FrozenTrial:
    """Train `trial` (with a heartbeat on a database storage) and tell the study its outcome."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    try:
        with get_heartbeat_thread(trial._trial_id, study._storage):
            values: Any = objective(trial, params)
        return study.tell(trial, values)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    except KeyboardInterrupt:
        _interrupted(study, trial)
        raise
    except Exception:  # the objective recorded the reason (diverged, error: ...)
        return study.tell(trial, state=TrialState.FAIL)


def ask(study: optuna.Study, spec: StudySpec, random_proposal: bool) -> tuple[Any, dict]:
    """The next trial (the first queued one, else a new one) and its configuration; drawn at
    random after a duplicate proposal."""
    sampler = study.sampler
    if random_proposal and spec.sampler["name"] not in SELF_PLACING:
        number = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.RandomSampler(seed=stream_seed(spec.seed, number))
    try:
        trial = study.ask()
        try:
            _first_heartbeat(study, trial)
            trial.set_user_attr("worker", worker_id())  # how a dead process's trials are found
            return trial, suggest(trial, spec)
        except KeyboardInterrupt:
            _interrupted(study, trial)
            raise
    finally:
        study.sampler = sampler


def twin(study: optuna.Study, trial: optuna.Trial, params: dict[str, Any]) -> int | None:
    """The number of a finished or running trial with the same configuration, unless this
    trial was asked for (an enqueued baseline or a re-run of an interrupted trial)."""
    asked = study._storage.get_trial(trial._trial_id)
    if "baseline" in asked.user_attrs or retry_of(asked) is not None:
        return None
    for t in study.get_trials(deepcopy=False):
        if t.number == trial.number or t.params != params:
            continue
        if t.state == TrialState.RUNNING or counts_against_budget(t):
            return t.number
    return None


def _interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    """Close `trial` as interrupted, even while a second Ctrl-C arrives."""
    for _ in range(3):
        try:
            trial.set_user_attr("fail_reason", INTERRUPTED)
            study.tell(trial, state=TrialState.FAIL)
            return
        except KeyboardInterrupt:
            continue
        except Exception:  # already told, or the storage went away: the next run recovers it
            return


# -- reopening --------------------------------------------------------------------------------


def reopen_study(name: str, storage: str | None = None) -> tuple[StudySpec, optuna.Study]:
    """A study from its storage (default: the embedded journal) and the spec it was made with."""
    storage = storage or DEFAULT_STORAGE
    storage_obj = open_storage(storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        names = optuna.get_all_study_names(storage_obj)
        raise SpecError(
            f"no study named '{name}' in {redact_url(storage)}; "
            f"studies: {', '.join(names) or 'none'}"
        ) from None
    raw = study.user_attrs.get("spec")
    if not isinstance(raw, dict):
        raise SpecError(f"study '{name}' in {redact_url(storage)} was not created by hpexp")
    raw = {k: v for k, v in raw.items() if k not in ("storage", "tracking")}
    spec = load_spec({**raw, "storage": storage})
    origin = (study.user_attrs.get("identity") or {}).get("around_best")
    if origin:  # a study made by --around-best: where it came from is part of what it is
        spec = dataclasses.replace(spec, around_best=origin)
    return spec, study


def list_studies(storage: str | None = None) -> pd.DataFrame:
    """One row per study in the storage: name, trials by status, best value(s), direction(s)."""
    storage = storage or DEFAULT_STORAGE
    columns = ["study", "trials", *STATUSES[:5], "best_value", "direction"]
    if "://" not in storage and not Path(storage.removeprefix("journal:")).is_file():
        return pd.DataFrame(columns=columns)
    rows = []
    storage_obj = make_storage(storage)
    for name in optuna.get_all_study_names(storage_obj):
        study = optuna.load_study(study_name=name, storage=storage_obj)
        trials = study.get_trials(deepcopy=False)
        statuses = [trial_status(t) for t in trials]
        row: dict[str, Any] = {"study": name, "trials": len(trials)}
        row |= {s: statuses.count(s) for s in STATUSES[:5]}
        row["best_value"] = _best_values(study)
        row["direction"] = ",".join(d.name.lower() for d in study.directions)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _best_values(study: optuna.Study) -> Any:
    """The best value; for several objectives, each objective's best over the Pareto front."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    if len(study.directions) == 1:
        return study.best_value
    front = study.best_trials
    best = []
    for i, d in enumerate(study.directions):
        pick = max if d == optuna.study.StudyDirection.MAXIMIZE else min
        best.append(f"{pick(t.values[i] for t in front):.4g}")
    return " / ".join(best)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines and experimental-feature warnings off, for this run only."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            # hpexp runs the heartbeat itself around each trial (see `_run_trial`)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            yield
    finally:
        optuna.logging.set_verbosity(level)
