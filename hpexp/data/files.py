"""User data files: CSV (pandas) and NPZ (numpy, never unpickled), one sample per row.

CSV options: ``target`` (column name; default the last column), ``features`` (list of column
names; default all other columns), ``task`` ("auto", "binary", "multiclass", "regression").
NPZ arrays: ``X`` (m, n_x) and ``y`` (m,) or (m, n_y); optional ``feature_names`` and
``class_names`` (string arrays; with class names, y holds indices into them) and a fixed test
split ``X_test``, ``y_test``. NPZ option: ``task``. Both also take the split options.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpexp.data.dataset import Dataset
from hpexp.data.options import SPLIT_DEFAULTS, check_option_names, split_options
from hpexp.data.prepare import Source, build_dataset
from hpexp.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CSV_OPTIONS", "FILE_SUFFIXES", "NPZ_ARRAYS", "NPZ_OPTIONS", "load_file"]

#: File types load_file reads.
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".npz")
#: CSV options (besides the split options) and their defaults; None means "see above".
CSV_OPTIONS: dict[str, Any] = {"target": None, "features": None, "task": "auto"}
#: NPZ options (besides the split options) and their defaults.
NPZ_OPTIONS: dict[str, Any] = {"task": "auto"}
#: Arrays an .npz data file may hold.
NPZ_ARRAYS: tuple[str, ...] = ("X", "y", "feature_names", "class_names", "X_test", "y_test")

_SHOW = 5


def load_file(path: str | os.PathLike[str], options: Mapping[str, object]) -> Dataset:
    """Load a .csv or .npz file (rows are samples) into a `Dataset`."""
    text = os.fspath(path)
    file = Path(text)
    suffix = file.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"data file '{text}' has an unsupported type; use a .csv or .npz file")
    if not file.exists():
        raise DataError(
            f"data file '{text}' not found (relative paths start at {os.getcwd()}); check the path"
        )
    if not file.is_file():
        raise DataError(f"data file '{text}' is not a file")
    where = f"data file '{text}'"
    own = CSV_OPTIONS if suffix == ".csv" else NPZ_OPTIONS
    check_option_names(options, [*SPLIT_DEFAULTS, *own], where)
    task = options.get("task", "auto")
    if not isinstance(task, str):
        raise DataError(f"option task for {where} must be a string (got {task!r})")
    resolved: dict[str, Any] = {}
    if suffix == ".csv":
        src, resolved = _read_csv(file, text, options, task)
    else:
        src = _read_npz(file, text, task)
    if src.X_test is None:
        split = split_options(options, where)
    else:
        if options.get("test_fraction", 0.0) != 0.0:
            raise DataError(
                f"{where} holds its own test split (X_test, y_test); leave test_fraction out"
            )
        split = split_options({**options, "test_fraction": 0.0}, where)
        resolved["test_fraction"] = 0.0
    all_options = {**SPLIT_DEFAULTS, **own, **options, **resolved}
    return build_dataset(src, split, name=text, options=all_options)


def _read_csv(
    file: Path, text: str, options: Mapping[str, object], task: str
) -> tuple[Source, dict[str, Any]]:
    df = _csv_frame(file, text)
    target = _target_column(df, options.get("target"), text)
    features = _feature_columns(df, options.get("features"), target, text)
    for column in [*features, target]:
        _check_column_values(df[column], column, text)
    src = Source(
        X=df[features].to_numpy(dtype=np.float64),
        y=df[target].to_numpy(),
        where=text,
        task=task,
        feature_names=tuple(features),
        target_name=target,
        source=os.path.abspath(text),
    )
    return src, {"target": target}


def _csv_frame(file: Path, text: str) -> pd.DataFrame:
    """The CSV file as a DataFrame with text column names, at least two columns and a row."""
    import pandas as pd

    try:
        df = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data file '{text}' is empty; it needs a header row of column names and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read data file '{text}' as CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file '{text}': {exc.strerror or exc}") from None
    df.columns = [str(c) for c in df.columns]
    if len(df.columns) < 2:
        raise DataError(
            f"data file '{text}' has {len(df.columns)} column; it needs at least one feature "
            "column and a target column (is the separator a comma?)"
        )
    if len(df) == 0:
        raise DataError(f"data file '{text}' has a header but no data rows")
    return df


def _target_column(df: pd.DataFrame, target: object, text: str) -> str:
    """The target option (default: the last column), checked to name a column."""
    if target is None:
        target = df.columns[-1]
    if not isinstance(target, str):
        raise DataError(f"option target for data file '{text}' must be a column name")
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' not found in {text}; columns are: "
            f"{', '.join(df.columns)}; set target to one of them"
        )
    return target


def _feature_columns(df: pd.DataFrame, option: object, target: str, text: str) -> list[str]:
    """The features option (default: every column but the target), checked to name numeric
    columns other than the target."""
    import pandas as pd

    features = _feature_option(option, text)
    if features is None:
        features = [c for c in df.columns if c != target]
    for column in features:
        if column == target:
            raise DataError(f"column '{column}' in {text} is the target; leave it out of features")
        if column not in df.columns:
            raise DataError(
                f"feature column '{column}' not found in {text}; columns are: "
                f"{', '.join(df.columns)}; fix the name in features"
            )
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(df[c])]
    for column in features:
        if column not in numeric:
            raise DataError(
                f"column '{column}' in {text} is not numeric; encode it or leave it out with "
                f"features: [{', '.join(numeric)}]"
            )
    return features


def _feature_option(value: object, text: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DataError(
            f"option features for data file '{text}' must be a list of column names, "
            f"e.g. features: [a, b] (got {value!r})"
        )
    names = [str(v) for v in value]
    if not names:
        raise DataError(f"option features for data file '{text}' is empty; name some columns")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(
            f"option features for data file '{text}' lists {', '.join(duplicates)} twice"
        )
    return names


def _check_column_values(col: pd.Series, column: str, text: str) -> None:
    """Missing or infinite values, with the file's line numbers (the header is line 1)."""
    import pandas as pd

    missing = col.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"column '{column}' in {text} has {int(missing.sum())} missing value"
            f"{'s' if missing.sum() != 1 else ''} ({_lines(missing)}); fill in the values or drop "
            "those rows"
        )
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        infinite = np.isinf(col.to_numpy(dtype=np.float64))
        if infinite.any():
            raise DataError(
                f"column '{column}' in {text} has {int(infinite.sum())} infinite value"
                f"{'s' if infinite.sum() != 1 else ''} ({_lines(infinite)}); replace the values or "
                "drop those rows"
            )


def _lines(mask: np.ndarray) -> str:
    lines = (np.flatnonzero(mask) + 2).tolist()
    shown = ", ".join(str(n) for n in lines[:_SHOW])
    more = f", ... ({len(lines)} rows in all)" if len(lines) > _SHOW else ""
    return f"line{'s' if len(lines) != 1 else ''} {shown}{more}"


def _read_npz(file: Path, text: str, task: str) -> Source:
    arrays = _npz_arrays(file, text)
    return Source(
        X=arrays["X"],
        y=arrays["y"],
        where=text,
        task=task,
        feature_names=_npz_strings(arrays.get("feature_names"), "feature_names", text),
        class_names=_npz_strings(arrays.get("class_names"), "class_names", text),
        source=os.path.abspath(text),
        X_test=arrays.get("X_test"),
        y_test=arrays.get("y_test"),
    )


def _npz_arrays(file: Path, text: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz data file, by name: X and y, and only names of NPZ_ARRAYS."""
    how = f"save it with np.savez('{text}', X=features, y=targets)"
    try:
        loaded = np.load(file, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise DataError(
            f"data file '{text}' is not an .npz archive (or it is damaged); {how}"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read data file '{text}': {exc.strerror or exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"data file '{text}' is a single .npy array, not an .npz archive; {how}")
    with loaded as npz:
        names = list(npz.files)
        unexpected = [n for n in names if n not in NPZ_ARRAYS]
        if unexpected:
            raise DataError(
                f"data file '{text}' has unexpected arrays {', '.join(map(repr, unexpected))}; "
                f"allowed: {', '.join(NPZ_ARRAYS)}"
            )
        for required in ("X", "y"):
            if required not in names:
                raise DataError(
                    f"data file '{text}' has no array '{required}' (found: "
                    f"{', '.join(names) or 'none'}); {how}"
                )
        if ("X_test" in names) != ("y_test" in names):
            raise DataError(
                f"data file '{text}' needs both X_test and y_test for a fixed test split"
            )
        return {name: _npz_array(npz, name, text) for name in names}


def _npz_array(npz: Any, name: str, text: str) -> np.ndarray:
    try:
        return np.asarray(npz[name])
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"array '{name}' in data file '{text}' holds Python objects, which are never "
                "loaded (that would unpickle the file); store numbers, or text as a fixed-width "
                "string array, e.g. np.array(names, dtype=str)"
            ) from None
        raise DataError(f"cannot read array '{name}' in data file '{text}': {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read array '{name}' in data file '{text}': {exc}") from None


def _npz_strings(arr: np.ndarray | None, name: str, text: str) -> tuple[str, ...] | None:
    if arr is None:
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise DataError(
            f"array '{name}' in data file '{text}' must be a 1-D string array "
            f"(got dtype {arr.dtype}, shape {arr.shape})"
        )
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist())
