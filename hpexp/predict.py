"""Predictions for tables: one row per sample in, one row per sample out.

A trained model carries in `model.metadata` what it needs to read raw data: the input columns
(`feature_names`), the standardization fitted on its training split (`x_mean`, `x_std`), the task,
the class names and, for regression, the target names and scale. `predict_frame` applies all of
it: select the columns, check them, standardize, transpose the (m, n_x) table to the core's
(n_x, m) layout once, run the network and turn its output back into named columns.

    model = hpexp.load_model("best")
    table = predict_csv(model, "new_samples.csv")   # "prediction", "proba_<class>", ...
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpexp.errors import DataError
from hpexp.nn.io import ModelMetadata
from hpexp.nn.model import MLP

__all__ = ["predict_csv", "predict_frame", "select_features"]

_SHOW = 5  # how many offending columns/rows a message lists


def select_features(model: MLP, frame: pd.DataFrame, *, where: str = "input") -> pd.DataFrame:
    """The model's input columns of `frame`, in training order, as float64 (m, n_x).

    Columns come from `model.metadata["feature_names"]` (others are ignored); a model without
    feature names takes a frame of exactly n_x columns, in order. Raises `DataError` for missing
    columns or for values that are not finite numbers; `where` names the input in messages.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{where} must be a pandas DataFrame (one row per sample), got {type(frame).__name__}"
        )
    n_x = model.layer_dims[0]
    names = ModelMetadata.from_dict(model.metadata).feature_names
    if names is None:
        if frame.shape[1] != n_x:
            raise DataError(
                f"{where} has {frame.shape[1]} columns but the model (no feature_names in its "
                f"metadata) takes exactly {n_x} numeric columns, in training order"
            )
        columns: list[Any] = list(frame.columns)
        selected = frame
    else:
        columns = [str(c) for c in names]
        if len(columns) != n_x:
            raise DataError(
                f"model metadata lists {len(columns)} feature_names but the model has {n_x} "
                "inputs; save the model again with matching metadata"
            )
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{where} is missing {len(missing)} column(s): {_listing(missing)}; the model "
                f"needs the columns {_listing(columns, limit=len(columns))} (extra columns are "
                "ignored)"
            )
        repeated = [c for c in columns if int((frame.columns == c).sum()) > 1]
        if repeated:
            raise DataError(
                f"{where} has more than one column named {_listing(repeated)}; keep one of each"
            )
        selected = frame.loc[:, columns]
    values = np.empty(selected.shape, dtype=np.float64)
    for j, column in enumerate(columns):
        values[:, j] = _numeric_column(selected.iloc[:, j], column, where)
    return pd.DataFrame(values, index=frame.index, columns=columns)


def predict_frame(model: MLP, frame: pd.DataFrame) -> pd.DataFrame:
    """Predict every row of `frame`; return a DataFrame with the same index.

    Classification: a "prediction" column (the class name, str) and one "proba_<class name>"
    column per class (binary: both classes, 1 − p and p). Regression: one column per target name,
    in the target's original units. Raises `DataError` for missing or non-numeric columns.
    """
    return _predict(model, frame, "input")


def predict_csv(model: MLP, path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV file (a header row, then one row per sample) and `predict_frame` it."""
    text = os.fspath(path)
    file = Path(text)
    where = f"file '{text}'"
    if not file.exists():
        raise DataError(
            f"{where} not found (relative paths start at {os.getcwd()}); check the path"
        )
    if not file.is_file():
        raise DataError(f"{where} is not a file; give the path to a CSV file")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is empty; write a header row and one row per sample") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{where} could not be read as CSV ({reason}); check its format") from None
    if len(frame) == 0:
        raise DataError(f"{where} has a header but no rows; add one row per sample")
    return _predict(model, frame, where)


# -- implementation ------------------------------------------------------------------------------


def _predict(model: MLP, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    meta = ModelMetadata.from_dict(model.metadata)
    features = select_features(model, frame, where=where)
    n_x, n_y = model.layer_dims[0], model.layer_dims[-1]
    mean = _vector(meta.x_mean, "x_mean", n_x, default=0.0)
    std = _vector(meta.x_std, "x_std", n_x, default=1.0)
    X = ((features.to_numpy() - mean) / std).T  # rows → columns: (n_x, m)
    task = model.task  # the output layer decides; metadata's task only describes it
    AL = model.predict(X) if task == "regression" else model.predict_proba(X)  # (n_y, m)
    index = frame.index

    if task == "regression":
        names = _names(meta.target_names, n_y, "target_names", _default_targets(n_y))
        scale = _vector(meta.target_std, "target_std", n_y, 1.0)
        out = AL.T * scale + _vector(meta.target_mean, "target_mean", n_y, 0.0)
        return pd.DataFrame(out, index=index, columns=names)

    if task == "binary":
        classes = _names(meta.class_names, 2, "class_names", ["0", "1"])
        p = AL[0]
        proba = np.column_stack([1.0 - p, p])
        label = (p > 0.5).astype(np.intp)  # the same threshold as MLP.predict
    else:
        classes = _names(meta.class_names, n_y, "class_names", [str(k) for k in range(n_y)])
        proba = AL.T
        label = AL.argmax(axis=0)
    result = pd.DataFrame(
        {"prediction": pd.Series(np.asarray(classes, dtype=object)[label], index=index, dtype=str)}
    )
    for k, name in enumerate(classes):
        result[f"proba_{name}"] = proba[:, k]
    return result


def _numeric_column(column: pd.Series, name: Any, where: str) -> np.ndarray:
    """One input column as float64; DataError naming the column and how many rows are bad."""
    if pd.api.types.is_bool_dtype(column) or (
        pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_complex_dtype(column)
    ):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(column, errors="coerce")
        bad = converted.isna() & column.notna()
        if bad.any():
            rows = column.index[bad].tolist()
            raise DataError(
                f"column '{name}' of {where} has {len(rows)} non-numeric row(s) (row "
                f"{_listing(rows)}, e.g. {column[bad].iloc[0]!r}); give numbers only"
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    if not finite.all():
        rows = column.index[~finite].tolist()
        raise DataError(
            f"column '{name}' of {where} has {len(rows)} missing or infinite row(s) "
            f"(row {_listing(rows)}); fill or drop them before predicting"
        )
    return values


def _vector(value: object, key: str, n: int, default: float) -> np.ndarray:
    """The metadata's `value` of `key` as a float array of n values, or `default` when absent
    or null."""
    if value is None:
        return np.full(n, default)
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = None
    if array is None or not np.isfinite(array).all():
        raise DataError(
            f"model metadata {key} must be a list of finite numbers; save the model again with "
            "matching metadata"
        )
    if array.size != n:
        raise DataError(
            f"model metadata {key} has {array.size} values but the model needs {n}; save the "
            "model again with matching metadata"
        )
    return array


def _names(value: Sequence[str] | None, n: int, key: str, default: list[str]) -> list[str]:
    if value is None:
        return default
    names = [str(v) for v in value]
    if len(names) != n:
        raise DataError(
            f"model metadata {key} has {len(names)} names but the model's output needs {n}; "
            "save the model again with matching metadata"
        )
    return names


def _default_targets(n_y: int) -> list[str]:
    return ["prediction"] if n_y == 1 else [f"prediction_{k}" for k in range(n_y)]


def _listing(items: Sequence[Any], limit: int = _SHOW) -> str:
    shown = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
