"""`effects`: importances per evaluator with bootstrap intervals, on studies made in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

import hpexp
from hpexp import StudyResult
from hpexp.report.effects import effects
from hpexp.search.objective import ModelFiles

SPACE = {
    "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}
DOC = {
    "name": "eff",
    "dataset": {"name": "iris"},
    "search": {
        "learning_rate": {"float": [0.001, 1.0], "log": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
}


def accuracy(t: optuna.trial.FrozenTrial) -> float:
    return t.user_attrs["metrics"]["val_accuracy"]


def make_study(n: int = 24, seed: int = 1) -> optuna.Study:
    """Accuracy set by the activation (relu +0.3), the learning rate adding a little; one
    pruned and one failed trial that must not count."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize")
    for k in range(n):
        params = {
            "learning_rate": float(10 ** rng.uniform(-3, 0)),
            "activation": ("relu", "tanh")[k % 2],
        }
        value = 0.6 + 0.3 * (params["activation"] == "relu") + 0.02 * params["learning_rate"]
        value += float(rng.normal(0, 0.01))
        study.add_trial(
            create_trial(
                value=value,
                params=params,
                distributions=SPACE,
                user_attrs={"metrics": {"val_accuracy": value, "val_cost": 1 - value}},
            )
        )
    for state in (TrialState.PRUNED, TrialState.FAIL):
        study.add_trial(create_trial(state=state, params=params, distributions=SPACE))
    return study


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return effects(make_study(), accuracy, "maximize", resamples=8, seed=3)


@pytest.mark.slow
def test_one_row_per_evaluator_and_parameter(table: pd.DataFrame) -> None:
    assert list(table.columns) == ["importance", "mean", "low", "high"]
    assert table.index.names == ["evaluator", "param"]
    assert sorted(table.index) == [
        (e, p) for e in ("fanova", "ped_anova") for p in ("activation", "learning_rate")
    ]
    assert list(table.index.get_level_values(0)) == ["fanova"] * 2 + ["ped_anova"] * 2


@pytest.mark.slow
def test_importances_sum_to_one_and_intervals_hold_the_mean(table: pd.DataFrame) -> None:
    sums = table.groupby(level="evaluator")["importance"].sum()
    np.testing.assert_allclose(sums, 1.0)
    np.testing.assert_allclose(table.groupby(level="evaluator")["mean"].sum(), 1.0)
    assert (table["low"] <= table["mean"]).all() and (table["mean"] <= table["high"]).all()
    assert ((table["low"] >= 0) & (table["high"] <= 1)).all()


def test_the_parameter_that_sets_the_metric_comes_first(table: pd.DataFrame) -> None:
    fanova = table.loc["fanova"]
    assert fanova.index[0] == "activation"
    assert fanova.loc["activation", "low"] > fanova.loc["learning_rate", "high"]


@pytest.mark.slow
def test_same_seed_same_table_other_seed_other_intervals(table: pd.DataFrame) -> None:
    again = effects(make_study(), accuracy, "maximize", resamples=8, seed=3)
    pd.testing.assert_frame_equal(table, again)
    other = effects(make_study(), accuracy, "maximize", resamples=8, seed=4, evaluators=["fanova"])
    assert not np.allclose(other[["low", "high"]], table.loc[["fanova"], ["low", "high"]])


def test_parameters_some_trials_lack_are_left_out() -> None:
    """hidden_units_2 exists only in two-layer networks: it is not among the parameters."""
    space = {"hidden_layers": IntDistribution(1, 2), "hidden_units_1": IntDistribution(2, 16)}
    deeper = {**space, "hidden_units_2": IntDistribution(2, 16)}
    study = optuna.create_study(direction="maximize")
    for k in range(10):
        depth = 1 + k % 2
        params = {"hidden_layers": depth, "hidden_units_1": 2 + k}
        if depth == 2:
            params["hidden_units_2"] = 3 + k
        study.add_trial(
            create_trial(
                value=k / 10,
                params=params,
                distributions=deeper if depth == 2 else space,
                user_attrs={"metrics": {"val_accuracy": k / 10}},
            )
        )
    got = effects(study, accuracy, "maximize", evaluators=["ped_anova"], resamples=3)
    assert sorted(got.loc["ped_anova"].index) == ["hidden_layers", "hidden_units_1"]


@pytest.mark.slow
def test_no_resamples_give_the_importances_alone(table: pd.DataFrame) -> None:
    alone = effects(make_study(), accuracy, "maximize", resamples=0, seed=3)
    assert alone["importance"].equals(table["importance"])
    assert alone[["mean", "low", "high"]].isna().all().all()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(hpexp.HpexpError, match="unknown evaluator 'shap'"):
        effects(make_study(), accuracy, "maximize", evaluators=["shap"])
    with pytest.raises(hpexp.HpexpError, match="resamples must be >= 0"):
        effects(make_study(), accuracy, "maximize", resamples=-1)
    with pytest.raises(hpexp.HpexpError, match="3 completed trials"):
        effects(make_study(n=2), accuracy, "maximize")


@pytest.mark.slow
def test_study_result_delegates_with_its_objective(tmp_path: Path) -> None:
    study = make_study()
    doc = {**DOC, "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}
    result = StudyResult(hpexp.load_spec(doc), study, ModelFiles(tmp_path / "models"), {})
    got = result.effects(evaluators=["fanova"], resamples=4, seed=3)
    pd.testing.assert_frame_equal(
        got, effects(study, accuracy, "maximize", evaluators=["fanova"], resamples=4, seed=3)
    )
    by_cost = result.effects("val_cost", evaluators=["fanova"], resamples=4, seed=3)
    assert by_cost.index.get_level_values("param")[0] == "activation"


def few_trials(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for k, v in enumerate(values):
        study.add_trial(
            create_trial(
                value=v,
                params={"learning_rate": 10.0 ** -(k + 1), "activation": ("relu", "tanh")[k % 2]},
                distributions=SPACE,
                user_attrs={"metrics": {"val_accuracy": v}},
            )
        )
    return study


@pytest.mark.slow
def test_resamples_of_equal_values_are_left_out() -> None:
    """Of 3 trials, a resample often draws only the two with one value: fANOVA has no
    variance to share out there, and the interval comes from the other resamples."""
    got = effects(few_trials([0.5, 0.5, 0.9]), accuracy, "maximize", resamples=30, seed=0)
    assert np.isfinite(got.to_numpy()).all()
    with pytest.raises(hpexp.HpexpError, match="values differ"):
        effects(few_trials([0.5, 0.5, 0.5]), accuracy, "maximize", evaluators=["fanova"])
