"""Shared pieces for study tests: a scratch working directory and tiny study documents."""

from __future__ import annotations

import copy
from typing import Any

from mlflow.tracking import MlflowClient

import hpexp
from hpexp.tracking import STATUS_FOR_STATE

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "iris"},
    "fixed": {"optimizer": "adam", "eval_every": 5},
    "search": {
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [20, 60]},
        "hidden_layers": {"int": [1, 2]},
        "hidden_units": {"int": [2, 16], "per_layer": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "pruner": {"name": "none"},
    "budget": {"n_trials": 4},
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A copy of the tiny iris study with top-level keys replaced."""
    doc = copy.deepcopy(TINY)
    doc.update(changes)
    return doc


def run(doc: dict[str, Any], **kwargs: Any) -> hpexp.StudyResult:
    return hpexp.run_study(doc, progress=False, verbose=False, **kwargs)


def child_runs(result: hpexp.StudyResult) -> list:
    client = MlflowClient(result.tracking_uri)
    exp = client.get_experiment_by_name(result.spec.experiment)
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )


def assert_agree(result: hpexp.StudyResult) -> None:
    """Optuna and MLflow tell the same story: one child run per trial, same params and state."""
    runs = {r.info.run_id: r for r in child_runs(result)}
    trials = result.study.trials
    assert len(runs) == len(trials)
    for t in trials:
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["hpexp.trial"] == str(t.number)
        assert run.data.tags["hpexp.state"] == t.state.name
        assert run.info.status == STATUS_FOR_STATE[t.state.name]
        for name, value in t.params.items():
            assert run.data.params[name] == str(value)
