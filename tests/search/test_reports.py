"""Reports written behind the training: the same pruning decisions as Optuna's own
`Trial.report` / `Trial.should_prune`, and every value in the storage after `flush()`."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpexp.search.journal_file import TrialSyncedJournal, append_trial_records
from hpexp.search.reports import Reports

CURVES = [[0.1 * k + 0.02 * i for k in range(10)] for i in range(6)]
LATE = [0.01 * k for k in range(10)]  # worse than every other trial from step 1 on


def study_with_history(
    pruner: optuna.pruners.BasePruner, storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    study = optuna.create_study(
        study_name="s", direction="maximize", pruner=pruner, storage=storage
    )  # hyperband: brackets by name
    for curve in CURVES:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            trial.should_prune()  # successive halving marks the rungs a trial reached
        study.tell(trial, curve[-1])
    return study


@pytest.mark.parametrize(
    "pruner",
    [
        lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9),
        lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2),
    ],
)
@pytest.mark.parametrize("journal", [False, True], ids=["memory", "journal"])
def test_the_same_decisions_as_optuna(pruner, journal, tmp_path: Path) -> None:
    storage = journal_storage(tmp_path / "optuna.journal") if journal else None
    ours, theirs = study_with_history(pruner(), storage), study_with_history(pruner())
    a, b = ours.ask(), theirs.ask()
    reports = Reports()
    reports.start(a)
    decided = []
    for step, value in enumerate(LATE):
        reports.report(step, value)
        b.report(value, step)
        decided.append((reports.should_prune(), b.should_prune()))
    reports.flush()
    assert [x for x, _ in decided] == [y for _, y in decided]
    assert any(x for x, _ in decided)  # the test can fail: something was pruned
    stored = ours._storage.get_trial(a._trial_id)
    assert stored.intermediate_values == dict(enumerate(LATE))
    if journal:  # what another process reads from the file
        again = journal_storage(tmp_path / "optuna.journal")
        assert again.get_trial(a._trial_id).intermediate_values == dict(enumerate(LATE))


def test_a_journal_gets_the_curve_in_one_append(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(storage=journal_storage(path))
    trial = study.ask()
    reports = Reports()
    reports.start(trial)
    before = path.read_text().count("\n")
    for step, value in enumerate(LATE):
        reports.report(step, value)
        reports.report(step, 99.0)  # a step reported already is kept as it was
    assert path.read_text().count("\n") == before  # nothing written while training
    reports.flush()
    assert path.read_text().count("\n") == before + len(LATE)
    study.tell(trial, 1.0)
    assert journal_storage(path).get_trial(trial._trial_id).intermediate_values == dict(
        enumerate(LATE)
    )


def test_the_curve_and_the_trials_records_go_in_one_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(storage=journal_storage(path))
    trial = study.ask()
    reports = Reports()
    reports.start(trial)
    for step, value in enumerate(LATE):
        reports.report(step, value)
    appends, real = [], TrialSyncedJournal.append_logs

    def append_logs(self: TrialSyncedJournal, logs: list) -> None:
        appends.append(len(logs))
        real(self, logs)

    monkeypatch.setattr(TrialSyncedJournal, "append_logs", append_logs)
    attrs = {"record": {"stop_reason": "completed"}, "metrics": {"val": 0.5}}
    reports.flush(user_attrs=attrs)
    assert appends == [len(LATE) + len(attrs)]
    read = journal_storage(path).get_trial(trial._trial_id)
    assert read.intermediate_values == dict(enumerate(LATE))
    assert read.user_attrs == attrs


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(TrialSyncedJournal(str(path)))


def test_a_failed_write_is_raised_at_flush() -> None:
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, 1.0)  # finished: the storage refuses more values
    reports = Reports()
    reports.start(trial)
    reports.report(0, 0.5)
    with pytest.raises(Exception, match=r"(?i)finished|complete|updat"):
        reports.flush()
    reports.flush()  # told once


@pytest.mark.parametrize("journal", [False, True], ids=["memory", "journal"])
def test_a_trials_records_in_one_write(journal: bool, tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(storage=journal_storage(path) if journal else None)
    trial = study.ask()
    attrs = {"record": {"stop_reason": "completed", "seeds": [1, 2]}, "metrics": {"val": 0.5}}
    append_trial_records(study._storage, trial._trial_id, values={3: 0.25}, user_attrs=attrs)
    study.tell(trial, 1.0)
    read = (journal_storage(path) if journal else study._storage).get_trial(trial._trial_id)
    assert read.user_attrs == attrs
    assert read.intermediate_values == {3: 0.25}
    if journal:
        assert path.read_text().count('"user_attr"') == len(attrs)
