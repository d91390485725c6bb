"""The hyperparameters a study can fix or search, with their types, defaults and valid ranges.

The same names are used in study files, in Optuna's `trial.params`, in MLflow params and in the
trials DataFrame. Per-layer values are named `hidden_units_1`, `hidden_units_2`, ... (and
`activation_1`, ...) when searched layer by layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpexp.nn.activations import ACTIVATIONS
from hpexp.nn.init import INITS
from hpexp.nn.losses import OUTPUTS
from hpexp.nn.optim import OPTIMIZERS

__all__ = ["HYPERPARAMETERS", "OUTPUT_FOR_TASK", "Hyperparameter", "check_value"]

OUTPUT_FOR_TASK = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}


@dataclass(frozen=True)
class Hyperparameter:
    """One setting: `kind` is "float", "int" or "choice"; `rule` says what values are valid."""

    name: str
    kind: str
    default: object
    rule: str
    valid: Callable[[Any], bool]
    searchable: bool = True
    per_layer: bool = False  # may be given one value per hidden layer
    nullable: bool = False  # None is a valid value (batch_size: full batch)
    help: str = ""


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _in(names: object) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and v in names  # type: ignore[operator]


def _choices(names: object) -> str:
    return "one of: " + ", ".join(sorted(names))  # type: ignore[call-overload]


_H = [
    Hyperparameter(
        "learning_rate",
        "float",
        0.01,
        "a number > 0",
        lambda v: _num(v) and v > 0,
        help="α, the step size",
    ),
    Hyperparameter(
        "iterations",
        "int",
        1000,
        "an integer > 0",
        lambda v: _int(v) and v > 0,
        help="number of parameter updates",
    ),
    Hyperparameter(
        "hidden_layers",
        "int",
        1,
        "an integer >= 0",
        lambda v: _int(v) and v >= 0,
        help="L − 1, the number of hidden layers",
    ),
    Hyperparameter(
        "hidden_units",
        "int",
        32,
        "an integer >= 1",
        lambda v: _int(v) and v >= 1,
        per_layer=True,
        help="n[l], units per hidden layer",
    ),
    Hyperparameter(
        "activation",
        "choice",
        "relu",
        _choices(ACTIVATIONS),
        _in(ACTIVATIONS),
        per_layer=True,
        help="σ of the hidden layers",
    ),
    Hyperparameter(
        "output",
        "choice",
        None,
        _choices(OUTPUTS),
        _in(OUTPUTS),
        searchable=False,
        nullable=True,
        help="output layer/loss; default from task",
    ),
    Hyperparameter("init", "choice", "he", _choices(INITS), _in(INITS)),
    Hyperparameter("optimizer", "choice", "gd", _choices(OPTIMIZERS), _in(OPTIMIZERS)),
    Hyperparameter(
        "beta", "float", 0.9, "in [0, 1)", lambda v: _num(v) and 0 <= v < 1, help="momentum's β"
    ),
    Hyperparameter(
        "beta1", "float", 0.9, "in [0, 1)", lambda v: _num(v) and 0 <= v < 1, help="Adam's β1"
    ),
    Hyperparameter(
        "beta2",
        "float",
        0.999,
        "in [0, 1)",
        lambda v: _num(v) and 0 <= v < 1,
        help="RMSprop's and Adam's β2",
    ),
    Hyperparameter("epsilon", "float", 1e-8, "a number > 0", lambda v: _num(v) and v > 0),
    Hyperparameter(
        "batch_size",
        "int",
        None,
        "an integer >= 1, or null for full batch",
        lambda v: _int(v) and v >= 1,
        nullable=True,
        help="minibatch size",
    ),
    Hyperparameter(
        "l2",
        "float",
        0.0,
        "a number >= 0",
        lambda v: _num(v) and v >= 0,
        help="λ of the L2 penalty",
    ),
    Hyperparameter(
        "dropout",
        "float",
        0.0,
        "in [0, 1)",
        lambda v: _num(v) and 0 <= v < 1,
        help="fraction of hidden units dropped in training",
    ),
    Hyperparameter(
        "lr_decay",
        "float",
        0.0,
        "a number >= 0",
        lambda v: _num(v) and v >= 0,
        help="α = α0 / (1 + lr_decay · epoch)",
    ),
    Hyperparameter(
        "eval_every",
        "int",
        10,
        "an integer >= 1",
        lambda v: _int(v) and v >= 1,
        searchable=False,
        help="evaluate and report every this many iterations",
    ),
    Hyperparameter(
        "dtype",
        "choice",
        "float64",
        "float32 or float64",
        _in(("float32", "float64")),
        searchable=False,
    ),
]

HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in _H}


def check_value(name: str, value: object) -> str | None:
    """None if `value` is valid for hyperparameter `name`, else what is wrong."""
    h = HYPERPARAMETERS[name]
    if value is None and h.nullable:
        return None
    if h.kind == "float" and _int(value):
        value = float(value)  # type: ignore[arg-type]
    if h.per_layer and isinstance(value, list):
        if not value:
            return "an empty list; give one value per hidden layer"
        bad = [v for v in value if not h.valid(v)]
        return f"{bad[0]!r} is not valid; each value must be {h.rule}" if bad else None
    return None if h.valid(value) else f"{value!r} is not valid; it must be {h.rule}"
