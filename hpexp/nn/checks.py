"""The core's input checks, kept beside the equations (`model.py`, `train.py`) instead of in them.

Each check returns what the equations compute on (sizes as ints, names resolved, arrays of the
model's dtype in the column-per-sample layout) or raises `ConfigError` naming the argument and
the fix. Training runs the checks once, at its entry; the loop then trusts its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn.activations import get_activation
from hpexp.nn.init import INITS
from hpexp.nn.limits import check_model_size, count_parameters, describe
from hpexp.nn.losses import get_output

if TYPE_CHECKING:
    from hpexp.nn.model import MLP

Array = np.ndarray

__all__ = [
    "DTYPES",
    "Architecture",
    "check_X",
    "check_Y",
    "check_architecture",
    "check_data",
    "check_parameters",
    "is_integer",
]

DTYPES = ("float32", "float64")


class Architecture(NamedTuple):
    """An MLP's constructor arguments, checked and normalized."""

    layer_dims: tuple[int, ...]
    activations: tuple[str, ...]  # one name per hidden layer
    output: str
    init: str
    seed: int
    dtype: np.dtype


def is_integer(v: object) -> bool:
    """An integer (a Python or NumPy int), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_architecture(
    layer_dims: Sequence[int],
    activation: str | Sequence[str],
    output: str,
    init: str,
    seed: int,
    dtype: str,
) -> Architecture:
    """MLP's arguments as an Architecture; a network over the size limit is refused here,
    before anything is allocated."""
    dims = list(layer_dims) if isinstance(layer_dims, (Sequence, np.ndarray)) else []
    if len(dims) < 2 or not all(is_integer(n) and n >= 1 for n in dims):
        raise ConfigError(
            f"layer_dims must list at least two positive integers [n_x, ..., n_y], "
            f"got {layer_dims!r}"
        )
    names = [activation] * (len(dims) - 2) if isinstance(activation, str) else list(activation)
    if len(names) != len(dims) - 2:
        raise ConfigError(
            f"activation lists {len(names)} names but layer_dims has {len(dims) - 2} hidden "
            "layers; give one name, or one per hidden layer"
        )
    if str(dtype) not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if not is_integer(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(init, str) or init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of: {', '.join(sorted(INITS))}")
    check_model_size(count_parameters(dims), str(dtype), what=describe(dims))
    return Architecture(
        layer_dims=tuple(int(n) for n in dims),
        activations=tuple(get_activation(n).name for n in names),
        output=get_output(output).name,
        init=init,
        seed=int(seed),
        dtype=np.dtype(str(dtype)),
    )


def check_parameters(
    new: Mapping[str, Array], shapes: Mapping[str, tuple[int, int]], dtype: np.dtype
) -> dict[str, Array]:
    """`new` as contiguous `dtype` arrays with exactly the keys and shapes of `shapes`."""
    if set(new) != set(shapes):
        raise ConfigError(
            f"parameters must have exactly the keys {sorted(shapes)}, got {sorted(new)}"
        )
    converted = {}
    for key, shape in shapes.items():
        value = np.asarray(new[key], dtype=dtype)
        if value.shape != shape:
            raise ConfigError(f"parameter {key} must have shape {shape}, got {value.shape}")
        converted[key] = np.ascontiguousarray(value)
    return converted


def check_X(model: MLP, X: Array, name: str = "X") -> Array:
    """X as a (n_x, m) array of the model's dtype."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != model.layer_dims[0]:
        raise ConfigError(
            f"{name} must have shape (n_x={model.layer_dims[0]}, m) with one sample per "
            f"column, got {X.shape}; transpose row-per-sample data with {name}.T"
        )
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ConfigError(f"{name} must be real numbers, got dtype {X.dtype}")
    X = np.asarray(X, dtype=model.dtype)
    if not np.isfinite(X).all():
        raise ConfigError(
            f"{name} contains NaN or inf; remove or impute those values before training"
        )
    return X


def check_Y(model: MLP, Y: Array, m: int, name: str = "Y") -> Array:
    """Y as a (n_y, m) array of the model's dtype, with labels that fit its output layer."""
    Y = np.asarray(Y)
    n_y = model.layer_dims[-1]
    if Y.ndim == 1 and n_y == 1:
        Y = Y.reshape(1, -1)
    if Y.ndim != 2 or Y.shape != (n_y, m):
        raise ConfigError(
            f"{name} must have shape (n_y={n_y}, m={m}), got {Y.shape}"
            + ("; one-hot encode class labels for a softmax output" if n_y > 1 else "")
        )
    if not np.issubdtype(Y.dtype, np.number) and Y.dtype != bool:
        raise ConfigError(f"{name} must be numeric, got dtype {Y.dtype}")
    Y = np.asarray(Y, dtype=model.dtype)
    if not np.isfinite(Y).all():
        raise ConfigError(f"{name} contains NaN or inf")
    problem = get_output(model.output).check_labels(Y)
    if problem:
        raise ConfigError(f"{name} does not fit the {model.output} output: {problem}")
    return Y


def check_data(
    model: MLP, X: Array, Y: Array, X_val: Array | None, Y_val: Array | None
) -> tuple[Array, Array, Array | None, Array | None]:
    """Training data (X, Y) and optional validation data (X_val, Y_val), checked for `model`;
    validation data without samples comes back as (None, None)."""
    X = check_X(model, X, "X")
    Y = check_Y(model, Y, X.shape[1], "Y")
    if (X_val is None) != (Y_val is None):
        raise ConfigError("give both X_val and Y_val, or neither")
    if X_val is not None and Y_val is not None:
        X_val = check_X(model, X_val, "X_val")
        Y_val = check_Y(model, Y_val, X_val.shape[1], "Y_val")
        if X_val.shape[1] == 0:
            X_val = Y_val = None
    return X, Y, X_val, Y_val
