"""`hpexp reevaluate`: the top configurations and the baselines retrained with fresh seeds."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

import hpexp
import hpexp.reproduction
from hpexp.cli import main
from hpexp.errors import ConfigError
from hpexp.reevaluation import (
    ATTR,
    MAX_SEEDS_AT_ONCE,
    fresh_seeds,
    search_seeds,
    seeds_at_once,
    train_seeds,
)
from hpexp.report.reevaluation import hedges_g, reevaluation_text, rows
from hpexp.search import load_spec
from hpexp.search.runner import open_study, quiet_optuna
from hpexp.search.space import resolve

from .conftest import empty_mlflow_store
from .search.conftest import one_line, run, tiny

# The lecture-style baseline the study enqueues: a small network, trained briefly.
BASELINE = {
    "learning_rate": 0.005,
    "iterations": 20,
    "hidden_layers": 1,
    "hidden_units": [2],
    "activation": "relu",
}
TOP, SEEDS = 2, 4

#: One xdist worker runs this module, so the study the tests share is run once.
pytestmark = pytest.mark.xdist_group("test_reevaluate")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hpexp.StudyResult]:
    """A tiny iris study (4 trials, the first an enqueued baseline), run once for the module,
    in its own folder (the working directory while the module's tests run)."""
    where = tmp_path_factory.mktemp("reevaluate")
    empty_mlflow_store(where)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        yield run(tiny(enqueue=[BASELINE], budget={"n_trials": 4}))


@pytest.fixture(scope="module")
def frame(study: hpexp.StudyResult) -> pd.DataFrame:
    return study.reevaluate(top=TOP, seeds=SEEDS)


def _record(study: hpexp.StudyResult) -> dict:
    return study.study.user_attrs[f"{ATTR}top{TOP}-seeds{SEEDS}"]


def _runs(study: hpexp.StudyResult) -> list:
    client = MlflowClient(study.tracking_uri)
    exp = client.get_experiment_by_name(study.spec.experiment)
    return client.search_runs(
        [exp.experiment_id], filter_string="tags.`hpexp.role` = 'reevaluation'"
    )


# -- units: no study -----------------------------------------------------------------------------


def test_fresh_seeds_are_deterministic_and_avoid_used_ones() -> None:
    seeds = fresh_seeds(0, 3, 10, set())
    assert seeds == fresh_seeds(0, 3, 10, set()) and len(set(seeds)) == 10
    assert fresh_seeds(0, 3, 4, set()) == seeds[:4]  # more seeds extend the list
    assert fresh_seeds(1, 3, 10, set()) != seeds and fresh_seeds(0, 4, 10, set()) != seeds
    skipped = fresh_seeds(0, 3, 10, {seeds[0], seeds[5]})
    assert seeds[0] not in skipped and seeds[5] not in skipped and len(set(skipped)) == 10
    assert skipped[:4] == [seeds[1], seeds[2], seeds[3], seeds[4]]


def test_sizes_are_checked() -> None:
    for top, seeds in ((0, 10), (3, 1), (True, 10), (3, 2.5)):
        with pytest.raises(ConfigError):
            hpexp.reevaluate("never-opened", top=top, seeds=seeds)


def test_hedges_g_by_hand() -> None:
    a, b = [0.9, 0.92, 0.95, 0.91], [0.96, 0.97, 0.955]
    pooled = math.sqrt((3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5)
    d = (np.mean(a) - np.mean(b)) / pooled
    assert hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)), rel=1e-12)
    assert math.isnan(hedges_g(a, [0.9])) and math.isnan(hedges_g([1.0, 1.0], [1.0, 1.0]))


@pytest.mark.parametrize("limit", [None, "5K"], ids=["batched", "two-then-one"])
def test_seeds_equal_training_each_alone(
    monkeypatch: pytest.MonkeyPatch, limit: str | None
) -> None:
    """Batched (all three at once; or two, then one alone, when the model-size limit holds
    the training state of two seeds only), every seed's metrics are those of `hpexp.train`
    with that seed alone."""
    spec = load_spec(tiny(fixed={"optimizer": "adam", "eval_every": 5, "dropout": 0.2}))
    ds = hpexp.load_dataset("iris")
    params = {"learning_rate": 0.05, "iterations": 30, "hidden_layers": 1}
    params |= {"hidden_units_1": 6, "activation": "tanh"}  # 51 parameters: 2,040 B with adam
    seeds = [11, 22, 33]
    if limit:
        monkeypatch.setenv("HPEXP_MAX_MODEL_BYTES", limit)
    setup = resolve(spec, params, ds.task, ds.n_x, ds.n_y, 0)
    assert seeds_at_once(setup) == (2 if limit else MAX_SEEDS_AT_ONCE)
    per_seed, diverged = train_seeds(spec, ds, params, seeds)
    assert diverged == []
    assert _alone(spec, ds, params, seeds) == per_seed


def test_diverged_seeds_are_counted_apart() -> None:
    """A seed that diverges: NaN metrics, its index listed; statistics use the other seeds."""
    spec = load_spec(tiny(fixed={"optimizer": "gd", "eval_every": 5}))
    ds = hpexp.load_dataset("iris")
    params = {"learning_rate": 1e300, "iterations": 20, "hidden_layers": 1}
    params |= {"hidden_units_1": 4, "activation": "relu"}
    with np.errstate(all="ignore"):
        per_seed, diverged = train_seeds(spec, ds, params, [1, 2])
    assert diverged == [0, 1] and all(math.isnan(v) for v in per_seed["val_accuracy"])
    runs = [
        {"trial": 3, "baseline": False, "rank": 1, "search_value": 0.9, "diverged": [1],
         "per_seed": {"val_accuracy": [0.8, math.nan, 0.9, 0.85]}},
        {"trial": 5, "baseline": True, "rank": None, "search_value": math.nan, "diverged": [],
         "per_seed": {"val_accuracy": [0.7, 0.75]}},
    ]  # fmt: skip
    found, best = rows(runs, "val_accuracy", "maximize")
    assert best == 3 and [r["trial"] for r in found] == [3, 5]
    assert found[0]["n_seeds"] == 3 and found[0]["diverged"] == 1
    assert found[0]["val_accuracy"] == pytest.approx(0.85)
    assert found[0]["winners_curse"] == pytest.approx(0.05)
    assert math.isnan(found[1]["winners_curse"]) and math.isnan(found[1]["test_accuracy"])
    p = stats.ttest_ind([0.7, 0.75], [0.8, 0.9, 0.85], equal_var=False).pvalue
    assert found[1]["p_value"] == pytest.approx(p)


def _alone(spec, ds, params: dict, seeds: list[int]) -> dict[str, list[float]]:
    """Each seed's val_* and test_* metrics, trained by itself with `hpexp.train`."""
    out: dict[str, list[float]] = {}
    for seed in seeds:
        setup = resolve(spec, params, ds.task, ds.n_x, ds.n_y, seed)
        model = hpexp.MLP(**setup.model)
        hpexp.train(model, ds.X_train, ds.Y_train, config=setup.train)
        for split in ("val", "test"):
            X, Y = getattr(ds, f"X_{split}"), getattr(ds, f"Y_{split}")
            for name, value in hpexp.evaluate(model, X, Y).items():
                out.setdefault(f"{split}_{name}", []).append(value)
    return out


# -- a whole study ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_per_seed_values_are_training_with_fresh_seeds(
    study: hpexp.StudyResult, frame: pd.DataFrame
) -> None:
    record = _record(study)
    used = search_seeds(study)
    assert {s for t in study.study.trials for s in t.user_attrs["record"]["seeds"]} <= used
    taken: set[int] = set()
    for entry in record["runs"]:
        seeds = entry["seeds"]
        assert len(seeds) == SEEDS and not set(seeds) & used and not set(seeds) & taken
        taken |= set(seeds)
        assert seeds == fresh_seeds(study.spec.seed, entry["trial"], SEEDS, used)
        trial = study.study.trials[entry["trial"]]
        alone = _alone(study.spec, hpexp.load_dataset("iris"), trial.params, seeds)
        assert entry["per_seed"] == alone
        assert entry["params"] == trial.params


@pytest.mark.slow
def test_statistics_by_hand(study: hpexp.StudyResult, frame: pd.DataFrame) -> None:
    record = _record(study)
    values = {e["trial"]: e["per_seed"] for e in record["runs"]}
    best = int(frame["trial"].iloc[0])
    assert frame.attrs["best"] == best
    means = frame["val_accuracy"].to_numpy()
    assert list(means) == sorted(means, reverse=True)  # best first
    for row in frame.to_dict(orient="records"):
        trial = study.study.trials[row["trial"]]
        for name in ("val_accuracy", "test_accuracy"):
            x = np.array(values[row["trial"]][name])
            assert row[name] == pytest.approx(x.mean(), abs=1e-12)
            assert row[f"{name}_std"] == pytest.approx(x.std(ddof=1), abs=1e-12)
            assert row[f"{name}_sem"] == pytest.approx(x.std(ddof=1) / math.sqrt(SEEDS))
            if x.std() > 0:
                low, high = stats.t.interval(0.95, SEEDS - 1, loc=x.mean(), scale=stats.sem(x))
                assert row[f"{name}_ci95_low"] == pytest.approx(low, abs=1e-12)
                assert row[f"{name}_ci95_high"] == pytest.approx(high, abs=1e-12)
        search = trial.values[0] if trial.state.name == "COMPLETE" else math.nan
        assert row["search_value"] == pytest.approx(search, nan_ok=True)
        assert row["winners_curse"] == pytest.approx(search - row["val_accuracy"], nan_ok=True)
        assert row["n_seeds"] == SEEDS and row["diverged"] == 0
        if row["trial"] == best:
            assert math.isnan(row["p_value"]) and math.isnan(row["hedges_g"])
            continue
        a, b = values[row["trial"]]["val_accuracy"], values[best]["val_accuracy"]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no spread: scipy says so
            p = stats.ttest_ind(a, b, equal_var=False).pvalue
        assert row["p_value"] == pytest.approx(p, abs=1e-12, nan_ok=True)
        assert row["hedges_g"] == pytest.approx(hedges_g(a, b), nan_ok=True)


@pytest.mark.slow
def test_top_configurations_and_baselines(study: hpexp.StudyResult, frame: pd.DataFrame) -> None:
    trials = study.study.trials
    assert trials[0].user_attrs.get("baseline") is True
    done = [t for t in trials if t.state.name == "COMPLETE"]
    ranked = sorted(done, key=lambda t: (-t.values[0], t.number))
    top = {t.number for t in ranked[:TOP]}
    assert set(frame["trial"]) == top | {0}
    assert dict(zip(frame["trial"], frame["baseline"], strict=True)) == {
        n: n == 0 for n in frame["trial"]
    }
    ranks = {t.number: i for i, t in enumerate(ranked, start=1)}
    for trial, rank in zip(frame["trial"], frame["rank"], strict=True):
        assert rank == ranks[trial]
    assert frame.attrs["top_configurations"] == TOP and frame.attrs["completed"] == len(done)


@pytest.mark.slow
def test_stored_table_reads_back_identical(study: hpexp.StudyResult, frame: pd.DataFrame) -> None:
    again = hpexp.load_study(study.name)
    back = again.reevaluation()
    assert back is not None
    pd.testing.assert_frame_equal(back, frame)
    assert back.attrs == frame.attrs
    same = again.reevaluation(top=TOP, seeds=SEEDS)
    assert same is not None
    pd.testing.assert_frame_equal(same, frame)
    assert again.reevaluation(top=TOP + 5) is None


@pytest.mark.slow
def test_mlflow_runs_once_after_running_twice(
    study: hpexp.StudyResult, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    first = {r.data.tags["hpexp.reevaluated_trial"]: r.info.run_id for r in _runs(study)}
    assert main(["reevaluate", study.name, "--top", str(TOP), "--seeds", str(SEEDS)]) == 0
    out = capsys.readouterr()
    assert "fresh seeds" in out.out and "best" in out.out and "hpexp: warning" not in out.err
    runs = _runs(study)
    assert {r.data.tags["hpexp.reevaluated_trial"]: r.info.run_id for r in runs} == first
    assert sorted(map(int, first)) == sorted(frame["trial"])  # one run per configuration
    client = MlflowClient(study.tracking_uri)
    for r in runs:
        trial = int(r.data.tags["hpexp.reevaluated_trial"])
        row = frame[frame["trial"] == trial].iloc[0]
        assert r.data.tags["mlflow.parentRunId"] == study.parent_run_id
        assert r.data.tags["hpexp.reevaluation"] == f"top{TOP}-seeds{SEEDS}"
        assert r.data.tags["hpexp.baseline"] == str(bool(row["baseline"]))
        assert r.data.metrics["val_accuracy"] == pytest.approx(row["val_accuracy"])
        steps = client.get_metric_history(r.info.run_id, "val_accuracy_per_seed")
        entry = next(e for e in _record(study)["runs"] if e["trial"] == trial)
        assert [m.value for m in sorted(steps, key=lambda m: m.step)] == pytest.approx(
            entry["per_seed"]["val_accuracy"]
        )
    tables = client.list_artifacts(study.parent_run_id, "reevaluation")
    assert [a.path for a in tables] == [f"reevaluation/top{TOP}-seeds{SEEDS}.csv"]
    # the study's trial runs are untouched, and MLflow agrees with the storage
    assert hpexp.check_study(study.name) == []
    # `hpexp check` names a re-evaluation run altered by hand and one deleted by hand
    altered, deleted = runs[0], runs[1]
    client.log_metric(altered.info.run_id, "val_accuracy", -1.0)
    client.delete_run(deleted.info.run_id)
    problems = hpexp.check_study(study.name)
    where = f"re-evaluation top{TOP}-seeds{SEEDS}: trial "
    trial = {r.info.run_id: r.data.tags["hpexp.reevaluated_trial"] for r in runs}
    assert sorted(problems) == sorted(
        [
            f"{where}{trial[deleted.info.run_id]}: 0 MLflow runs, expected 1",
            f"{where}{trial[altered.info.run_id]}: metric val_accuracy = -1.0, "
            f"expected {altered.data.metrics['val_accuracy']}",
        ]
    )
    # lost from MLflow: `hpexp sync` writes the runs again from the storage, once
    for r in runs:
        if r is not deleted:
            client.delete_run(r.info.run_id)
    hpexp.sync_study(study.name)
    rebuilt = _runs(study)
    assert sorted(r.data.tags["hpexp.reevaluated_trial"] for r in rebuilt) == sorted(first)
    assert hpexp.check_study(study.name) == []


@pytest.mark.slow
def test_printed_table(frame: pd.DataFrame) -> None:
    text = reevaluation_text(frame)
    lines = text.splitlines()
    assert lines[0].startswith(f"study 'tiny': the top {TOP} of")
    assert "1 baseline" in lines[0] and f"{SEEDS} fresh seeds" in lines[0]
    assert lines[1].split() == [
        "trial", "rank", "search", "val_accuracy", "test_accuracy", "p", "g", "curse", "seeds"
    ]  # fmt: skip
    assert lines[2].split()[0] == str(frame["trial"].iloc[0]) and "best" in lines[2]
    assert any(line.split()[0] == "0*" for line in lines[2:])  # the baseline, marked
    assert " ± " in lines[2] and "Welch" in text and "Hedges" in text


@pytest.mark.slow
def test_bad_input_is_one_line(
    study: hpexp.StudyResult,
    frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = dict(study.study.user_attrs)
    cases = {"--top=0": "top must be an integer >= 1", "--seeds=1": "seeds must be an integer >= 2"}
    for arg, message in cases.items():
        assert main(["reevaluate", "tiny", arg]) == 2
        assert message in one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as stop:
        main(["reevaluate", "tiny", "--top", "x"])
    assert stop.value.code == 2
    assert "invalid int value" in one_line(capsys.readouterr().err)
    assert main(["reevaluate", "unknown"]) == 2
    assert "no study named 'unknown'" in one_line(capsys.readouterr().err)
    monkeypatch.setattr(hpexp.reproduction, "dataset_fingerprint", lambda ds: {"sha256": "0" * 64})
    assert main(["reevaluate", "tiny", "--top", "1", "--seeds", "2"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "fingerprint" in err and "restore" in err
    assert dict(study.study.user_attrs) == before  # nothing stored


@pytest.mark.slow
def test_study_without_completed_trial(
    study: hpexp.StudyResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study created but with no trial finished yet: one line, exit 2; nothing stored."""
    with quiet_optuna():
        open_study(load_spec(tiny(name="empty")))
    assert main(["reevaluate", "empty"]) == 2
    assert "study 'empty' has no completed trial" in one_line(capsys.readouterr().err)
    assert hpexp.load_study("empty").reevaluation() is None
