"""Built-in datasets: a registry of named loaders, generated or shipped with scikit-learn.

Every loader returns a row-per-sample `Source`; `load_builtin` checks the options, splits and
standardizes. Besides its own options, each dataset takes the split options (`SPLIT_DEFAULTS`:
val_fraction, test_fraction, seed, standardize); for generated datasets `seed` also seeds the
generator. Nothing is downloaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpexp.data.cache import cached_arrays, package_version
from hpexp.data.dataset import Dataset
from hpexp.data.mnist1d_cache import load_mnist1d_arrays
from hpexp.data.options import (
    SPLIT_DEFAULTS,
    as_float,
    as_int,
    check_option_names,
    split_options,
)
from hpexp.data.prepare import Source, build_dataset
from hpexp.errors import DataError

__all__ = ["DATASETS", "REGISTRY", "BuiltinDataset", "describe_datasets", "load_builtin"]


@dataclass(frozen=True)
class BuiltinDataset:
    """A named dataset: its loader, task, one-line description and own options (with defaults)."""

    name: str
    task: str
    description: str
    loader: Callable[..., Source]
    options: dict[str, Any] = field(default_factory=dict)
    fixed_test_fraction: float | None = None  # set when the data come with their own test split


#: name -> BuiltinDataset.
REGISTRY: dict[str, BuiltinDataset] = {}


def _register(
    name: str, task: str, description: str, *, fixed_test_fraction: float | None = None
) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    """Add a loader ``fn(seed, *, option=default, ...) -> Source`` to `REGISTRY`."""

    def add(fn: Callable[..., Source]) -> Callable[..., Source]:
        params = inspect.signature(fn).parameters.values()
        options = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        REGISTRY[name] = BuiltinDataset(
            name, task, description, fn, options, fixed_test_fraction=fixed_test_fraction
        )
        return fn

    return add


def _where(name: str) -> str:
    return f"dataset '{name}'"


def _source(name: str, X: np.ndarray, y: np.ndarray, **fields: Any) -> Source:
    return Source(X=X, y=y, where=_where(name), **fields)


# generated


@_register("planar", "binary", "the 2-D 'flower' of two classes from the deep learning course")
def _planar(seed: int, *, n_samples: int = 400, noise: float = 0.2) -> Source:
    """X (n_samples, 2): class j lies on petals r = 4 sin(4t), t in [3.12 j, 3.12 (j+1)]."""
    m = as_int(n_samples, "n_samples", _where("planar"), minimum=2)
    sigma = as_float(noise, "noise", _where("planar"), minimum=0.0)
    rng = np.random.default_rng(seed)
    a = 4.0  # petal length
    X, y = [], []
    for j, n in enumerate((m // 2, m - m // 2)):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.standard_normal(n) * sigma
        r = a * np.sin(4 * t) + rng.standard_normal(n) * sigma
        X.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y.append(np.full(n, j))
    return _source(
        "planar",
        np.concatenate(X),
        np.concatenate(y),
        task="binary",
        class_names=("0", "1"),
        feature_names=("x0", "x1"),
        source="planar flower (deeplearning.ai planar_utils), generated",
    )


@_register("moons", "binary", "two interleaving half circles (sklearn make_moons)")
def _moons(seed: int, *, n_samples: int = 400, noise: float = 0.2) -> Source:
    arrays = _sklearn(
        "make_moons",
        n_samples=as_int(n_samples, "n_samples", _where("moons"), minimum=2),
        noise=as_float(noise, "noise", _where("moons"), minimum=0.0),
        random_state=seed,
    )
    return _source(
        "moons",
        arrays["X"],
        arrays["y"],
        task="binary",
        class_names=("0", "1"),
        feature_names=("x0", "x1"),
        source="sklearn.datasets.make_moons",
    )


@_register("circles", "binary", "a circle inside a circle (sklearn make_circles)")
def _circles(seed: int, *, n_samples: int = 400, noise: float = 0.1, factor: float = 0.5) -> Source:
    where = _where("circles")
    arrays = _sklearn(
        "make_circles",
        n_samples=as_int(n_samples, "n_samples", where, minimum=2),
        noise=as_float(noise, "noise", where, minimum=0.0),
        factor=as_float(factor, "factor", where, minimum=0.0, maximum=1.0, exclusive_maximum=True),
        random_state=seed,
    )
    return _source(
        "circles",
        arrays["X"],
        arrays["y"],
        task="binary",
        class_names=("0", "1"),
        feature_names=("x0", "x1"),
        source="sklearn.datasets.make_circles",
    )


@_register(
    "spirals",
    "multiclass",
    "interleaved 2-D spiral arms, one class per arm (binary if n_classes=2)",
)
def _spirals(seed: int, *, n_samples: int = 600, n_classes: int = 3, noise: float = 0.2) -> Source:
    """Arm j: radius r in [0, 1], angle 2*pi*j/k + 4r + noise*N(0, 1); binary if n_classes == 2."""
    where = _where("spirals")
    k = as_int(n_classes, "n_classes", where, minimum=2, maximum=100)
    m = as_int(n_samples, "n_samples", where, minimum=k)
    sigma = as_float(noise, "noise", where, minimum=0.0)
    rng = np.random.default_rng(seed)
    X, y = [], []
    for j in range(k):
        n = m // k + (1 if j < m % k else 0)
        r = np.linspace(0.0, 1.0, n)
        t = 2 * np.pi * j / k + 4.0 * r + sigma * rng.standard_normal(n)
        X.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        y.append(np.full(n, j))
    return _source(
        "spirals",
        np.concatenate(X),
        np.concatenate(y),
        task="binary" if k == 2 else "multiclass",
        class_names=tuple(str(j) for j in range(k)),
        feature_names=("x0", "x1"),
        source="spiral arms, generated",
    )


@_register("friedman", "regression", "Friedman #1 regression problem (sklearn make_friedman1)")
def _friedman(
    seed: int, *, n_samples: int = 1000, noise: float = 1.0, n_features: int = 10
) -> Source:
    """y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise; x5.. are irrelevant."""
    where = _where("friedman")
    n_x = as_int(n_features, "n_features", where, minimum=5)
    arrays = _sklearn(
        "make_friedman1",
        n_samples=as_int(n_samples, "n_samples", where, minimum=2),
        n_features=n_x,
        noise=as_float(noise, "noise", where, minimum=0.0),
        random_state=seed,
    )
    return _source(
        "friedman",
        arrays["X"],
        arrays["y"],
        task="regression",
        feature_names=tuple(f"x{i}" for i in range(n_x)),
        target_name="y",
        source="sklearn.datasets.make_friedman1",
    )


# shipped with scikit-learn


def _sklearn(function: str, **kwargs: Any) -> dict[str, np.ndarray]:
    """What ``sklearn.datasets.<function>(**kwargs)`` returns, as arrays: X and y, and a
    loader's target_names and feature_names. Cached per scikit-learn version (`hpexp.data.cache`):
    importing scikit-learn would cost every process that loads the dataset a second or two."""

    def make() -> dict[str, np.ndarray]:
        from sklearn import datasets

        out = getattr(datasets, function)(**kwargs)
        if isinstance(out, tuple):  # a generator: (X, y)
            return {"X": out[0], "y": out[1]}
        names = {k: np.asarray(out[k]) for k in ("target_names", "feature_names") if k in out}
        return {"X": out.data, "y": out.target, **names}

    key = {"function": function, "kwargs": kwargs, "scikit-learn": package_version("scikit-learn")}
    return cached_arrays(f"sklearn-{function}", key, make)


def _sklearn_source(name: str, loader_name: str, task: str, target_name: str) -> Source:
    kwargs = {"scaled": False} if loader_name == "load_diabetes" else {}
    arrays = _sklearn(loader_name, **kwargs)
    class_names = None
    if task != "regression":
        class_names = tuple(str(c) for c in arrays["target_names"].tolist())
    return _source(
        name,
        np.asarray(arrays["X"], dtype=np.float64),
        arrays["y"],
        task=task,
        class_names=class_names,
        feature_names=tuple(str(f) for f in arrays["feature_names"].tolist()),
        target_name=target_name,
        source=f"sklearn.datasets.{loader_name}",
    )


@_register("digits", "multiclass", "8x8 images of handwritten digits, 1797 samples, 64 pixels")
def _digits(seed: int) -> Source:
    return _sklearn_source("digits", "load_digits", "multiclass", "digit")


@_register("breast_cancer", "binary", "Wisconsin breast cancer, 569 samples, 30 features")
def _breast_cancer(seed: int) -> Source:
    return _sklearn_source("breast_cancer", "load_breast_cancer", "binary", "diagnosis")


@_register("wine", "multiclass", "wine cultivars, 178 samples, 13 chemical features, 3 classes")
def _wine(seed: int) -> Source:
    return _sklearn_source("wine", "load_wine", "multiclass", "cultivar")


@_register("iris", "multiclass", "iris flowers, 150 samples, 4 features, 3 species")
def _iris(seed: int) -> Source:
    return _sklearn_source("iris", "load_iris", "multiclass", "species")


@_register("diabetes", "regression", "diabetes progression, 442 samples, 10 raw features")
def _diabetes(seed: int) -> Source:
    return _sklearn_source("diabetes", "load_diabetes", "regression", "progression")


# generated offline by the mnist1d package


@_register(
    "mnist1d",
    "multiclass",
    "MNIST-1D: 1-D signals of 40 samples, 10 digit classes; fixed 4000 train / 1000 test, "
    "validation taken from the train part",
    fixed_test_fraction=0.2,
)
def _mnist1d(seed: int) -> Source:
    arrays = load_mnist1d_arrays()
    return _source(
        "mnist1d",
        arrays["x"],
        arrays["y"],
        X_test=arrays["x_test"],
        y_test=arrays["y_test"],
        task="multiclass",
        class_names=tuple(str(d) for d in range(10)),
        feature_names=tuple(f"x{i}" for i in range(arrays["x"].shape[1])),
        target_name="digit",
        source="mnist1d.data.make_dataset (default arguments)",
    )


#: Names of the built-in datasets, sorted.
DATASETS: tuple[str, ...] = tuple(sorted(REGISTRY))


def load_builtin(name: str, options: Mapping[str, object]) -> Dataset:
    """Load the built-in dataset `name` with `options` (its own plus the split options)."""
    entry = REGISTRY[name]
    where = _where(name)
    check_option_names(options, [*SPLIT_DEFAULTS, *entry.options], where)
    if entry.fixed_test_fraction is None:
        split = split_options(options, where)
    else:
        if "test_fraction" in options:
            fraction = as_float(options["test_fraction"], "test_fraction", where)
            if fraction != entry.fixed_test_fraction:
                raise DataError(
                    f"{where} comes with its own test split ({entry.fixed_test_fraction:g} of "
                    f"the samples), so test_fraction cannot be {fraction:g}; leave "
                    "test_fraction out (val_fraction is taken from the train part)"
                )
        split = split_options({**options, "test_fraction": 0.0}, where)
    own = {key: value for key, value in options.items() if key in entry.options}
    src = entry.loader(split.seed, **own)
    resolved = {**SPLIT_DEFAULTS, **entry.options, **options}
    return build_dataset(src, split, name=name, options=resolved)


def describe_datasets() -> dict[str, str]:
    """name -> one line: task, description and the dataset's own options with defaults.

    All datasets also take the split options val_fraction (0.2), test_fraction (0.2), seed (0)
    and standardize (True).
    """
    lines = {}
    for name in DATASETS:
        entry = REGISTRY[name]
        opts = ", ".join(f"{key}={value!r}" for key, value in entry.options.items())
        lines[name] = f"{entry.task}: {entry.description}" + (f"; options: {opts}" if opts else "")
    return lines
