"""A trial's learning curve reported to Optuna without making training wait for the storage.

On a database each report is a round trip and a commit (milliseconds), and a quickstart trial
reports up to 80 validation points. `Reports` keeps the trial's reported values in memory and
asks the study's pruner from them, as `Trial.should_prune` does (the same trial, the same
values), while a thread writes them to a database behind the training. `flush()` waits for
the writes; the trial is told only after it. A journal file is written at once: an append
without fsync (see `journal_file`) costs less than handing the value to a thread.

Pruners that compare with completed trials only (median, percentile) and those that compare
with nothing (threshold, none) are asked against an in-memory copy of the study's completed
trials, refreshed when a trial starts, so that a decision reads nothing from the storage
(trials that other workers complete meanwhile count from the next trial on). Pruners that keep
marks in the storage (successive halving, hyperband) get the study itself.
"""

from __future__ import annotations

import copy
import queue
import threading
from typing import Any

import optuna
from optuna.trial import TrialState

from hpexp.search.journal_file import append_trial_records

__all__ = ["IN_MEMORY_PRUNERS", "Reports"]

#: Pruners that read only completed trials (or none) and write nothing to the storage.
IN_MEMORY_PRUNERS = (
    optuna.pruners.MedianPruner,
    optuna.pruners.PercentilePruner,
    optuna.pruners.ThresholdPruner,
    optuna.pruners.NopPruner,
)


class Reports:
    """Intermediate values of one trial at a time: `start(trial)`, `report(step, value)`,
    `should_prune()`, `flush()`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[optuna.storages.BaseStorage, int, int, float]] = (
            queue.Queue()
        )
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._study: optuna.Study | None = None
        self._trial: optuna.trial.FrozenTrial | None = None
        self._view: optuna.Study | None = None  # the completed trials, in memory
        self._copied: set[int] = set()
        self._batch: dict[int, float] | None = None  # a journal file's curve, until flush()

    def start(self, trial: optuna.Trial) -> None:
        study = trial.study
        if self._study is not study:
            self._view, self._copied = None, set()
        self._study = study
        self._trial = study._storage.get_trial(trial._trial_id)
        journal = isinstance(study._storage, optuna.storages.JournalStorage)
        self._batch = {} if journal else None
        if type(study.pruner) in IN_MEMORY_PRUNERS:
            self._refresh_view(study)

    def _refresh_view(self, study: optuna.Study) -> None:
        if self._view is None:
            self._view = optuna.create_study(
                storage=optuna.storages.InMemoryStorage(),
                directions=study.directions,
                pruner=study.pruner,
            )
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number not in self._copied:
                # what these pruners read: state, values, intermediate values (not the
                # trial's records, which Optuna would deep-copy)
                self._view.add_trial(
                    optuna.trial.create_trial(
                        state=t.state, values=t.values, intermediate_values=t.intermediate_values
                    )
                )
                self._copied.add(t.number)

    def report(self, step: int, value: float) -> None:
        """Record `value` at `step` (a step reported already is kept as it was)."""
        assert self._trial is not None and self._study is not None
        if step in self._trial.intermediate_values:
            return
        self._trial.intermediate_values[step] = value
        if self._batch is not None:
            self._batch[step] = value
            return
        self._queue.put((self._study._storage, self._trial._trial_id, step, value))
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="hpexp-reports", daemon=True)
            self._thread.start()

    def should_prune(self) -> bool:
        """The study's pruner on this trial as reported so far (Optuna's `should_prune`)."""
        assert self._trial is not None and self._study is not None
        if self._view is not None and type(self._study.pruner) in IN_MEMORY_PRUNERS:
            return bool(self._study.pruner.prune(self._view, copy.copy(self._trial)))
        storage = self._study._storage
        trial = copy.copy(self._trial)
        trial.system_attrs = storage.get_trial_system_attrs(trial._trial_id)  # pruners' marks
        return bool(self._study.pruner.prune(self._study, trial))

    def flush(self, user_attrs: dict[str, Any] | None = None) -> None:
        """Wait until every report is in the storage, and write the trial's `user_attrs` (on a
        journal file, in the same append as the last reports); raise the error of a write
        that failed."""
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        values = self._batch or {}
        if self._batch is not None:
            self._batch = {}
        if (values or user_attrs) and self._study is not None and self._trial is not None:
            storage, trial_id = self._study._storage, self._trial._trial_id
            append_trial_records(storage, trial_id, values=values, user_attrs=user_attrs)

    def _write(self) -> None:
        while True:
            storage, trial_id, step, value = self._queue.get()
            try:
                if self._error is None:
                    storage.set_trial_intermediate_value(trial_id, step, value)
            except BaseException as e:  # told to the training thread at flush()
                self._error = e
            finally:
                self._queue.task_done()
