"""Output layers paired with their losses, keyed by the output activation's name.

Each pair is chosen so that the derivative of the cost with respect to the output layer's Z
is simply dZ[L] = AL − Y (shape (n_y, m)):

- sigmoid  + binary cross-entropy       J = −1/m Σ [Y log AL + (1−Y) log(1−AL)]
- softmax  + categorical cross-entropy  J = −1/m Σ Y log AL
- linear   + mean squared error         J = 1/(2m) Σ (AL − Y)²
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpexp.nn.activations import ACTIVATIONS
from hpexp.registry import lookup

Array = np.ndarray

__all__ = ["OUTPUTS", "OUTPUT_FOR_TASK", "Output", "get_output"]


def _safe_log(A: Array) -> Array:
    """log(A) with A clipped to the smallest positive float, so the cost stays finite."""
    clipped = np.maximum(A, np.finfo(A.dtype).tiny)
    return np.log(clipped, out=clipped)


def _softmax(Z: Array) -> Array:
    # Over the rows of Z (n_y, m), or of every matrix of a stack (S, n_y, m).
    E = Z - Z.max(axis=-2, keepdims=True)
    np.exp(E, out=E)
    E /= E.sum(axis=-2, keepdims=True)
    return E


def _binary_cross_entropy(AL: Array, Y: Array) -> float:
    m = Y.shape[1]
    return float(-(np.vdot(Y, _safe_log(AL)) + np.vdot(1 - Y, _safe_log(1 - AL))) / m)


def _categorical_cross_entropy(AL: Array, Y: Array) -> float:
    m = Y.shape[1]
    return float(-np.vdot(Y, _safe_log(AL)) / m)


def _half_mean_squared_error(AL: Array, Y: Array) -> float:
    m = Y.shape[1]
    D = AL - Y
    return float(np.vdot(D, D) / (2 * m))


def _check_probabilities(Y: Array) -> str | None:
    if Y.min() < 0 or Y.max() > 1:
        return "labels must lie in [0, 1] (0/1 labels or probabilities)"
    return None


def _check_one_hot(Y: Array) -> str | None:
    if Y.min() < 0 or Y.max() > 1 or not np.allclose(Y.sum(axis=0), 1.0, atol=1e-4):
        return "each column must be a one-hot (or probability) vector that sums to 1"
    return None


def _check_any(Y: Array) -> str | None:
    return None


@dataclass(frozen=True)
class Output:
    """Output activation, its cost J(AL, Y) without regularization, and a label check."""

    name: str
    task: str
    forward: Callable[[Array], Array]
    cost: Callable[[Array, Array], float]
    check_labels: Callable[[Array], str | None]


OUTPUTS: dict[str, Output] = {
    "sigmoid": Output(
        "sigmoid",
        "binary",
        ACTIVATIONS["sigmoid"].forward,
        _binary_cross_entropy,
        _check_probabilities,
    ),
    "softmax": Output(
        "softmax", "multiclass", _softmax, _categorical_cross_entropy, _check_one_hot
    ),
    "linear": Output("linear", "regression", lambda Z: Z, _half_mean_squared_error, _check_any),
}

#: The output layer (and loss) for each task: binary -> sigmoid, multiclass -> softmax,
#: regression -> linear.
OUTPUT_FOR_TASK: dict[str, str] = {o.task: name for name, o in OUTPUTS.items()}


def get_output(name: str) -> Output:
    """Look up an output/loss pair by name; unknown names raise ConfigError listing the choices."""
    return lookup(OUTPUTS, name, "output", sort=True)
