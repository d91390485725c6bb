"""User data files: CSV and NPZ round trips and the errors a user can fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpexp.data import load_dataset
from hpexp.errors import DataError


def frame(m: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, m),
            "income": rng.normal(50_000, 10_000, m),
            "city": rng.choice(["Oslo", "Lima", "Pune"], m),
            "score": rng.normal(0, 1, m),
            "label": np.where(np.arange(m) % 3 == 0, "yes", "no"),
        }
    )


def write_csv(tmp_path: Path, df: pd.DataFrame, name: str = "data.csv") -> str:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def failure(name: str, **options: object) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(name, **options)
    return str(info.value)


# CSV


def test_csv_round_trip(tmp_path: Path) -> None:
    df = frame()
    path = write_csv(tmp_path, df)
    ds = load_dataset(path, features=["age", "income", "score"], seed=1)
    assert ds.task == "binary" and ds.class_names == ("no", "yes")
    assert ds.feature_names == ("age", "income", "score") and ds.target_name == "label"
    assert (ds.n_x, ds.n_y) == (3, 1)
    assert (ds.m_train, ds.m_val, ds.m_test) == (36, 12, 12)
    # every row comes back (standardization undone), in the column layout
    X = np.hstack([ds.X_train, ds.X_val, ds.X_test]) * ds.x_std + ds.x_mean
    Y = np.hstack([ds.Y_train, ds.Y_val, ds.Y_test])
    restored = sorted(zip(*X.round(6).tolist(), Y[0].tolist(), strict=True))
    expected = df[["age", "income", "score"]].to_numpy().round(6).tolist()
    original = sorted(
        (*row, float(lab == "yes")) for row, lab in zip(expected, df["label"], strict=True)
    )
    np.testing.assert_allclose(np.array(restored), np.array(original), rtol=1e-9)
    assert ds.options["target"] == "label" and ds.name == path


def test_csv_defaults_target_last_column_and_infers_tasks(tmp_path: Path) -> None:
    df = frame().drop(columns=["city"])
    df["grade"] = np.arange(len(df)) % 4  # 4 integer values: multiclass
    ds = load_dataset(write_csv(tmp_path, df.drop(columns=["label"])))
    assert ds.task == "multiclass" and ds.target_name == "grade"
    assert ds.class_names == ("0", "1", "2", "3") and ds.n_y == 4
    reg = load_dataset(write_csv(tmp_path, df, "reg.csv"), target="score", features=["age"])
    assert reg.task == "regression" and reg.n_y == 1 and reg.class_names == ()
    np.testing.assert_allclose(reg.Y_train.std(), 1.0)
    forced = load_dataset(
        write_csv(tmp_path, df, "f.csv"),
        target="grade",
        task="regression",
        features=["age", "income"],
    )
    assert forced.task == "regression"


def test_csv_many_integers_are_regression(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100) * 3})
    assert load_dataset(write_csv(tmp_path, df)).task == "regression"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"target": "lable"},
            ["target column 'lable' not found in", "columns are: age", "set target"],
        ),
        ({"features": ["age", "incme"]}, ["feature column 'incme' not found in", "fix the name"]),
        ({}, ["column 'city' in", "is not numeric", "features: [age, income, score]"]),
        ({"features": "age"}, ["must be a list of column names"]),
        ({"features": ["age", "label"]}, ["column 'label' in", "is the target"]),
        ({"task": "binary", "target": "age", "features": ["income"]}, ["task is binary"]),
        ({"task": "regression", "features": ["age"]}, ["not numeric", "task: multiclass"]),
        ({"task": "clustering", "features": ["age"]}, ["task for", "auto, binary, multiclass"]),
        ({"sep": ";"}, ["unknown option 'sep' for data file", "valid options: features"]),
    ],
    ids=[
        "missing-target",
        "missing-feature",
        "text-feature",
        "features-not-list",
        "target-as-feature",
        "binary-many-classes",
        "text-regression",
        "bad-task",
        "unknown-option",
    ],
)
def test_csv_errors(tmp_path: Path, options: dict[str, object], expected: list[str]) -> None:
    path = write_csv(tmp_path, frame())
    message = failure(path, **options)
    assert "data.csv" in message
    for part in expected:
        assert part in message


def test_csv_missing_values_name_column_count_and_lines(tmp_path: Path) -> None:
    df = frame()
    df.loc[[2, 5], "income"] = np.nan
    message = failure(write_csv(tmp_path, df), features=["age", "income"])
    assert "column 'income' in" in message and "data.csv" in message
    assert (
        "2 missing values (lines 4, 7)" in message
        and "fill in the values or drop those rows" in message
    )


def test_csv_missing_target_value(tmp_path: Path) -> None:
    df = frame()
    df.loc[0, "label"] = None
    message = failure(write_csv(tmp_path, df), features=["age"])
    assert "column 'label'" in message and "1 missing value (line 2)" in message


def test_csv_infinite_value(tmp_path: Path) -> None:
    df = frame()
    df["score"] = df["score"].astype(float)
    df.loc[3, "score"] = np.inf
    message = failure(write_csv(tmp_path, df), features=["score"])
    assert "column 'score'" in message and "infinite" in message and "line 5" in message


def test_csv_too_few_rows(tmp_path: Path) -> None:
    df = frame(m=4)
    message = failure(write_csv(tmp_path, df), features=["age"])
    assert "data.csv has 4 samples, too few" in message and "change the fractions" in message


def test_csv_rare_class(tmp_path: Path) -> None:
    df = frame()
    df.loc[0, "label"] = "maybe"
    message = failure(write_csv(tmp_path, df), features=["age"])
    assert "data.csv" in message and "'maybe' (1 sample)" in message
    assert "add samples of that class or drop its rows" in message


def test_csv_single_class(tmp_path: Path) -> None:
    df = frame().assign(label="yes")
    message = failure(write_csv(tmp_path, df), features=["age"])
    assert "single class ('yes')" in message and "data.csv" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "is empty"), ("a,b\n", "no data rows"), ("a\n1\n2\n", "at least one feature column")],
    ids=["empty", "header-only", "one-column"],
)
def test_csv_degenerate_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    message = failure(str(path))
    assert expected in message and "data.csv" in message


def test_missing_file_and_unsupported_type(tmp_path: Path) -> None:
    assert "data file 'x.csv' not found" in failure("x.csv")
    assert "data file 'nothere.npz' not found" in failure("nothere.npz")
    other = tmp_path / "data.txt"
    other.write_text("a,b\n1,2\n")
    assert "unsupported type; use a .csv or .npz file" in failure(str(other))


def test_path_objects_are_accepted(tmp_path: Path) -> None:
    path = Path(write_csv(tmp_path, frame()))
    assert load_dataset(path, features=["age"]).n_x == 1


# NPZ


def test_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.arange(90) % 3
    path = tmp_path / "data.npz"
    np.savez(
        path,
        X=X,
        y=y,
        feature_names=np.array(["a", "b", "c"]),
        class_names=np.array(["red", "green", "blue"]),
    )
    ds = load_dataset(str(path), standardize=False, test_fraction=0.0)
    assert ds.task == "multiclass" and ds.class_names == ("red", "green", "blue")
    assert ds.feature_names == ("a", "b", "c")
    assert (ds.X_train.shape, ds.Y_train.shape) == ((3, 72), (3, 72))
    rows = {tuple(r) for r in np.hstack([ds.X_train, ds.X_val]).T.tolist()}
    assert rows == {tuple(r) for r in X.tolist()}
    # each sample keeps its label: look the labels up by the first feature
    label_of = dict(zip(X[:, 0].tolist(), y.tolist(), strict=True))
    for Xs, Ys in [(ds.X_train, ds.Y_train), (ds.X_val, ds.Y_val)]:
        assert [label_of[v] for v in Xs[0].tolist()] == Ys.argmax(axis=0).tolist()


def test_npz_regression_with_several_targets_and_fixed_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "reg.npz"
    np.savez(
        path,
        X=rng.normal(size=(50, 4)),
        y=rng.normal(5, 2, size=(50, 2)),
        X_test=rng.normal(size=(10, 4)),
        y_test=rng.normal(size=(10, 2)),
    )
    ds = load_dataset(str(path))
    assert ds.task == "regression" and ds.n_y == 2
    assert ds.target_std is not None and ds.target_std.shape == (2, 1)
    assert (ds.m_train, ds.m_val, ds.m_test) == (40, 10, 10)
    assert "own test split" in failure(str(path), test_fraction=0.3)


def test_npz_object_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    X = np.empty((10, 1), dtype=object)
    X[:, 0] = [{"a": i} for i in range(10)]
    np.savez(path, X=X, y=np.arange(10) % 2)
    message = failure(str(path))
    assert "array 'X' in data file" in message and "evil.npz" in message
    assert "Python objects" in message


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"X": np.ones((20, 2))}, "has no array 'y'"),
        ({"x": np.ones((20, 2)), "y": np.zeros(20)}, "unexpected arrays 'x'"),
        ({"X": np.ones(20), "y": np.zeros(20)}, "must be 2-D"),
        ({"X": np.ones((20, 2)), "y": np.zeros(19)}, "19 samples but the features have 20"),
        ({"X": np.array([[1.0, np.nan]] * 20), "y": np.arange(20) % 2}, "missing or infinite"),
        (
            {"X": np.ones((20, 2)), "y": np.arange(20) % 2, "feature_names": np.array(["a"])},
            "1 feature names for 2 features",
        ),
        (
            {"X": np.ones((20, 2)), "y": np.arange(20) % 3, "class_names": np.array(["a", "b"])},
            "class indices 0..1",
        ),
        ({"X": np.array([["a", "b"]] * 20), "y": np.arange(20) % 2}, "must hold numbers"),
    ],
    ids=["no-y", "lowercase-x", "1d-X", "length", "nan", "feature-names", "class-index", "text-X"],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], expected: str) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    message = failure(str(path))
    assert expected in message and "data.npz" in message


def test_npz_that_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(b"definitely not numpy")
    assert "is not an .npz archive" in failure(str(path))
    with open(path, "wb") as f:
        np.save(f, np.ones(3))
    assert "single .npy array" in failure(str(path))
