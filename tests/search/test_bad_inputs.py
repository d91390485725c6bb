"""Bad input to `run_study` is refused before anything is created: no Optuna journal, no MLflow
database, no artifact folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import hpexp

STUDY: dict[str, Any] = {
    "name": "tiny",
    "dataset": "iris",
    "fixed": {"iterations": 20},
    "search": {"learning_rate": {"float": [1.0e-3, 1.0e-1], "log": True}},
    "budget": {"n_trials": 2},
}
CREATED = ("optuna.journal", "mlflow.db", "mlartifacts", "mlruns")


def _write_study(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump({**STUDY, **changes}, sort_keys=False))
    return path


def _refused(workdir: Path, study: object, *expected: str, **kwargs: Any) -> str:
    before = sorted(p.name for p in workdir.iterdir())
    with pytest.raises(hpexp.HpexpError) as info:
        hpexp.run_study(study, progress=False, verbose=False, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    missing = [s for s in expected if s not in message]
    assert not missing, f"{missing} not in: {message}"
    for name in CREATED:
        assert not (workdir / name).exists(), f"{name} was created for bad input: {message}"
    assert sorted(p.name for p in workdir.iterdir()) == before
    return message


BAD_SPECS = [
    pytest.param({"dataset": "irsi"}, ("dataset", "did you mean 'iris'"), id="unknown-dataset"),
    pytest.param({"search": {"learnin_rate": {"float": [0.1, 1]}}},
                 ("search.learnin_rate", "did you mean 'learning_rate'"), id="unknown-name"),
    pytest.param({"search": {"l2": {"float": [1.0, 0.1]}}},
                 ("search.l2.float", "inverted"), id="inverted-range"),
    pytest.param({"objective": {"metric": "val_rmse"}},
                 ("objective.metric", "regression"), id="metric-for-wrong-task"),
    pytest.param({"pruner": {"name": "median", "n_startup_trials": -1}},
                 ("pruner", "n_startup_trials"), id="invalid-pruner-option"),
    pytest.param({"sampler": {"name": "tpe", "n_startup_trials": "many"}},
                 ("sampler.n_startup_trials", "an integer"), id="invalid-sampler-option"),
    pytest.param({"seed": 2**32}, ("seed",), id="seed-too-large-for-the-sampler"),
    pytest.param({"budget": {"n_trials": 0}}, ("budget.n_trials",), id="budget-0"),
    pytest.param({"fixed": {"iterations": 20, "hidden_units": [8, 4]}},
                 ("fixed.hidden_units", "hidden_layers"), id="units-list-vs-depth"),
    pytest.param({"search": {"activation": {"choice": ["relu", "tanh"]}},
                  "enqueue": [{"activation": "linear"}]},
                 ("enqueue[0].activation", "searched choices"), id="enqueue-outside-choices"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), BAD_SPECS)
def test_bad_spec_file(workdir: Path, changes: dict[str, Any], expected: tuple[str, ...]) -> None:
    path = _write_study(workdir / "study.yaml", **changes)
    _refused(workdir, "study.yaml", "study.yaml", *expected)
    assert path.is_file()


@pytest.mark.parametrize(("changes", "expected"), BAD_SPECS)
def test_bad_spec_dict(workdir: Path, changes: dict[str, Any], expected: tuple[str, ...]) -> None:
    _refused(workdir, {**STUDY, **changes}, *expected)


def test_bad_override(workdir: Path) -> None:
    _write_study(workdir / "study.yaml")
    _refused(workdir, "study.yaml", "fixed.optimizer", "'sgd'", overrides=["fixed.optimizer=sgd"])
    _refused(workdir, "study.yaml", "key=value", overrides=["fixed.optimizer"])


def test_missing_study_file(workdir: Path) -> None:
    _refused(workdir, "nope.yaml", "nope.yaml", "not found")
    _refused(workdir, "quickstart", "quickstart", "not found", "studies/")


def test_invalid_yaml(workdir: Path) -> None:
    (workdir / "study.yaml").write_text("name: tiny\ndataset: [iris\n")
    _refused(workdir, "study.yaml", "study.yaml", "line", "not valid YAML")


# -- bad data files -------------------------------------------------------------------------------


def _csv(path: Path, **columns: list[Any]) -> None:
    pd.DataFrame(columns).to_csv(path, index=False)


def _rows(n: int = 40) -> dict[str, list[Any]]:
    return {"a": [float(i) for i in range(n)], "b": [i % 5 for i in range(n)],
            "label": [i % 2 for i in range(n)]}  # fmt: skip


def _study_on(workdir: Path, dataset: object) -> str:
    _write_study(workdir / "study.yaml", dataset=dataset)
    return "study.yaml"


def test_csv_with_non_numeric_feature(workdir: Path) -> None:
    rows = _rows()
    rows["b"] = ["red", "green"] * 20
    _csv(workdir / "data.csv", **rows)
    study = _study_on(workdir, "data.csv")
    _refused(workdir, study, "study.yaml", "dataset", "column 'b'", "not numeric", "features: [a]")


def test_csv_with_missing_values(workdir: Path) -> None:
    rows = _rows()
    rows["a"][3] = None
    _csv(workdir / "data.csv", **rows)
    study = _study_on(workdir, "data.csv")
    _refused(workdir, study, "study.yaml", "column 'a'", "1 missing value", "line 5", "fill in")


def test_csv_without_the_target_column(workdir: Path) -> None:
    _csv(workdir / "data.csv", **_rows())
    study = _study_on(workdir, {"name": "data.csv", "target": "species"})
    _refused(workdir, study, "study.yaml", "target column 'species' not found", "a, b, label")


def test_csv_with_one_column(workdir: Path) -> None:
    (workdir / "data.csv").write_text("a;b;label\n1;2;0\n3;4;1\n")
    study = _study_on(workdir, "data.csv")
    _refused(workdir, study, "study.yaml", "data.csv", "separator")


def test_npz_with_an_object_array(workdir: Path) -> None:
    X = np.empty((30, 2), dtype=object)
    X[:] = 1.0
    np.savez(workdir / "data.npz", X=X, y=np.arange(30) % 2)
    study = _study_on(workdir, "data.npz")
    _refused(workdir, study, "study.yaml", "array 'X'", "data.npz", "Python objects")


def test_npz_without_y(workdir: Path) -> None:
    np.savez(workdir / "data.npz", X=np.zeros((30, 2)))
    study = _study_on(workdir, "data.npz")
    _refused(workdir, study, "study.yaml", "no array 'y'", "np.savez")


def test_missing_data_file(workdir: Path) -> None:
    study = _study_on(workdir, "missing.csv")
    _refused(workdir, study, "study.yaml", "dataset.name", "missing.csv", "not found")


def test_data_file_of_unsupported_type(workdir: Path) -> None:
    (workdir / "data.txt").write_text("a,b\n1,2\n")
    study = _study_on(workdir, "data.txt")
    _refused(workdir, study, "study.yaml", "dataset", "data.txt", "unsupported type", ".csv")


# -- bad arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"n_trials": 0}, ("n_trials", "integer >= 1", "got 0"), id="n_trials-0"),
        pytest.param({"n_trials": -2}, ("n_trials", "got -2"), id="n_trials-negative"),
        pytest.param({"n_trials": "3"}, ("n_trials", "got '3'"), id="n_trials-text"),
        pytest.param({"timeout": -1}, ("timeout", "> 0 seconds", "got -1"), id="timeout-negative"),
        pytest.param({"timeout": 0}, ("timeout", "got 0"), id="timeout-0"),
    ],
)
def test_bad_arguments(workdir: Path, kwargs: dict[str, Any], expected: tuple[str, ...]) -> None:
    _write_study(workdir / "study.yaml")
    _refused(workdir, "study.yaml", *expected, **kwargs)


@pytest.mark.slow
def test_unreachable_storage(workdir: Path) -> None:
    _write_study(workdir / "study.yaml")
    url = "postgresql://user:secret@127.0.0.1:1/db"
    message = _refused(workdir, "study.yaml", "storage", "cannot open", storage=url)
    assert "secret" not in message
