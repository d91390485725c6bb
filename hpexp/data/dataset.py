"""The `Dataset` container: train/validation/test splits in the column-per-sample layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hpexp.errors import DataError

__all__ = ["TASKS", "Dataset"]

#: The learning tasks a dataset can have.
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split into train / validation / test, ready for the network.

    Samples are columns: X_* is (n_x, m) and Y_* is (n_y, m), float64, with m the number of samples
    in that split (m_test may be 0). The arrays made by `load_dataset` are read-only, so one
    Dataset can be shared by many trials.

    - binary: Y is (1, m) of 0.0 / 1.0; 1.0 means `class_names[1]`.
    - multiclass: Y is one-hot (n_classes, m); row k is `class_names[k]`.
    - regression: Y is (n_targets, m), standardized with the training split's `target_mean` and
      `target_std` (each (n_y, 1)); `to_original_targets` maps predictions back.

    Features are standardized with `x_mean` / `x_std` ((n_x, 1) each), fitted on the training split
    only (a std of 0 becomes 1); with `standardize=False` they are raw and x_mean = 0, x_std = 1.
    To feed new raw samples (rows) to a model: ``((X_rows.T - ds.x_mean) / ds.x_std)``.

    `options` holds every option the dataset was loaded with (defaults filled in), so
    ``load_dataset(ds.name, **ds.options)`` loads it again.
    """

    name: str
    task: str
    X_train: Array
    Y_train: Array
    X_val: Array
    Y_val: Array
    X_test: Array
    Y_test: Array
    x_mean: Array
    x_std: Array
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...] = ()
    target_name: str = "y"
    target_mean: Array | None = None
    target_std: Array | None = None
    source: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_dataset(self)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_x={self.n_x}, n_y={self.n_y}, "
            f"m_train={self.m_train}, m_val={self.m_val}, m_test={self.m_test})"
        )

    # sizes
    @property
    def n_x(self) -> int:
        """Number of input features."""
        return int(self.X_train.shape[0])

    @property
    def n_y(self) -> int:
        """Number of output units: 1 (binary), n_classes (multiclass) or n_targets."""
        return int(self.Y_train.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.class_names)

    @property
    def m_train(self) -> int:
        """Number of training samples."""
        return int(self.X_train.shape[1])

    @property
    def m_val(self) -> int:
        """Number of validation samples."""
        return int(self.X_val.shape[1])

    @property
    def m_test(self) -> int:
        """Number of test samples (may be 0)."""
        return int(self.X_test.shape[1])

    @property
    def is_classification(self) -> bool:
        """True for binary and multiclass tasks."""
        return self.task != "regression"

    def to_original_targets(self, Y: npt.ArrayLike) -> Array:
        """Map standardized regression outputs (n_y, m) back to target units (n_y, m)."""
        if self.target_mean is None or self.target_std is None:
            raise DataError(
                f"dataset '{self.name}' is a {self.task} task; only regression targets are "
                "standardized"
            )
        Y_arr = np.asarray(Y, dtype=np.float64)
        if Y_arr.ndim != 2 or Y_arr.shape[0] != self.n_y:
            raise DataError(
                f"expected predictions of shape ({self.n_y}, m) for dataset '{self.name}', "
                f"got {Y_arr.shape}"
            )
        result: Array = Y_arr * self.target_std + self.target_mean
        return result

    def summary(self) -> str:
        """One line: name, task, sizes of the splits."""
        if self.task == "regression":
            kind = f"regression, {self.n_y} target{'s' if self.n_y != 1 else ''}"
        else:
            kind = f"{self.task}, {self.n_classes} classes"
        return (
            f"{self.name}: {kind}, {self.n_x} features; "
            f"train {self.m_train} / val {self.m_val} / test {self.m_test}"
        )


def _check_dataset(ds: Dataset) -> None:
    """Raise `DataError` if the fields of `ds` do not fit together."""
    if ds.task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)} (got {ds.task!r})")
    splits = {
        "train": (ds.X_train, ds.Y_train),
        "val": (ds.X_val, ds.Y_val),
        "test": (ds.X_test, ds.Y_test),
    }
    n_x, n_y = ds.X_train.shape[0], ds.Y_train.shape[0]
    for split, (X, Y) in splits.items():
        if X.ndim != 2 or Y.ndim != 2:
            raise DataError(f"X_{split} and Y_{split} must be 2-D (n, m) arrays")
        if X.shape[0] != n_x or Y.shape[0] != n_y:
            raise DataError(
                f"X_{split} {X.shape} / Y_{split} {Y.shape} do not match X_train "
                f"({n_x}, m) / Y_train ({n_y}, m)"
            )
        if X.shape[1] != Y.shape[1]:
            raise DataError(
                f"X_{split} has {X.shape[1]} samples (columns) but Y_{split} has {Y.shape[1]}"
            )
    if ds.X_train.shape[1] == 0 or ds.X_val.shape[1] == 0:
        raise DataError("the train and validation splits must not be empty")
    if len(ds.feature_names) != n_x:
        raise DataError(f"{len(ds.feature_names)} feature names for {n_x} features")
    if ds.x_mean.shape != (n_x, 1) or ds.x_std.shape != (n_x, 1):
        raise DataError(f"x_mean and x_std must have shape ({n_x}, 1)")
    _check_targets(ds, n_y)


def _check_targets(ds: Dataset, n_y: int) -> None:
    """Class names, target scaling and Y's rows must fit the task."""
    if ds.task == "regression":
        if ds.class_names:
            raise DataError("a regression dataset has no class names")
        if ds.target_mean is None or ds.target_std is None:
            raise DataError("a regression dataset needs target_mean and target_std")
        if ds.target_mean.shape != (n_y, 1) or ds.target_std.shape != (n_y, 1):
            raise DataError(f"target_mean and target_std must have shape ({n_y}, 1)")
    else:
        expected = 1 if ds.task == "binary" else len(ds.class_names)
        if ds.task == "binary" and len(ds.class_names) != 2:
            raise DataError(f"a binary dataset needs 2 class names (got {len(ds.class_names)})")
        if len(ds.class_names) < 2:
            raise DataError(f"a {ds.task} dataset needs at least 2 class names")
        if n_y != expected:
            raise DataError(f"a {ds.task} dataset needs Y with {expected} rows (got {n_y})")
        if ds.target_mean is not None or ds.target_std is not None:
            raise DataError("target_mean / target_std are only for regression datasets")
