"""`TrialSyncedJournal`: the journal Optuna writes, synced to disk once per finished trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

import hpexp.search.journal_file as journal_file
from hpexp.search.journal_file import TrialSyncedJournal


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    trial.suggest_categorical("act", ["relu", "tanh"])
    trial.set_user_attr("note", "é")
    for step in range(5):
        trial.report(x * step, step)
    return x * x


def test_one_fsync_per_finished_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = journal_file.os.fsync
    monkeypatch.setattr(journal_file.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    storage = optuna.storages.JournalStorage(TrialSyncedJournal(str(tmp_path / "j.journal")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    assert len(synced) == 1  # the study's creation
    study.optimize(objective, n_trials=3)  # ~10 records per trial
    assert len(synced) == 1 + 3
    study.enqueue_trial({"x": 0.5, "act": "relu"})  # a queued trial is not finished: no sync
    assert len(synced) == 4
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.5},
            distributions={"x": optuna.distributions.FloatDistribution(-2, 2)},
            value=0.25,
        )
    )  # added finished: synced
    assert len(synced) == 5


def test_optuna_reads_it_as_its_own_journal(tmp_path: Path) -> None:
    path = str(tmp_path / "j.journal")
    storage = optuna.storages.JournalStorage(TrialSyncedJournal(path))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(objective, n_trials=4)
    again = optuna.load_study(
        study_name="s", storage=optuna.storages.JournalStorage(JournalFileBackend(path))
    )
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.intermediate_values for t in again.trials] == [
        t.intermediate_values for t in study.trials
    ]
    assert [t.user_attrs for t in again.trials] == [t.user_attrs for t in study.trials]
