"""The pieces of scaling out, without processes: worker counts, sampler streams, storage
URLs, the budget counted with running trials, trials of dead workers."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpexp.errors import SpecError
from hpexp.search import runner
from hpexp.search.factories import StaleTrials, make_storage, storage_kind
from hpexp.search.spec import check_workers, load_spec
from hpexp.search.states import INTERRUPTED, retry_of, trial_status
from hpexp.workers import threads_per_worker

from .conftest import tiny

CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    "value, expected", [(1, 1), ("3", 3), ("auto", CORES), (4 * CORES, 4 * CORES)]
)
def test_worker_counts(value, expected) -> None:
    assert check_workers(value) == expected


@pytest.mark.parametrize("value", [0, -2, 4 * CORES + 1, "lots", 1.5, True, None])
def test_bad_worker_counts(value) -> None:
    with pytest.raises(SpecError, match="auto"):
        check_workers(value)


def test_workers_times_threads_never_exceed_the_cores() -> None:
    for n in range(1, 4 * CORES + 1):
        assert n * threads_per_worker(n) <= max(CORES, n)
        assert threads_per_worker(n) >= 1


def test_workers_is_not_part_of_a_study_s_identity() -> None:
    from hpexp.search.identity import identity

    assert identity(load_spec(tiny(workers=1))) == identity(load_spec(tiny(workers=2)))


def test_every_process_but_the_first_of_a_fresh_study_has_its_own_stream() -> None:
    assert runner._stream(0, 0) == ()  # a fresh study's first process: the study's seed
    streams = {runner._stream(0, w) for w in range(1, 5)} | {runner._stream(7, 0)}
    assert len(streams) == 5 and () not in streams


def test_workers_propose_different_first_configurations(workdir: Path) -> None:
    spec = load_spec(tiny(sampler={"name": "random", "seed": 3}))
    runner.open_study(spec)
    firsts = []
    for worker in (1, 2, 3):
        study = runner.join_study(spec, worker)
        trial = study.ask()
        firsts.append(params := runner.suggest(trial, spec))
        study.tell(trial, state=TrialState.FAIL)
        assert params
    assert len({tuple(sorted(p.items())) for p in firsts}) == 3


@pytest.mark.parametrize(
    "url, kind",
    [("optuna.journal", "journal"), ("sqlite:///x.db", "rdb"), ("postgresql://u@h/db", "rdb"),
     ("grpc://127.0.0.1:13000", "grpc")],
)  # fmt: skip
def test_storage_kinds(url: str, kind: str) -> None:
    assert storage_kind(url) == kind


def test_a_grpc_url_without_a_port_is_one_line() -> None:
    with pytest.raises(SpecError, match="grpc://HOST:PORT"):
        make_storage("grpc://somewhere")


@pytest.mark.slow
def test_a_database_without_a_driver_names_the_fix() -> None:
    with pytest.raises(SpecError) as e:
        make_storage("mysql+nosuchdriver://u:secret@127.0.0.1/db")
    assert "secret" not in str(e.value) and "***" in str(e.value)


@pytest.mark.slow
def test_sqlite_storage_has_heartbeats_and_re_queues_a_dead_worker_s_trial(
    workdir: Path,
) -> None:
    spec = load_spec(tiny(storage="sqlite:///o.db"))
    study = runner.open_study(spec, heartbeat=1)
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, StaleTrials)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(trial._trial_id)
    import time

    time.sleep(4.5)  # 3 heartbeats missed (SQLite keeps whole seconds)
    failed = runner._fail_stale(study)
    assert [t.number for t in failed] == [trial.number]
    trials = study.get_trials(deepcopy=False)
    assert trial_status(trials[0]) == "interrupted"  # no reason of its own: its worker died
    assert [retry_of(t) for t in trials] == [None, trial.number]
    assert trials[1].state == TrialState.WAITING and trials[1].params == trials[0].params
    assert runner._fail_stale(study) == []  # told once


def test_the_budget_counts_running_trials(workdir: Path) -> None:
    spec = load_spec(tiny(budget={"n_trials": 3}))
    study = runner.open_study(spec)
    for _ in range(2):
        t = study.ask()
        study.tell(t, 0.5)
    study.ask()  # running
    assert runner.budget_state(study) == (2, 1)


def test_an_interrupted_trial_is_re_queued_once(workdir: Path) -> None:
    spec = load_spec(tiny())
    study = runner.open_study(spec)
    t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    t.set_user_attr("fail_reason", INTERRUPTED)
    study.tell(t, state=TrialState.FAIL)
    assert runner.recover_dead(study, spec) == 1
    assert runner.recover_dead(study, spec) == 0  # its re-run is queued: not again
    assert [retry_of(x) for x in study.trials] == [None, 0]


def test_a_study_whose_seeds_drew_numbers_another_way_is_not_resumed() -> None:
    from hpexp.nn.streams import SCHEME
    from hpexp.search.identity import check_identity, identity

    spec = load_spec(tiny())
    stored = identity(spec)
    assert stored["random_streams"] == SCHEME
    check_identity(spec, stored)  # the same scheme: resumed
    older = {k: v for k, v in stored.items() if k != "random_streams"}
    with pytest.raises(SpecError, match="different random_streams"):
        check_identity(spec, older)
