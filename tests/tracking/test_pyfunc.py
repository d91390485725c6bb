"""The pyfunc model: saved without a run, loaded from a path and from a run's artifacts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import hpexp
from hpexp.data import Dataset
from hpexp.errors import DataError
from hpexp.predict import predict_frame
from hpexp.tracking.pyfunc import HpexpPyfuncModel, save_pyfunc_model
from tests.conftest import raw_rows
from tests.conftest import trained as trained_model


def trained(name: str) -> tuple[Dataset, hpexp.MLP, pd.DataFrame]:
    """A briefly trained model with the metadata a study saves, and raw validation rows."""
    ds, model = trained_model(name)
    return ds, model, raw_rows(ds, index=False)


@pytest.fixture(scope="module")
def iris() -> tuple[Dataset, hpexp.MLP, pd.DataFrame]:
    return trained("iris")


@pytest.fixture(scope="module")
def iris_pyfunc(
    iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    _, model, rows = iris
    return save_pyfunc_model(model, tmp_path_factory.mktemp("pyfunc") / "model", rows)


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A sqlite tracking store in tmp_path, as the global tracking URI (restored afterwards)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # monkeypatch restores the variable last
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: back to unset


def test_loaded_model_predicts_like_predict_frame(
    iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], iris_pyfunc: Path
) -> None:
    _, model, rows = iris
    loaded = mlflow.pyfunc.load_model(str(iris_pyfunc))
    pd.testing.assert_frame_equal(loaded.predict(rows), predict_frame(model, rows))
    extra = rows[rows.columns[::-1]].assign(note="x")  # reordered, with a column to ignore
    pd.testing.assert_frame_equal(loaded.predict(extra), predict_frame(model, rows))


def test_int_columns_are_accepted(tmp_path: Path) -> None:
    _, model, rows = trained("diabetes")
    whole = rows.round().astype("int64")  # what pd.read_csv gives for whole numbers
    loaded = mlflow.pyfunc.load_model(str(save_pyfunc_model(model, tmp_path / "m", rows)))
    pd.testing.assert_frame_equal(loaded.predict(whole), predict_frame(model, whole))


def test_bad_values_reach_predict_frame(
    iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], iris_pyfunc: Path
) -> None:
    _, _, rows = iris
    loaded = mlflow.pyfunc.load_model(str(iris_pyfunc))
    message = "column 'sepal width (cm)' of input has 30 non-numeric row(s)"
    with pytest.raises(DataError, match=re.escape(message)):
        loaded.predict(rows.assign(**{"sepal width (cm)": "wide"}))


def test_model_directory(iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], iris_pyfunc: Path) -> None:
    ds, _, _ = iris
    files = {p.relative_to(iris_pyfunc).as_posix() for p in iris_pyfunc.rglob("*") if p.is_file()}
    assert {"MLmodel", "requirements.txt", "input_example.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]  # models from code
    assert {"artifacts/model.npz", "artifacts/model.json"} <= files
    requirements = (iris_pyfunc / "requirements.txt").read_text().split()
    assert f"numpy=={np.__version__}" in requirements
    assert f"pandas=={pd.__version__}" in requirements
    assert f"hpexp=={hpexp.__version__}" in requirements
    assert any(r.startswith("mlflow==") for r in requirements)  # added by MLflow
    info = mlflow.models.Model.load(str(iris_pyfunc))
    assert info.signature.inputs.input_names() == list(ds.feature_names)
    assert info.signature.outputs.input_names()[0] == "prediction"
    example = json.loads((iris_pyfunc / "input_example.json").read_text())
    assert len(example["data"]) == 5


def test_loading_reads_the_network_from_the_npz(iris_pyfunc: Path) -> None:
    loaded = mlflow.pyfunc.load_model(str(iris_pyfunc)).unwrap_python_model()
    assert isinstance(loaded, HpexpPyfuncModel)
    assert loaded._model is not None  # load_context read model.npz / model.json


def test_save_is_quick(iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], tmp_path: Path) -> None:
    _, model, rows = iris
    start = time.process_time()
    save_pyfunc_model(model, tmp_path / "model", rows)
    assert time.process_time() - start < 2.0  # CPU seconds: other processes do not count


def test_save_refuses_bad_arguments(
    iris: tuple[Dataset, hpexp.MLP, pd.DataFrame], iris_pyfunc: Path, tmp_path: Path
) -> None:
    _, model, rows = iris
    with pytest.raises(DataError, match="already exists and is not empty"):
        save_pyfunc_model(model, iris_pyfunc, rows)
    with pytest.raises(DataError, match="at least one row"):
        save_pyfunc_model(model, tmp_path / "a", rows.head(0))
    with pytest.raises(DataError, match="input_example is missing 1 column"):
        save_pyfunc_model(model, tmp_path / "b", rows.drop(columns=["sepal length (cm)"]))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_upload_to_a_run_and_load_by_runs_uri(
    iris: tuple[Dataset, hpexp.MLP, pd.DataFrame],
    iris_pyfunc: Path,
    tracking_uri: str,
    tmp_path: Path,
) -> None:
    _, model, rows = iris
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("pyfunc", (tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(iris_pyfunc), "model")
    client.set_terminated(run_id)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    pd.testing.assert_frame_equal(loaded.predict(rows), predict_frame(model, rows))
    stored = tmp_path / "artifacts" / run_id / "artifacts" / "model" / "artifacts" / "model.npz"
    assert stored.is_file()  # the artifact store is inside tmp_path
