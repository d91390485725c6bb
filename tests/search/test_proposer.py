"""The proposer: the next trial is sampled, checked and queued while the current one trains."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpexp.search.proposer import Proposer
from hpexp.search.runner import open_study, optimize, quiet_optuna
from hpexp.search.spec import load_spec
from hpexp.search.stop import StopRequest

from .conftest import params_key, run, searched, tiny

#: Every test here runs a whole study (or shares one a fixture runs).
pytestmark = pytest.mark.slow


def _opened(n_trials: int = 4):
    spec = load_spec(tiny(budget={"n_trials": n_trials}))
    with quiet_optuna():
        return spec, open_study(spec)


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow
def test_ready_queues_one_trial_with_its_parameters(workdir: Path) -> None:
    spec, study = _opened()
    proposer = Proposer.start(study, spec, 4, ())
    assert proposer is not None
    try:
        status, duplicates = proposer.ready(StopRequest())
        assert (status, duplicates) == ("ready", [])
        (queued,) = study.get_trials(deepcopy=False)
        assert queued.state == TrialState.WAITING
        assert {"learning_rate", "iterations", "hidden_layers", "activation"} <= set(queued.params)
        status, _ = proposer.ready(StopRequest())  # one is queued: nothing more is asked
        assert status == "ready" and len(study.get_trials(deepcopy=False)) == 1
    finally:
        proposer.close()
    assert _states(study) == ["WAITING"]


def test_ahead_queues_the_next_trial_within_the_budget(workdir: Path) -> None:
    spec, study = _opened(n_trials=2)
    proposer = Proposer.start(study, spec, 2, ())
    assert proposer is not None
    try:
        for _ in range(2):
            assert proposer.ready(StopRequest())[0] == "ready"
            study.ask()  # takes the queued trial, as the training process does
            proposer.ahead()
        # two running trials fill a budget of two: nothing more is queued
        assert proposer.ready(StopRequest())[0] == "budget"
    finally:
        proposer.close()
    assert _states(study) == ["RUNNING", "RUNNING"]


def test_a_dead_proposer_means_inline_sampling(workdir: Path) -> None:
    spec, study = _opened()
    proposer = Proposer.start(study, spec, 4, ())
    assert proposer is not None
    os.kill(proposer.pid, signal.SIGKILL)
    assert proposer.ready(StopRequest()) == ("inline", [])
    proposer.close()  # reaped; closing twice is harmless
    proposer.close()


def test_the_proposer_ends_with_the_study(workdir: Path) -> None:
    spec, study = _opened()
    proposer = Proposer.start(study, spec, 4, ())
    assert proposer is not None
    proposer.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(proposer.pid, os.WNOHANG)  # reaped: no zombie, no orphan


@pytest.mark.slow
def test_a_study_is_the_same_sequence_every_time(workdir: Path) -> None:
    first = searched(tiny(budget={"n_trials": 6}))
    (workdir / "again").mkdir()
    os.chdir(workdir / "again")
    second = searched(tiny(budget={"n_trials": 6}))
    keys = [[params_key(t.params) for t in s.trials] for s in (first, second)]
    assert keys[0] == keys[1]
    assert len(set(keys[0])) == 6  # no configuration twice
    assert _states(first) == ["COMPLETE"] * 6  # nothing left queued at the budget


@pytest.mark.slow
def test_a_timeout_keeps_the_queued_trial_for_the_next_run(studydir: Path) -> None:
    spec, study = _opened(n_trials=50)
    from hpexp.search.factories import models_root
    from hpexp.search.objective import ModelFiles, Objective
    from hpexp.search.spec import study_dataset

    models = ModelFiles(models_root(spec.storage) / spec.name)
    objective = Objective(spec, study_dataset(spec.dataset), models)
    with quiet_optuna():
        reason = optimize(study, spec, objective, n_trials=50, timeout=0.5)
    assert reason == "timeout"
    trials = study.get_trials(deepcopy=False)
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].number == len(trials) - 1
    resumed = run(tiny(budget={"n_trials": len(trials) + 1}))
    again = resumed.study.trials[waiting[0].number]
    assert again.state == TrialState.COMPLETE
    assert again.params == waiting[0].params
    assert not [t for t in resumed.study.trials if t.state == TrialState.WAITING]
