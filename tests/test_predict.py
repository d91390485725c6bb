"""Tables in, tables out: predict_frame / predict_csv against the core's own predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hpexp
from hpexp.data import Dataset
from hpexp.errors import DataError
from hpexp.predict import predict_csv, predict_frame, select_features
from tests.conftest import raw_rows, trained


@pytest.fixture(scope="module")
def iris() -> tuple[Dataset, hpexp.MLP]:
    return trained("iris")


@pytest.fixture(scope="module")
def moons() -> tuple[Dataset, hpexp.MLP]:
    return trained("moons")


@pytest.fixture(scope="module")
def diabetes() -> tuple[Dataset, hpexp.MLP]:
    return trained("diabetes")


def failure(model: hpexp.MLP, frame: object) -> str:
    with pytest.raises(DataError) as info:
        predict_frame(model, frame)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


# -- what comes out ---------------------------------------------------------------------------


def test_multiclass(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    frame = raw_rows(ds)
    out = predict_frame(model, frame)
    assert list(out.columns) == [
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    assert out.index.equals(frame.index)
    expected = np.asarray(ds.class_names)[model.predict(ds.X_val)]
    assert out["prediction"].tolist() == expected.tolist()
    assert all(isinstance(v, str) for v in out["prediction"])
    np.testing.assert_allclose(out.iloc[:, 1:].to_numpy(), model.predict_proba(ds.X_val).T)
    np.testing.assert_allclose(out.iloc[:, 1:].sum(axis=1), 1.0)
    assert (out["prediction"] == ds.class_names[0]).any()  # the model learned something


def test_binary_gives_both_classes(moons: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = moons
    out = predict_frame(model, raw_rows(ds))
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    p = model.predict_proba(ds.X_val)[0]
    np.testing.assert_allclose(out["proba_1"], p)
    np.testing.assert_allclose(out["proba_0"], 1 - p)
    assert out["prediction"].tolist() == np.where(p > 0.5, "1", "0").tolist()


def test_regression_in_original_units(diabetes: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = diabetes
    out = predict_frame(model, raw_rows(ds))
    assert list(out.columns) == [ds.target_name]
    expected = ds.to_original_targets(model.predict(ds.X_val))[0]
    np.testing.assert_allclose(out[ds.target_name], expected)
    assert out[ds.target_name].mean() > 20  # original units, not standardized ones


def test_column_order_extra_columns_and_int_columns(diabetes: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = diabetes
    frame = raw_rows(ds)
    reordered = frame[frame.columns[::-1]].assign(patient="x", visit=3)
    pd.testing.assert_frame_equal(predict_frame(model, reordered), predict_frame(model, frame))
    whole = frame.round().astype("int64")
    np.testing.assert_allclose(
        predict_frame(model, whole).to_numpy(),
        predict_frame(model, whole.astype("float64")).to_numpy(),
    )


def test_rows_are_independent(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    frame = raw_rows(ds)
    full = predict_frame(model, frame)
    part = frame.iloc[[7, 2, 19]]
    pd.testing.assert_frame_equal(predict_frame(model, part), full.loc[part.index])
    assert len(predict_frame(model, frame.iloc[:0])) == 0


def test_model_without_metadata_takes_columns_in_order(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, trained_model = iris
    bare = hpexp.MLP([ds.n_x, 8, ds.n_y], activation="tanh", output="softmax")
    bare.parameters = trained_model.parameters
    frame = pd.DataFrame(ds.X_val.T, columns=["a", "b", "c", "d"])  # already standardized
    out = predict_frame(bare, frame)
    assert list(out.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
    assert out["prediction"].tolist() == [str(k) for k in trained_model.predict(ds.X_val)]
    message = failure(bare, frame.assign(e=1.0))
    assert "5 columns" in message and "exactly 4" in message


# -- errors a user can fix ---------------------------------------------------------------------


def test_missing_columns_are_listed(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    message = failure(model, raw_rows(ds).drop(columns=["petal width (cm)", "sepal width (cm)"]))
    assert "missing 2 column(s): 'sepal width (cm)', 'petal width (cm)'" in message
    assert "the model needs the columns 'sepal length (cm)'" in message


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        pytest.param(["oops", "n/a", "x"], "non-numeric", id="strings"),
        pytest.param([np.nan, np.inf, -np.inf], "missing or infinite", id="nan-inf"),
        pytest.param([None, None, None], "missing or infinite", id="none"),
    ],
)
def test_bad_values_name_column_and_count(
    iris: tuple[Dataset, hpexp.MLP], bad: list, kind: str
) -> None:
    ds, model = iris
    frame = raw_rows(ds)
    column = frame["petal length (cm)"].astype(object)
    column.iloc[[3, 5, 8]] = bad
    message = failure(model, frame.assign(**{"petal length (cm)": column}))
    assert f"column 'petal length (cm)' of input has 3 {kind} row(s)" in message
    assert "'s3', 's5', 's8'" in message


def test_numbers_stored_as_objects_are_accepted(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    frame = raw_rows(ds)
    pd.testing.assert_frame_equal(
        predict_frame(model, frame.astype(object)), predict_frame(model, frame)
    )


def test_not_a_frame(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    assert "must be a pandas DataFrame" in failure(model, ds.X_val.T)


def test_inconsistent_metadata(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    broken = hpexp.MLP(list(model.layer_dims), activation="tanh", output="softmax")
    broken.metadata = {**model.metadata, "x_std": [1.0, 2.0]}
    assert "x_std has 2 values but the model needs 4" in failure(broken, raw_rows(ds))


# -- CSV files -----------------------------------------------------------------------------------


def test_csv_round_trip(diabetes: tuple[Dataset, hpexp.MLP], tmp_path: Path) -> None:
    ds, model = diabetes
    frame = raw_rows(ds)
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    out = predict_csv(model, path)
    np.testing.assert_allclose(out.to_numpy(), predict_frame(model, frame).to_numpy())
    assert out.index.equals(pd.RangeIndex(len(frame)))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"age,sex\n", "has a header but no rows", id="header-only"),
        pytest.param(b"\xff\xfe\x00garbage\x00", "could not be read as CSV", id="binary"),
        pytest.param(b"a,b\n1,2\n3,4,5,6\n", "could not be read as CSV", id="ragged"),
        pytest.param(b"age,sex\n50,1\n", "is missing 8 column(s)", id="columns"),
    ],
)
def test_csv_errors_name_the_file(
    diabetes: tuple[Dataset, hpexp.MLP], tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        predict_csv(diabetes[1], path)
    message = str(info.value)
    assert f"file '{path}'" in message and expected in message and "\n" not in message


def test_csv_path_is_a_directory(diabetes: tuple[Dataset, hpexp.MLP], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a file"):
        predict_csv(diabetes[1], tmp_path)


def test_select_features_is_float64_in_training_order(iris: tuple[Dataset, hpexp.MLP]) -> None:
    ds, model = iris
    frame = raw_rows(ds)
    selected = select_features(model, frame[frame.columns[::-1]].round().astype("int32"))
    assert list(selected.columns) == list(ds.feature_names)
    assert (selected.dtypes == np.float64).all()
