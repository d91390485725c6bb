"""Trial tables and the study summary: statuses told apart, Pareto marks, every trial listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import hpexp
from hpexp import StudyResult
from hpexp.report.summary import all_trials, counts_line, summary, top_trials
from hpexp.report.tables import compare, trials_frame
from hpexp.search.objective import ModelFiles

SPACE = {
    "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}
DOC: dict[str, Any] = {
    "name": "tab",
    "dataset": {"name": "iris"},
    "search": {
        "learning_rate": {"float": [0.001, 1.0], "log": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "pruner": {"name": "none"},
    "budget": {"n_trials": 10},
}
DIVERGED = "diverged: the cost became NaN at iteration 120; try a smaller learning rate"
# (state, fail_reason or None, values): trial k gets learning_rate 0.01 * (k + 1)
SINGLE = [
    (TrialState.COMPLETE, None, [0.80]),
    (TrialState.COMPLETE, None, [0.95]),
    (TrialState.PRUNED, None, None),
    (TrialState.FAIL, "interrupted", None),
    (TrialState.FAIL, "duplicate of trial 0", None),
    (TrialState.FAIL, "duplicate of trial 1", None),
    (TrialState.FAIL, DIVERGED, None),
    (TrialState.COMPLETE, None, [0.90]),
]
STATUSES = ["complete", "complete", "pruned", "interrupted", "duplicate", "duplicate", "failed"]
# (val_accuracy: maximize, n_params: minimize): 0, 1 and 3 on the front, 2 dominated by 1
PAIRS = [(0.90, 50.0), (0.95, 80.0), (0.93, 90.0), (0.70, 20.0)]


def _params(k: int) -> dict[str, Any]:
    return {"learning_rate": 0.01 * (k + 1), "activation": ("relu", "tanh")[k % 2]}


def _add(study: optuna.Study, k: int, state: TrialState, reason: str | None, values: Any) -> None:
    attrs: dict[str, Any] = {"record": {"stop_reason": "iterations", "iterations_run": 10 * k}}
    if reason:
        attrs["fail_reason"] = reason
    if values:
        metrics = {"val_accuracy": values[0], "test_accuracy": values[0] - 0.05}
        attrs["metrics"] = metrics | ({"n_params": values[1]} if len(values) > 1 else {})
    trial = create_trial(
        state=state, values=values, params=_params(k), distributions=SPACE, user_attrs=attrs
    )
    study.add_trial(trial)


def single_study() -> optuna.Study:
    """Trials of every kind, the last one still running."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("mlflow_experiment_id", "7")  # ui_url needs no MLflow store
    for k, (state, reason, values) in enumerate(SINGLE):
        _add(study, k, state, reason, values)
    study.ask(SPACE)  # a running trial
    return study


def pareto_study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("mlflow_experiment_id", "8")
    for k, values in enumerate(PAIRS):
        _add(study, k, TrialState.COMPLETE, None, list(values))
    _add(study, len(PAIRS), TrialState.PRUNED, None, None)
    return study


def result(study: optuna.Study, tmp_path: Path, **changes: Any) -> StudyResult:
    """The study as hpexp shows it, its MLflow runs known without asking MLflow."""
    doc = {**DOC, "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}, **changes}
    runs = {t.number: f"run{t.number}" for t in study.trials}
    return StudyResult(hpexp.load_spec(doc), study, ModelFiles(tmp_path / "models"), runs)


@pytest.fixture
def single(tmp_path: Path) -> StudyResult:
    return result(single_study(), tmp_path)


@pytest.fixture
def pareto(tmp_path: Path) -> StudyResult:
    objective = [{"metric": "val_accuracy"}, {"metric": "n_params"}]
    return result(pareto_study(), tmp_path, name="tab2", objective=objective)


def test_trials_frame_has_status_after_state() -> None:
    frame = trials_frame(single_study(), ["val_accuracy"])
    assert list(frame.columns[:4]) == ["number", "state", "status", "value"]
    assert list(frame["status"]) == [*STATUSES, "complete", "running"]
    assert list(frame["state"])[3:5] == ["FAIL", "FAIL"]  # Optuna's name is kept
    assert frame.loc[6, "fail_reason"] == DIVERGED
    assert frame.loc[1, "val_accuracy"] == 0.95  # final metrics and record fields as columns
    assert frame.loc[1, "stop_reason"] == "iterations" and frame.loc[2, "iterations_run"] == 20
    assert not {"metrics", "record"} & set(frame.columns)
    assert pd.isna(frame.loc[0, "fail_reason"])


def test_empty_frame_has_the_columns() -> None:
    frame = trials_frame(optuna.create_study(), ["val_accuracy"])
    assert {"number", "state", "status", "value"} <= set(frame.columns)


def test_compare_uses_completed_trials_only() -> None:
    frame = trials_frame(single_study(), ["val_accuracy"])
    table = compare(frame, "activation", "val_accuracy", "maximize")
    assert table["count"].sum() == 3
    with pytest.raises(hpexp.HpexpError) as info:
        compare(frame, "nope", "val_accuracy", "maximize")
    assert "status" not in str(info.value).split("columns: ")[1].split(", ")


def test_counts_line_tells_statuses_apart(single: StudyResult) -> None:
    assert counts_line(single) == (
        "study 'tab': 9 trials (3 complete, 1 pruned, 1 failed, 1 interrupted and re-run, "
        "2 duplicate proposals skipped, 1 running)"
    )


def test_counts_line_names_rare_statuses_only_when_present(pareto: StudyResult) -> None:
    assert counts_line(pareto) == "study 'tab2': 5 trials (4 complete, 1 pruned, 0 failed)"


def test_summary_single_objective(single: StudyResult) -> None:
    text = summary(single)
    assert counts_line(single) in text
    top = top_trials(single)
    assert list(top.columns) == [
        "number",
        "val_accuracy",
        "test_accuracy",
        "learning_rate",
        "activation",
        "duration_s",
    ]
    assert list(top["number"]) == [1, 7, 0]
    assert "pareto" not in text
    assert "best trial 1: val_accuracy 0.9500; test_accuracy 0.9000" in text
    assert "MLflow run run1" in text and "/#/experiments/7/" in text


def test_summary_multi_objective_marks_the_pareto_front(pareto: StudyResult) -> None:
    top = top_trials(pareto)
    assert list(top.columns[:4]) == ["number", "val_accuracy", "n_params", "pareto"]
    assert list(top["number"]) == [1, 2, 0, 3]  # by val_accuracy, best first
    assert list(top["pareto"]) == ["*", "", "*", "*"]
    assert list(top["n_params"]) == [80.0, 90.0, 50.0, 20.0]
    lines = summary(pareto).splitlines()
    header = next(line for line in lines if line.lstrip().startswith("number"))
    assert header.split()[:4] == ["number", "val_accuracy", "n_params", "pareto"]


def test_all_trials_lists_every_trial(single: StudyResult) -> None:
    lines = all_trials(single).splitlines()
    assert lines[0] == counts_line(single)
    header, rows = lines[1].split(), lines[2:]
    assert header == [
        "number",
        "status",
        "val_accuracy",
        "learning_rate",
        "activation",
        "fail_reason",
        "duration_s",
    ]
    assert len(rows) == 9
    assert [row.split()[1] for row in rows] == [*STATUSES, "complete", "running"]
    assert "duplicate of trial 0" in rows[4]
    assert "diverged: the cost became NaN at iter..." in rows[6]  # shortened to 40
    assert DIVERGED not in "\n".join(rows)


def test_all_trials_multi_objective_and_empty(pareto: StudyResult, tmp_path: Path) -> None:
    lines = all_trials(pareto).splitlines()
    assert lines[1].split()[:4] == ["number", "status", "val_accuracy", "n_params"]
    assert len(lines) == 2 + 5
    empty = optuna.create_study(directions=["maximize"] * 2)
    assert all_trials(result(empty, tmp_path)).splitlines()[1:] == ["no trials yet"]


def test_summary_without_completed_trials(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("mlflow_experiment_id", "9")
    _add(study, 0, TrialState.FAIL, "interrupted", None)
    text = summary(result(study, tmp_path))
    assert "1 trials (0 complete, 0 pruned, 0 failed, 1 interrupted and re-run)" in text
    assert "no completed trial yet" in text
