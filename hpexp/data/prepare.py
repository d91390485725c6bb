"""From row-per-sample arrays to a `Dataset`: task, labels, seeded splits, standardization.

A dataset changes layout here, once: rows (m, n) come in, columns (n, m) go out (`_columns`).
The other boundaries of the core transpose on their own: `hpexp.predict` (new samples in,
predictions out) and `hpexp.study.input_example` (raw rows for MLflow).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hpexp.data.cache import cached_arrays, package_version
from hpexp.data.dataset import TASKS, Array, Dataset
from hpexp.data.options import SPLIT_DEFAULTS, SplitOptions, split_options
from hpexp.errors import DataError

__all__ = ["MAX_AUTO_CLASSES", "Source", "build_dataset", "from_arrays", "infer_task"]

#: With task "auto", an integer target with at most this many distinct values is a class label.
MAX_AUTO_CLASSES = 20

_SHOW = 5  # how many offending rows/classes an error message lists


@dataclass(frozen=True, eq=False)
class Source:
    """Data before splitting, one sample per row.

    X: (m, n_x) numbers. y: (m,) class labels or targets, or (m, n_y) regression targets.
    X_test, y_test: an optional fixed test split in the same layout.
    `where` is how error messages name the data (e.g. "data.csv" or "dataset 'iris'").
    """

    X: npt.ArrayLike
    y: npt.ArrayLike
    where: str
    task: str = "auto"
    feature_names: Sequence[str] | None = None
    class_names: Sequence[str] | None = None
    target_name: str = "y"
    source: str = ""
    X_test: npt.ArrayLike | None = None
    y_test: npt.ArrayLike | None = None


def from_arrays(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    name: str = "arrays",
    task: str = "auto",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    target_name: str = "y",
    X_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    val_fraction: float = 0.2,
    test_fraction: float | None = None,
    seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Make a `Dataset` from in-memory arrays, one sample per row.

    X: (m, n_x); y: (m,) labels / targets or (m, n_y) targets. `task` is "auto" (see
    `infer_task`), "binary", "multiclass" or "regression". If `class_names` is given, y holds
    integer class indices into it (or the names themselves). The test split is `test_fraction`
    (default 0.2) of the samples, or the fixed `X_test`, `y_test` if given.
    """
    where = f"dataset '{name}'"
    options = {
        "val_fraction": val_fraction,
        "test_fraction": _test_fraction(
            test_fraction, X_test is not None or y_test is not None, where
        ),
        "seed": seed,
        "standardize": standardize,
    }
    split = split_options(options, where)
    src = Source(
        X=X,
        y=y,
        where=where,
        task=task,
        feature_names=feature_names,
        class_names=class_names,
        target_name=target_name,
        source="arrays",
        X_test=X_test,
        y_test=y_test,
    )
    return build_dataset(src, split, name=name, options=options)


def _test_fraction(test_fraction: float | None, fixed_test: bool, where: str) -> float:
    """`test_fraction`, by default 0 with a fixed test split and SPLIT_DEFAULTS' otherwise."""
    if fixed_test and test_fraction not in (None, 0, 0.0):
        raise DataError(
            f"{where}: give either test_fraction or a fixed test split (X_test, y_test), not both"
        )
    if test_fraction is None:
        return 0.0 if fixed_test else SPLIT_DEFAULTS["test_fraction"]
    return test_fraction


def build_dataset(
    src: Source, split: SplitOptions, *, name: str, options: Mapping[str, Any]
) -> Dataset:
    """Check `src`, split it with `split` and return the standardized column-layout `Dataset`."""
    X = _features(src.X, "X", src.where)
    m, n_x = X.shape
    feature_names = _feature_names(src.feature_names, n_x, src.where)
    y = _target_array(src.y, m, "y", src.where)
    fixed = _fixed_test(src, n_x)
    t = _targets(src, y, None if fixed is None else fixed[1])
    train, val, test = _splits(m, t, split, fixed is not None, src)
    X_parts = [X[train], X[val], X[test] if fixed is None else fixed[0]]
    T_parts = [t.rows[train], t.rows[val], t.rows[test] if t.fixed is None else t.fixed]

    regression = t.task == "regression"
    x_mean, x_std = _scaler(X_parts[0]) if split.standardize else _identity_scaler(n_x)
    t_mean, t_std = _scaler(T_parts[0]) if regression else _identity_scaler(t.rows.shape[1])
    X_train, X_val, X_test = (_columns(rows, x_mean, x_std) for rows in X_parts)
    Y_train, Y_val, Y_test = (_columns(rows, t_mean, t_std) for rows in T_parts)
    return Dataset(
        name=name,
        task=t.task,
        X_train=X_train,
        Y_train=Y_train,
        X_val=X_val,
        Y_val=Y_val,
        X_test=X_test,
        Y_test=Y_test,
        x_mean=x_mean,
        x_std=x_std,
        feature_names=feature_names,
        class_names=t.class_names,
        target_name=src.target_name,
        target_mean=t_mean if regression else None,
        target_std=t_std if regression else None,
        source=src.source,
        options=dict(options),
    )


class _Targets(NamedTuple):
    task: str
    rows: Array  # (m, n_y): 0/1 or one-hot for classification, numbers for regression
    fixed: Array | None  # the same for the fixed test split, if there is one
    codes: npt.NDArray[np.intp] | None  # class indices (m,); None for regression
    class_names: tuple[str, ...]  # () for regression


def _targets(src: Source, y: np.ndarray, y_fixed: np.ndarray | None) -> _Targets:
    """The task, and the targets of the data and of its fixed test split as rows."""
    where, target = src.where, src.target_name
    task = _resolve_task(src.task, y, src.class_names, where, target)
    if task == "regression":
        T = _regression_targets(y, where, target)
        T_fixed = None if y_fixed is None else _regression_targets(y_fixed, where, target)
        if T_fixed is not None and T_fixed.shape[1] != T.shape[1]:
            raise DataError(
                f"y_test in {where} has {T_fixed.shape[1]} targets but y has {T.shape[1]}"
            )
        return _Targets(task, T, T_fixed, None, ())
    codes, class_names = _encode_labels(y, src.class_names, task, where, target)
    T = _one_hot_rows(codes, len(class_names), task)
    T_fixed = None
    if y_fixed is not None:
        given = src.class_names is not None
        codes_fixed = _encode_with(y_fixed, class_names, given, where)
        T_fixed = _one_hot_rows(codes_fixed, len(class_names), task)
    return _Targets(task, T, T_fixed, codes, class_names)


def _splits(
    m: int, t: _Targets, split: SplitOptions, fixed_test: bool, src: Source
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Train / val / test row indices, once the splits (and every class) are large enough."""
    n_val, n_test = _split_sizes(m, len(t.class_names), split, fixed_test, src.where)
    if t.codes is not None:
        _check_class_counts(t.codes, t.class_names, n_val, n_test, src.where, src.target_name)
    return _split_indices(m, t.codes, n_val, n_test, split.seed, src.where)


def infer_task(y: npt.ArrayLike, max_classes: int = MAX_AUTO_CLASSES) -> str:
    """Guess the task from targets y ((m,) or (m, n_y)).

    Several target columns: regression. Text or bool labels: classification. Whole numbers
    (integers, or floats like 1.0) with at most `max_classes` distinct values: classification.
    Anything else: regression. Classification is "binary" with 2 classes, else "multiclass".
    """
    return _infer_task(np.asarray(y), "y", "the targets", max_classes)


def _infer_task(y: np.ndarray, target: str, where: str, max_classes: int = MAX_AUTO_CLASSES) -> str:
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"
    values = _label_values(y.reshape(-1), target, where)
    n_unique = len(np.unique(values))
    if values.dtype.kind in "bU" or (values.dtype.kind == "i" and n_unique <= max_classes):
        return "binary" if n_unique == 2 else "multiclass"
    return "regression"


# checks and conversions


def _features(X: npt.ArrayLike, what: str, where: str) -> Array:
    """X as a finite float64 (m, n_x) array with m >= 1 and n_x >= 1."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        hint = "; for one feature use X.reshape(-1, 1)" if arr.ndim == 1 else ""
        raise DataError(
            f"{what} in {where} must be 2-D (samples, features), got shape {arr.shape}{hint}"
        )
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"{what} in {where} must hold numbers, got dtype {arr.dtype}; encode text features "
            "as numbers first"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{what} in {where} has no samples (rows)")
    if arr.shape[1] == 0:
        raise DataError(f"{what} in {where} has no features (columns)")
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        cols = np.flatnonzero(bad.any(axis=0))
        raise DataError(
            f"{what} in {where} has {int(bad.sum())} missing or infinite values (rows "
            f"{_listing(rows)}; feature columns {_listing(cols)}); fill or drop them"
        )
    return out


def _feature_names(names: Sequence[str] | None, n_x: int, where: str) -> tuple[str, ...]:
    if names is None:
        return tuple(f"x{i}" for i in range(n_x))
    result = tuple(str(name) for name in names)
    if len(result) != n_x:
        raise DataError(f"{where} has {len(result)} feature names for {n_x} features")
    return result


def _target_array(y: npt.ArrayLike, m: int, what: str, where: str) -> np.ndarray:
    """y as (m,) or (m, n_y); a single column (m, 1) becomes (m,)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2):
        raise DataError(f"{what} in {where} must be (samples,) or (samples, targets)")
    if arr.shape[0] != m:
        raise DataError(
            f"{what} in {where} has {arr.shape[0]} samples but the features have {m}; "
            "give one target per row"
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise DataError(f"{what} in {where} has no target columns")
    return arr


def _resolve_task(
    task: str, y: np.ndarray, class_names: Sequence[str] | None, where: str, target: str
) -> str:
    if task not in ("auto", *TASKS):
        raise DataError(f"task for {where} must be one of auto, {', '.join(TASKS)} (got {task!r})")
    if task != "auto":
        return task
    if class_names is not None and y.ndim == 1:
        return "binary" if len(class_names) == 2 else "multiclass"
    return _infer_task(y, target, where)


def _regression_targets(y: np.ndarray, where: str, target: str) -> Array:
    """Numeric regression targets as (m, n_y) float64."""
    arr = y.reshape(len(y), -1)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            arr = arr.astype(str)
    if arr.dtype.kind not in "iuf":
        raise DataError(
            f"target '{target}' in {where} is not numeric, so it cannot be a regression target; "
            "use task: multiclass (or binary), or pick a numeric target"
        )
    out = arr.astype(np.float64)
    _check_target_finite(np.asarray(np.isfinite(out).all(axis=1)), target, where)
    return out


def _label_values(y: np.ndarray, target: str, where: str) -> np.ndarray:
    """1-D labels as bool, int64 (whole numbers), float64 or str, ready for np.unique."""
    kind = y.dtype.kind
    if kind == "b":
        return y
    if kind in "iu":
        return y.astype(np.int64)
    if kind == "S":
        return y.astype(str)
    if kind == "U":
        return y
    if kind == "f":
        return _numeric_labels(y.astype(np.float64), target, where)
    if kind == "O":
        items = list(y)
        missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in items]
        _check_target_finite(~np.array(missing, dtype=bool), target, where)
        if all(isinstance(v, numbers.Real) for v in items):
            return _label_values(np.array(items), target, where)
        return np.array([str(v) for v in items], dtype=str)
    raise DataError(f"target '{target}' in {where} has unsupported dtype {y.dtype}")


def _check_target_finite(ok: npt.NDArray[np.bool_], target: str, where: str) -> None:
    """Raise naming the rows (0-based sample indices) where `ok` is False."""
    if not ok.all():
        raise DataError(
            f"target '{target}' in {where} has {int((~ok).sum())} missing or infinite values "
            f"(rows {_listing(np.flatnonzero(~ok))}); fill or drop those rows"
        )


def _numeric_labels(y: Array, target: str, where: str) -> np.ndarray:
    """Whole-number floats become int64 (so 1.0 is class "1"); other floats stay."""
    _check_target_finite(np.isfinite(y), target, where)
    if np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
        return y.astype(np.int64)
    return y


def _encode_labels(
    y: np.ndarray,
    given_names: Sequence[str] | None,
    task: str,
    where: str,
    target: str,
) -> tuple[npt.NDArray[np.intp], tuple[str, ...]]:
    """Class indices (m,) and class names for labels y (m,)."""
    if y.ndim != 1:
        raise DataError(
            f"target in {where} has {y.shape[1]} columns; a {task} task needs one label per "
            "sample (for several numeric targets use task: regression)"
        )
    values = _label_values(y, target, where)
    if given_names is not None:
        names = tuple(str(name) for name in given_names)
        codes = _encode_with(values, names, True, where)
    else:
        uniq, codes = np.unique(values, return_inverse=True)
        names = tuple(str(v) for v in uniq.tolist())
    k = len(names)
    if k < 2:
        shown = f" ({names[0]!r})" if names else ""
        raise DataError(
            f"target '{target}' in {where} has a single class{shown}; a classifier needs at "
            "least 2 classes (for a numeric target use task: regression)"
        )
    if task == "binary" and k != 2:
        raise DataError(
            f"target '{target}' in {where} has {k} classes but task is binary; use task: multiclass"
        )
    return codes.astype(np.intp), names


def _encode_with(
    y: np.ndarray, names: tuple[str, ...], indices_allowed: bool, where: str
) -> npt.NDArray[np.intp]:
    """Indices into `names` for labels y: the names themselves or (if allowed) 0..k-1."""
    values = _label_values(y.reshape(-1), "y", where)
    k = len(names)
    if values.dtype.kind == "i" and indices_allowed:
        bad = (values < 0) | (values >= k)
        if bad.any():
            raise DataError(
                f"labels in {where} must be class indices 0..{k - 1} for {k} class names; "
                f"found {_listing(np.unique(values[bad]))}"
            )
        return values.astype(np.intp)
    as_text = np.array([str(v) for v in values.tolist()], dtype=str)
    lookup = {name: i for i, name in enumerate(names)}
    unknown = sorted({v for v in as_text.tolist() if v not in lookup})
    if unknown:
        raise DataError(
            f"labels in {where} include {_listing(unknown)}, not among the classes "
            f"{', '.join(names)}"
        )
    return np.array([lookup[v] for v in as_text.tolist()], dtype=np.intp)


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def _split_sizes(
    m: int, n_classes: int, split: SplitOptions, fixed_test: bool, where: str
) -> tuple[int, int]:
    """(n_val, n_test) for m samples; raise DataError if a split would be too small."""
    n_test = 0 if fixed_test else _round(split.test_fraction * m)
    n_val = _round(split.val_fraction * m)
    n_train = m - n_val - n_test
    need = max(n_classes, 1)
    sizes = [("train", n_train), ("validation", n_val)]
    if split.test_fraction > 0 and not fixed_test:
        sizes.append(("test", n_test))
    for label, n in sizes:
        if n < need:
            fractions = f"val_fraction={split.val_fraction:g}"
            if not fixed_test:
                fractions += f" and test_fraction={split.test_fraction:g}"
            per_class = " (one per class)" if n_classes else ""
            raise DataError(
                f"{where} has {m} samples, too few for {fractions}: the {label} split would get "
                f"{n} but needs at least {need}{per_class}; add samples or change the fractions"
            )
    return n_val, n_test


def _check_class_counts(
    codes: npt.NDArray[np.intp],
    names: tuple[str, ...],
    n_val: int,
    n_test: int,
    where: str,
    target: str,
) -> None:
    """Every class needs one sample in each split it is stratified into."""
    need = 1 + (n_val > 0) + (n_test > 0)
    counts = np.bincount(codes, minlength=len(names))
    rare = [(names[i], int(c)) for i, c in enumerate(counts) if c < need]
    if rare:
        splits = "train/validation/test" if n_test > 0 else "train/validation"
        listed = ", ".join(f"'{name}' ({c} sample{'s' if c != 1 else ''})" for name, c in rare)
        raise DataError(
            f"target '{target}' in {where}: class {listed} is too rare; a stratified split "
            f"into {splits} needs at least {need} samples per class; add samples of that class "
            "or drop its rows"
        )


def _split_indices(
    m: int,
    codes: npt.NDArray[np.intp] | None,
    n_val: int,
    n_test: int,
    seed: int,
    where: str,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Seeded (and, given class codes, stratified) train / val / test row indices, from
    scikit-learn's `train_test_split`; cached per scikit-learn version (`hpexp.data.cache`), as
    importing it would cost every process that loads the dataset a second or two."""
    key = {
        "m": m,
        "codes": None
        if codes is None
        else hashlib.sha256(codes.astype(np.int64).tobytes()).hexdigest(),
        "n_val": n_val,
        "n_test": n_test,
        "seed": seed,
        "scikit-learn": package_version("scikit-learn"),
    }

    def a_partition(rows: dict[str, np.ndarray]) -> bool:
        """Whether a cache file holds a partition of the m rows, of the expected sizes."""
        parts = [rows.get(k, np.empty(0)) for k in ("train", "val", "test")]
        sizes_ok = [len(p) for p in parts] == [m - n_val - n_test, n_val, n_test]
        if not sizes_ok or any(p.dtype.kind != "i" for p in parts):
            return False
        return bool(np.array_equal(np.sort(np.concatenate(parts)), np.arange(m)))

    def split() -> dict[str, np.ndarray]:
        train, val, test = _sklearn_split(m, codes, n_val, n_test, seed, where)
        return {"train": train, "val": val, "test": test}

    rows = cached_arrays("split", key, split, a_partition)
    return rows["train"], rows["val"], rows["test"]


def _sklearn_split(
    m: int,
    codes: npt.NDArray[np.intp] | None,
    n_val: int,
    n_test: int,
    seed: int,
    where: str,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    from sklearn.model_selection import train_test_split

    index = np.arange(m)
    try:
        if n_test > 0:
            rest, test = train_test_split(
                index, test_size=n_test, random_state=seed, stratify=codes
            )
        else:
            rest, test = index, index[:0]
        train, val = train_test_split(
            rest,
            test_size=n_val,
            random_state=seed,
            stratify=None if codes is None else codes[rest],
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split {where} into train/validation/test ({exc}); add samples or change "
            "val_fraction / test_fraction"
        ) from exc
    return train, val, test


def _fixed_test(src: Source, n_x: int) -> tuple[Array, np.ndarray] | None:
    """The checked fixed test split (X_test (m_test, n_x), y_test), or None."""
    if src.X_test is None and src.y_test is None:
        return None
    if src.X_test is None or src.y_test is None:
        raise DataError(f"{src.where}: a fixed test split needs both X_test and y_test")
    X_test = _features(src.X_test, "X_test", src.where)
    if X_test.shape[1] != n_x:
        raise DataError(
            f"X_test in {src.where} has {X_test.shape[1]} features but X has {n_x}; "
            "give both with the same columns"
        )
    return X_test, _target_array(src.y_test, X_test.shape[0], "y_test", src.where)


def _one_hot_rows(codes: npt.NDArray[np.intp], k: int, task: str) -> Array:
    """(m, 1) of 0/1 for binary, else one-hot (m, k)."""
    if task == "binary":
        return codes[:, None].astype(np.float64)
    return np.eye(k)[codes]


def _scaler(rows: Array) -> tuple[Array, Array]:
    """Column means and stds of rows (m, n) as read-only (n, 1) arrays; a std of 0 becomes 1."""
    std = rows.std(axis=0)
    return _readonly(rows.mean(axis=0)[:, None]), _readonly(np.where(std > 0, std, 1.0)[:, None])


def _identity_scaler(n: int) -> tuple[Array, Array]:
    return _readonly(np.zeros((n, 1))), _readonly(np.ones((n, 1)))


def _columns(rows: Array, mean: Array, std: Array) -> Array:
    """Rows (m, n) to the standardized, read-only column layout (n, m)."""
    return _readonly((rows.T - mean) / std)


def _readonly(a: np.ndarray) -> Array:
    out = np.ascontiguousarray(a, dtype=np.float64)
    out.setflags(write=False)
    return out


def _listing(items: Sequence[Any] | np.ndarray) -> str:
    values = list(items.tolist() if isinstance(items, np.ndarray) else items)
    shown = ", ".join(str(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")
