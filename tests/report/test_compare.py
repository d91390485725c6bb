"""`compare`: per-value statistics of a metric, checked against figures worked out by hand.

t quantiles (two-sided 95%): t(1) = 12.706205, t(2) = 4.302653."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import hpexp
from hpexp import StudyResult
from hpexp.report.tables import compare, trials_frame
from hpexp.search.objective import ModelFiles

from ..search.conftest import run, tiny

SPACE = {
    "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}
DOC: dict[str, Any] = {
    "name": "cmp",
    "dataset": {"name": "iris"},
    "search": {
        "learning_rate": {"float": [0.001, 1.0], "log": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "pruner": {"name": "none"},
}
COLUMNS = ["count", "pruned", "mean", "std", "se", "ci_low", "ci_high", "best"]


def add(
    study: optuna.Study,
    activation: str,
    value: float,
    state: TrialState = TrialState.COMPLETE,
    seeds: list[float] | None = None,
    learning_rate: float = 0.01,
) -> None:
    """A trial with final val_accuracy `value` (the mean of `seeds`' values when given) and
    val_cost 1 - value; a pruned trial keeps the metric it had when stopped."""
    metrics = {"val_accuracy": value, "val_cost": 1 - value}
    record: dict[str, Any] = {"seeds": list(range(len(seeds or [0])))}
    if seeds:
        metrics = {"val_accuracy": float(np.mean(seeds)), "val_cost": 1 - float(np.mean(seeds))}
        metrics["val_accuracy_std"] = float(np.std(seeds, ddof=1))  # as the objective does
    done = state == TrialState.COMPLETE
    study.add_trial(
        create_trial(
            state=state,
            value=metrics["val_accuracy"] if done else None,
            params={"learning_rate": learning_rate, "activation": activation},
            distributions=SPACE,
            user_attrs={"metrics": metrics, "record": record},
        )
    )


def as_result(study: optuna.Study, tmp_path: Path) -> StudyResult:
    doc = {**DOC, "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}
    runs = {t.number: f"run{t.number}" for t in study.trials}
    return StudyResult(hpexp.load_spec(doc), study, ModelFiles(tmp_path / "models"), runs)


@pytest.fixture
def study() -> optuna.Study:
    """relu: 0.8, 0.9, 1.0 and a failed trial; tanh: 0.6, 0.7 and one pruned at 0.2."""
    study = optuna.create_study(direction="maximize")
    for value in (0.8, 0.9, 1.0):
        add(study, "relu", value)
    add(study, "relu", 0.0, TrialState.FAIL)
    add(study, "tanh", 0.6)
    add(study, "tanh", 0.2, TrialState.PRUNED)
    add(study, "tanh", 0.7)
    return study


def frame(study: optuna.Study) -> pd.DataFrame:
    return trials_frame(study, ["val_accuracy"])


def test_means_standard_errors_and_t_intervals(study: optuna.Study) -> None:
    table = compare(frame(study), "activation", "val_accuracy", "maximize")
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["relu", "tanh"]  # best mean first
    relu, tanh = table.loc["relu"], table.loc["tanh"]
    # relu: mean 0.9, std 0.1, se 0.1/√3, half width 4.302653 · 0.057735
    expected = [3, 0, 0.9, 0.1, 0.057735, 0.651586, 1.148414, 1.0]
    np.testing.assert_allclose(relu.to_numpy(dtype=float), expected, atol=1e-6)
    # tanh: mean 0.65, std 0.0707107, se 0.05, half width 12.706205 · 0.05
    expected = [2, 1, 0.65, 0.0707107, 0.05, 0.0146898, 1.2853102, 0.7]
    np.testing.assert_allclose(tanh.to_numpy(dtype=float), expected, atol=1e-6)


def test_pruned_trials_are_counted_apart_and_left_out_of_the_statistics(study) -> None:
    table = compare(frame(study), "activation", "val_accuracy", "maximize")
    assert table["pruned"].tolist() == [0, 1]
    assert table.loc["tanh", "mean"] == pytest.approx(0.65)  # not (0.6 + 0.2 + 0.7) / 3
    assert table.loc["tanh", "best"] == pytest.approx(0.7)
    # the failed relu trial is in neither count
    assert table.loc["relu", "count"] + table.loc["relu", "pruned"] == 3


def test_minimized_metric_puts_the_lowest_mean_first(study: optuna.Study) -> None:
    table = compare(frame(study), "activation", "val_cost", "minimize")
    assert list(table.index) == ["relu", "tanh"]
    assert table.loc["relu", "best"] == pytest.approx(0.0)  # 1 - 1.0: the lowest
    assert table.loc["tanh", "mean"] == pytest.approx(0.35)


def test_a_single_trial_has_no_interval_without_repeats() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, "relu", 0.8)
    row = compare(frame(study), "activation", "val_accuracy", "maximize").loc["relu"]
    assert row["count"] == 1 and row["mean"] == pytest.approx(0.8)
    assert all(math.isnan(row[c]) for c in ("std", "se", "ci_low", "ci_high"))


def test_a_single_trial_with_repeats_takes_its_spread_from_the_seeds() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, "relu", 0.0, seeds=[0.8, 0.9, 1.0])  # 3 networks: sample std 0.1
    add(study, "tanh", 0.0, seeds=[0.6, 0.7])  # 2 networks: sample std 0.0707107
    table = compare(frame(study), "activation", "val_accuracy", "maximize")
    expected = [1, 0, 0.9, 0.1, 0.057735, 0.651586, 1.148414, 0.9]
    np.testing.assert_allclose(table.loc["relu"].to_numpy(dtype=float), expected, atol=1e-6)
    expected = [1, 0, 0.65, 0.0707107, 0.05, 0.0146898, 1.2853102, 0.65]
    np.testing.assert_allclose(table.loc["tanh"].to_numpy(dtype=float), expected, atol=1e-6)


def test_with_several_trials_repeats_stay_inside_each_trial() -> None:
    """Trials are the sample: each trial's seed mean counts once."""
    study = optuna.create_study(direction="maximize")
    add(study, "relu", 0.0, seeds=[0.7, 0.9])  # mean 0.8
    add(study, "relu", 0.0, seeds=[1.0, 1.0])  # mean 1.0
    row = compare(frame(study), "activation", "val_accuracy", "maximize").loc["relu"]
    assert row["mean"] == pytest.approx(0.9)
    assert row["std"] == pytest.approx(math.sqrt(0.02))  # of 0.8 and 1.0
    assert row["se"] == pytest.approx(0.1)


def test_numeric_parameters_are_binned_by_quantiles_with_pruned_trials_in_their_bin() -> None:
    study = optuna.create_study(direction="maximize")
    for k in range(8):
        add(study, "relu", 0.5 + k / 20, learning_rate=0.01 * (k + 1))
    add(study, "relu", 0.1, TrialState.PRUNED, learning_rate=0.001)
    table = compare(frame(study), "learning_rate", "val_accuracy", "maximize")
    assert len(table) == 4 and table["count"].tolist() == [2, 2, 2, 2]
    assert table["pruned"].sum() == 1
    lowest = table.index.min()
    assert table.loc[lowest, "pruned"] == 1 and 0.001 in lowest
    two = compare(frame(study), "learning_rate", "val_accuracy", "maximize", bins=2)
    assert two["count"].tolist() == [4, 4]


def test_study_result_compares_its_objective_by_default(study, tmp_path: Path) -> None:
    result = as_result(study, tmp_path)
    expected = compare(result.trials, "activation", "val_accuracy", "maximize")
    pd.testing.assert_frame_equal(result.compare("activation"), expected)
    by_cost = result.compare("activation", "val_cost")  # minimized: its direction from METRICS
    assert by_cost.loc["relu", "best"] == pytest.approx(0.0)


@pytest.mark.slow
def test_repeats_give_every_trial_an_interval(studydir: Path) -> None:
    result = run(tiny(repeats=2, budget={"n_trials": 3}))
    table = result.compare("learning_rate")  # three values: one trial each
    assert table["count"].tolist() == [1, 1, 1]
    trials = result.trials.set_index("learning_rate")
    for value, row in table.iterrows():
        spread = trials.loc[value, "val_accuracy_std"]
        assert row["std"] == pytest.approx(spread)  # the sample std of its 2 seeds
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
