"""End-to-end studies on tiny data: Optuna trials, MLflow runs, tables, models, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import hpexp
from hpexp.search.objective import trial_seed
from hpexp.search.space import resolve

from ..conftest import empty_mlflow_store
from .conftest import assert_agree, child_runs, run, run_of, searched, tiny

#: Every test here runs a whole study (or shares one a fixture runs): one xdist worker runs
#: them all, so the shared study is run once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("search-test_study")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny study shared by the read-only tests below."""
    import os

    where = tmp_path_factory.mktemp("study")
    empty_mlflow_store(where)
    before = os.getcwd()
    os.chdir(where)
    try:
        result = run(tiny(budget={"n_trials": 5}))
        result.where = where  # type: ignore[attr-defined]
        yield result
    finally:
        os.chdir(before)


@pytest.mark.slow
def test_runs_the_budget_and_mlflow_agrees(finished):
    assert len(finished.study.trials) == 5
    assert all(t.state.name == "COMPLETE" for t in finished.study.trials)
    assert_agree(finished)


def test_curves_have_a_point_per_evaluation(finished):
    client = MlflowClient(finished.tracking_uri)
    trial = finished.study.trials[0]
    run_id = run_of(finished, trial.number).info.run_id
    iterations = trial.params["iterations"]
    assert trial.user_attrs["record"]["iterations_run"] == iterations
    expected = [*range(5, iterations + 1, 5)] + ([iterations] if iterations % 5 else [])
    for name in ("train_cost", "val_accuracy", "val_cost"):
        steps = sorted(m.step for m in client.get_metric_history(run_id, f"curves/{name}"))
        assert steps == expected, name
    # the final metrics are there too, under their own names
    data = client.get_run(run_id).data
    assert {"val_accuracy", "test_accuracy", "n_params", "train_seconds"} <= set(data.metrics)


def test_parent_run_holds_the_study_artifacts(finished):
    client = MlflowClient(finished.tracking_uri)
    top = {a.path for a in client.list_artifacts(finished.parent_run_id)}
    assert {"trials.csv", "plots", "model", "best_model"} <= top
    plots = {a.path for a in client.list_artifacts(finished.parent_run_id, "plots")}
    assert "plots/optimization_history.png" in plots
    parent = client.get_run(finished.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hpexp.best_run_id"] == finished.best_run_id
    assert parent.data.metrics["study/trials_complete"] == 5


@pytest.mark.slow
def test_pyfunc_model_predicts_from_a_dataframe(finished):
    import mlflow.pyfunc

    ds = hpexp.load_dataset("iris")
    model = mlflow.pyfunc.load_model(f"runs:/{finished.parent_run_id}/model")
    rows = pd.DataFrame((ds.X_test * ds.x_std + ds.x_mean).T, columns=list(ds.feature_names))
    out = model.predict(rows)
    expected = np.array(ds.class_names)[ds.Y_test.argmax(axis=0)]
    assert (out["prediction"].to_numpy() == expected).mean() > 0.8


def test_trials_table_and_compare(finished):
    table = finished.trials
    for column in [
        "number",
        "state",
        "value",
        "learning_rate",
        "iterations",
        "activation",
        "hidden_layers",
        "val_accuracy",
        "test_accuracy",
        "n_params",
        "duration_s",
        "run_id",
    ]:
        assert column in table.columns, column
    assert len(table) == 5
    np.testing.assert_allclose(table["value"], table["val_accuracy"])
    by_activation = finished.compare("activation")
    columns = ["count", "pruned", "mean", "std", "se", "ci_low", "ci_high", "best"]
    assert list(by_activation.columns) == columns
    assert by_activation["count"].sum() == 5  # no pruner
    with pytest.raises(hpexp.HpexpError, match="per layer"):
        finished.compare("hidden_units")


def test_best_model_reproduces_its_validation_accuracy(finished):
    ds = hpexp.load_dataset("iris")
    model = finished.best_model()
    accuracy = hpexp.evaluate(model, ds.X_val, ds.Y_val)["accuracy"]
    assert accuracy == pytest.approx(finished.best_value)
    assert model.metadata["feature_names"] == list(ds.feature_names)


def test_a_trial_reruns_bit_for_bit_from_its_params(finished):
    ds = hpexp.load_dataset("iris")
    trial = finished.study.trials[2]
    seed = trial_seed(finished.spec.seed, trial.number, 0)
    setup = resolve(finished.spec, trial.params, ds.task, ds.n_x, ds.n_y, seed)
    model = hpexp.MLP(**setup.model)
    hpexp.train(model, ds.X_train, ds.Y_train, config=setup.train)
    assert (
        hpexp.evaluate(model, ds.X_val, ds.Y_val)["accuracy"]
        == trial.user_attrs["metrics"]["val_accuracy"]
    )


def test_load_study_gives_the_same_result(finished, monkeypatch):
    monkeypatch.chdir(finished.where)
    again = hpexp.load_study("tiny")
    assert again.best_params == finished.best_params
    assert again.best_run_id == finished.best_run_id
    pd.testing.assert_frame_equal(again.trials, finished.trials)


@pytest.mark.slow
def test_resume_adds_trials_without_duplicating_runs(studydir):
    first = run(tiny(), n_trials=2)
    parent = first.parent_run_id
    again = run(tiny(), n_trials=4)
    assert len(again.study.trials) == 4
    assert again.parent_run_id == parent
    assert_agree(again)
    # nothing left to do: the same call changes nothing
    same = run(tiny(), n_trials=4)
    assert len(same.study.trials) == 4
    assert len(child_runs(same)) == 4


@pytest.mark.slow
def test_pruned_trials_are_killed_runs(studydir):
    doc = tiny(
        pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        fixed={"optimizer": "gd", "eval_every": 5, "hidden_layers": 1, "hidden_units": 8},
        search={
            "learning_rate": {"float": [1e-6, 1.0], "log": True},
            "iterations": {"int": [40, 60]},
        },
        enqueue=[{"learning_rate": 0.5, "iterations": 60}]
        + [{"learning_rate": 1e-6, "iterations": 60}] * 2,
        budget={"n_trials": 3},
    )
    result = run(doc)
    states = [t.state.name for t in result.study.trials]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]
    assert_agree(result)
    pruned = result.study.trials[1]
    client = MlflowClient(result.tracking_uri)
    tags = client.get_run(run_of(result, pruned.number).info.run_id).data.tags
    assert tags["hpexp.pruned_at"] == "5"
    pruned_run = run_of(result, pruned.number)
    assert pruned_run.info.run_name == f"trial-{pruned.number:04d} · pruned@5"
    curve = client.get_metric_history(pruned_run.info.run_id, "curves/train_cost")
    assert [m.step for m in curve] == [5]


def test_diverged_trial_fails_with_its_reason_and_the_study_goes_on(studydir):
    doc = {
        "name": "diverge",
        "dataset": {"name": "diabetes"},
        "fixed": {"optimizer": "gd", "eval_every": 5},
        "search": {
            "learning_rate": {"float": [1e-3, 1e3], "log": True},
            "iterations": {"int": [20, 40]},
        },
        "enqueue": [
            {"learning_rate": 1e3, "iterations": 40},
            {"learning_rate": 0.01, "iterations": 40},
        ],
        "pruner": "none",
        "budget": {"n_trials": 2},
    }
    result = run(doc)
    bad, good = result.study.trials
    assert bad.state.name == "FAIL" and good.state.name == "COMPLETE"
    assert bad.user_attrs["fail_reason"].startswith("diverged")
    assert_agree(result)
    tags = (
        MlflowClient(result.tracking_uri).get_run(run_of(result, bad.number).info.run_id).data.tags
    )
    assert tags["hpexp.fail_reason"].startswith("diverged")
    assert result.spec.metric == "val_rmse"
    assert result.best_trial.number == 1


def test_repeats_record_mean_and_std(studydir):
    result = run(tiny(repeats=2, budget={"n_trials": 2}))
    metrics = result.best_metrics
    assert "val_accuracy_std" in metrics and metrics["val_accuracy_std"] >= 0
    assert "val_accuracy_std" in result.trials.columns


@pytest.mark.slow
def test_multi_objective_keeps_a_pareto_front(studydir):
    doc = tiny(
        objective=[{"metric": "val_accuracy"}, {"metric": "n_params", "direction": "minimize"}],
        sampler={"name": "nsga2", "population_size": 4},
        budget={"n_trials": 5},
    )
    result = run(doc)
    assert result.spec.pruner["name"] == "none"
    assert len(result.study.directions) == 2
    assert {"value_val_accuracy", "value_n_params"} <= set(result.trials.columns)
    assert result.best_trial in result.study.best_trials
    assert_agree(result)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["random", "cmaes", "qmc", "grid"])
def test_every_sampler_runs(workdir, sampler):
    search = tiny()["search"]
    if sampler == "grid":
        search = {
            "learning_rate": {"choice": [0.01, 0.05]},
            "activation": {"choice": ["relu", "tanh"]},
        }
    study = searched(
        tiny(sampler={"name": sampler, "seed": 1}, search=search, budget={"n_trials": 3})
    )
    assert len(study.trials) == 3
    assert all(t.state.is_finished() for t in study.trials)


@pytest.mark.slow
def test_timeout_stops_starting_trials(workdir):
    study = searched(tiny(budget={"timeout": 0.5}))
    assert 1 <= len(study.trials) < 50


@pytest.mark.slow
def test_list_studies(finished, monkeypatch):
    monkeypatch.chdir(finished.where)
    table = hpexp.list_studies()
    assert table.loc[0, "study"] == "tiny" and table.loc[0, "trials"] == 5
