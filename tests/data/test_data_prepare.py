"""From row arrays to a Dataset: task inference, labels, splits, standardization, the container."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hpexp.data import Dataset, from_arrays
from hpexp.data.prepare import infer_task
from hpexp.errors import DataError


def ids_and_labels(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """X (m, 2) whose first column is the sample id; labels cycle through k classes."""
    X = np.column_stack([np.arange(m, dtype=float), np.sin(np.arange(m))])
    return X, np.arange(m) % k


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (np.array(["a", "b", "a", "b"]), "binary"),
        (np.array([True, False, True, False]), "binary"),
        (np.array([0, 1, 2, 1]), "multiclass"),
        (np.array([1.0, 2.0, 3.0, 1.0]), "multiclass"),
        (np.array([0.5, 1.5, 2.25, 3.0]), "regression"),
        (np.arange(21), "regression"),
        (np.ones((4, 2)), "regression"),
        (np.array(["x", 1, "y", 2], dtype=object), "multiclass"),
    ],
    ids=["text", "bool", "ints", "whole-floats", "floats", "21-ints", "2-targets", "mixed"],
)
def test_infer_task(y: np.ndarray, task: str) -> None:
    assert infer_task(y) == task


def test_class_names_sort_numbers_as_numbers() -> None:
    X, _ = ids_and_labels(60, 3)
    ds = from_arrays(X, np.array([2, 10, 1] * 20))
    assert ds.class_names == ("1", "2", "10")


def test_given_class_names_index_the_labels() -> None:
    X, y = ids_and_labels(60, 3)
    ds = from_arrays(X, y, class_names=["c0", "c1", "c2"], test_fraction=0.0, standardize=False)
    assert ds.class_names == ("c0", "c1", "c2")
    np.testing.assert_array_equal(ds.Y_train.argmax(axis=0), ds.X_train[0].astype(int) % 3)
    by_name = from_arrays(X, np.array(["c2", "c0", "c1"] * 20), class_names=["c0", "c1", "c2"])
    assert by_name.class_names == ("c0", "c1", "c2")


@settings(max_examples=40, deadline=None, database=None)
@given(
    m=st.integers(30, 300),
    k=st.integers(2, 5),
    val=st.floats(0.05, 0.4),
    test=st.sampled_from([0.0, 0.1, 0.25]),
    seed=st.integers(0, 2**32 - 1),
)
def test_splits_partition_the_samples(m: int, k: int, val: float, test: float, seed: int) -> None:
    n_val, n_test = int(np.floor(val * m + 0.5)), int(np.floor(test * m + 0.5))
    assume(n_val >= k and (test == 0 or n_test >= k))  # smaller splits are refused (tested below)
    X, y = ids_and_labels(m, k)
    ds = from_arrays(X, y, val_fraction=val, test_fraction=test, seed=seed, standardize=False)
    ids = np.concatenate([ds.X_train[0], ds.X_val[0], ds.X_test[0]])
    np.testing.assert_array_equal(np.sort(ids), np.arange(m))  # each sample exactly once
    assert (ds.m_val, ds.m_test) == (n_val, n_test)
    for Xs, Ys in [(ds.X_train, ds.Y_train), (ds.X_val, ds.Y_val), (ds.X_test, ds.Y_test)]:
        labels = Ys[0] if k == 2 else Ys.argmax(axis=0)  # labels travel with their samples
        np.testing.assert_array_equal(labels, Xs[0].astype(int) % k)


def test_constant_feature_gets_std_one() -> None:
    X = np.column_stack([np.full(50, 3.0), np.arange(50.0)])
    ds = from_arrays(X, np.arange(50) % 2)
    assert ds.x_std[0, 0] == 1.0 and ds.x_mean[0, 0] == 3.0
    np.testing.assert_array_equal(ds.X_train[0], 0.0)


def test_arrays_are_read_only() -> None:
    X, y = ids_and_labels(40, 2)
    ds = from_arrays(X, y)
    with pytest.raises(ValueError, match="read-only"):
        ds.X_train[0, 0] = 1.0
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


def test_to_original_targets() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = np.column_stack([100 + 10 * X[:, 0], -5 + 0.1 * X[:, 1]])
    ds = from_arrays(X, y, standardize=False)
    restored = ds.to_original_targets(ds.Y_test)
    np.testing.assert_allclose(restored[0], 100 + 10 * ds.X_test[0])
    np.testing.assert_allclose(restored[1], -5 + 0.1 * ds.X_test[1])
    with pytest.raises(DataError, match="shape"):
        ds.to_original_targets(np.zeros((3, 4)))
    classifier = from_arrays(*ids_and_labels(40, 2))
    with pytest.raises(DataError, match="only regression"):
        classifier.to_original_targets(np.zeros((1, 4)))


def test_fixed_test_split() -> None:
    X, y = ids_and_labels(50, 2)
    ds = from_arrays(X, y, X_test=X[:7], y_test=y[:7], standardize=False)
    assert (ds.m_train, ds.m_val, ds.m_test) == (40, 10, 7)
    np.testing.assert_array_equal(ds.X_test, X[:7].T)
    np.testing.assert_array_equal(ds.Y_test[0], y[:7])
    with pytest.raises(DataError, match="either test_fraction or a fixed test split"):
        from_arrays(X, y, X_test=X[:7], y_test=y[:7], test_fraction=0.2)
    with pytest.raises(DataError, match="not among the classes"):
        from_arrays(X, y, X_test=X[:3], y_test=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="X_test in dataset 'arrays' has 1 features"):
        from_arrays(X, y, X_test=X[:3, :1], y_test=y[:3])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"task": "binary", "y": np.arange(30) % 3}, "3 classes but task is binary"),
        ({"y": np.r_[np.zeros(29), np.nan]}, "missing or infinite values (rows 29)"),
        ({"y": np.arange(30) % 2, "X": np.ones((30, 0))}, "no features"),
        ({"y": np.arange(30) % 2, "feature_names": ["a"]}, "1 feature names for 2 features"),
        ({"y": np.ones((30, 2)), "task": "multiclass"}, "one label per sample"),
        ({"y": np.arange(30) % 5, "val_fraction": 0.05}, "validation split would get 2 but needs"),
    ],
    ids=["binary-with-3", "nan-target", "no-features", "names", "2d-labels", "split-too-small"],
)
def test_bad_arrays(kwargs: dict[str, object], expected: str) -> None:
    arrays = {"X": ids_and_labels(30, 2)[0], **kwargs}
    with pytest.raises(DataError) as info:
        from_arrays(**arrays)  # type: ignore[arg-type]
    assert expected in str(info.value)


def test_dataset_checks_its_fields() -> None:
    ds = from_arrays(*ids_and_labels(40, 2))
    fields = {name: getattr(ds, name) for name in ds.__dataclass_fields__}
    with pytest.raises(DataError, match="do not match"):
        Dataset(**{**fields, "X_val": np.zeros((3, ds.m_val))})
    with pytest.raises(DataError, match="task must be one of"):
        Dataset(**{**fields, "task": "ranking"})
    with pytest.raises(DataError, match="2 class names"):
        Dataset(**{**fields, "class_names": ("a", "b", "c")})
