"""The writer's shortcut: a trial it finished and has not written has no run, unless another
process took the study's MLflow lock since the writer last used it. The lock file counts its
uses, so the writer searches MLflow only then (or after a write of its own failed)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from hpexp.search.objective import ModelFiles
from hpexp.search.spec import load_spec
from hpexp.study import _syncer, models_root
from hpexp.sync import Syncer

from ..search.conftest import searched, tiny


@pytest.fixture
def syncers(studydir: Path) -> tuple[Syncer, Syncer, list[int]]:
    """Two syncers of one finished 4-trial study (as two processes would hold them), the
    first opened, and a count of the first's searches for trial runs."""
    doc = tiny(budget={"n_trials": 4})
    study = searched(doc)
    # an absolute MLflow URI, as `hpexp` makes it: MLflow keeps one store per URI string per
    # process, and "sqlite:///mlflow.db" would stay this folder's for later tests
    spec = dataclasses.replace(load_spec(doc), tracking_uri=f"sqlite:///{studydir / 'mlflow.db'}")
    models = ModelFiles(models_root(spec.storage) / spec.name)
    mine, other = (_syncer(spec, study, models)[0] for _ in range(2))
    mine.open()
    searches: list[int] = []
    search = mine.projection.trial_runs

    def counted(number: int | None = None):  # type: ignore[no-untyped-def]
        searches.append(-1 if number is None else number)
        return search(number)

    mine.projection.trial_runs = counted  # type: ignore[method-assign]
    return mine, other, searches


def test_searches_only_after_another_process_took_the_lock(
    syncers: tuple[Syncer, Syncer, list[int]],
) -> None:
    mine, other, searches = syncers
    mine.trials({0}, unwritten=True)
    assert searches == []  # nobody took the lock since it opened the study's run
    with other.lock():  # say, `hpexp sync` in another process
        other.trials({1})  # writes trial 1's run
    mine.trials({1, 2}, unwritten=True)
    assert searches == [1, 2]  # finds trial 1's run and writes only trial 2's
    mine.trials({3}, unwritten=True)
    assert searches == [1, 2]
    runs = other.projection.trial_runs()
    assert {n: len(found) for n, found in runs.items()} == {0: 1, 1: 1, 2: 1, 3: 1}


def test_searches_again_after_a_failed_write(syncers: tuple[Syncer, Syncer, list[int]]) -> None:
    mine, _, searches = syncers
    with pytest.raises(RuntimeError), mine.lock():
        raise RuntimeError("MLflow went away mid-write")
    mine.trials({0}, unwritten=True)
    assert searches == [0]
    mine.trials({1}, unwritten=True)
    assert searches == [0]
    # an error caught inside the lock counts too
    with mine.lock(), contextlib.suppress(RuntimeError), mine.lock():
        raise RuntimeError("MLflow went away mid-write")
    mine.trials({2}, unwritten=True)
    assert searches == [0, 2]


def test_without_the_promise_it_always_searches(
    syncers: tuple[Syncer, Syncer, list[int]],
) -> None:
    mine, _, searches = syncers
    mine.trials({0, 1})
    assert searches == [0, 1]
