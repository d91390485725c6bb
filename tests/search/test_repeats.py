"""Studies with repeats: per-seed values, their spread, and the MLflow runs that show them."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy.stats import t as student_t

import hpexp
from hpexp.nn import evaluate
from hpexp.search.repeats import SUFFIXES, summary

from .conftest import assert_agree, run, run_of, tiny

SPREAD = [f"val_accuracy{s}" for s in SUFFIXES]


@pytest.mark.slow
def test_three_repeats_store_each_seed_and_the_spread(studydir):
    result = run(tiny(repeats=3, budget={"n_trials": 2}))
    ds = hpexp.load_dataset("iris")
    done = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    assert done
    for trial in done:
        record, metrics = trial.user_attrs["record"], trial.user_attrs["metrics"]
        per_seed = record["per_seed"]
        assert len(record["seeds"]) == 3 and len(set(record["seeds"])) == 3
        assert set(per_seed) == {"val_cost", "val_accuracy", "test_cost", "test_accuracy"}
        assert all(len(values) == 3 for values in per_seed.values())
        acc = per_seed["val_accuracy"]
        mean, sd = statistics.fmean(acc), statistics.stdev(acc)
        half = student_t.ppf(0.975, 2) * sd / math.sqrt(3)
        assert metrics["val_accuracy"] == pytest.approx(mean, abs=1e-12)
        assert trial.value == pytest.approx(mean, abs=1e-12)
        assert metrics["val_accuracy_std"] == pytest.approx(sd, abs=1e-12)
        assert metrics["val_accuracy_sem"] == pytest.approx(sd / math.sqrt(3), abs=1e-12)
        assert metrics["val_accuracy_ci95_low"] == pytest.approx(mean - half, abs=1e-12)
        assert metrics["val_accuracy_ci95_high"] == pytest.approx(mean + half, abs=1e-12)
        assert metrics["test_accuracy"] == pytest.approx(np.mean(per_seed["test_accuracy"]))
        # the saved model is seed 0's
        model = result.trial_model(trial.number)
        assert model.seed == record["seeds"][0]
        assert evaluate(model, ds.X_val, ds.Y_val)["accuracy"] == acc[0]
        logged = run_of(result, trial.number).data.metrics
        for name in SPREAD:
            assert logged[name] == pytest.approx(metrics[name], rel=1e-9)
    assert set(SPREAD) <= set(result.trials.columns)
    assert_agree(result)


@pytest.mark.slow
def test_one_repeat_stores_what_it_always_did(studydir):
    result = run(tiny(budget={"n_trials": 1}))
    trial = result.study.trials[0]
    assert "per_seed" not in trial.user_attrs["record"]
    assert not set(SPREAD) & set(trial.user_attrs["metrics"])
    assert not set(SPREAD) & set(run_of(result, 0).data.metrics)
    assert not any(c.endswith(SUFFIXES) for c in result.trials.columns)


def test_summary_matches_the_textbook_formulas():
    values = [0.9, 0.8, 1.0, 0.85]
    s = summary("val_x", values)
    sd = statistics.stdev(values)
    assert s["val_x"] == pytest.approx(statistics.fmean(values), abs=1e-15)
    assert s["val_x_std"] == pytest.approx(sd, abs=1e-15)
    assert s["val_x_sem"] == pytest.approx(sd / 2, abs=1e-15)
    assert s["val_x_ci95_high"] - s["val_x"] == pytest.approx(3.182446305 * sd / 2, rel=1e-9)
    same = summary("v", [0.5, 0.5])
    assert same["v_std"] == 0 and same["v_ci95_low"] == same["v_ci95_high"] == 0.5
    with pytest.raises(ValueError, match="at least 2"):
        summary("v", [1.0])
