"""Every setting of a network and its training, defined once.

A `Setting` says what values a setting takes (a kind and a range, or the names of a registry),
its default, whether a study may search it, whether it may be given per hidden layer, and what
it does. This one table is used by:

- `TrainConfig`, whose fields it checks (`Setting.check`, a `ConfigError`);
- study files, whose `fixed:`, `search:` and `enqueue:` values it checks (`Setting.problem`)
  and whose unset hyperparameters take its defaults;
- README's table of hyperparameters (`markdown_table`; a test keeps the two equal).

The names are the seed's (`learning_rate`, `iterations`, `hidden_layers`, `hidden_units`, ...)
and are the same in study files, Optuna's `trial.params`, MLflow params and DataFrame columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn.activations import ACTIVATIONS
from hpexp.nn.checks import is_integer
from hpexp.nn.init import INITS
from hpexp.nn.losses import OUTPUTS
from hpexp.nn.model import DTYPES
from hpexp.nn.optim import OPTIMIZERS
from hpexp.registry import unknown_name

__all__ = [
    "HYPERPARAMETERS",
    "SEED",
    "SETTINGS",
    "Setting",
    "default",
    "is_integer",
    "is_number",
    "markdown_table",
]


@dataclass(frozen=True)
class Setting:
    """One setting. `kind` is "float", "int" or "choice".

    `valid` is the range of a number, written as messages and README show it: "> 0", ">= 1",
    "[0, 1)"; `choices` are the names of a choice, in their registry's order. `null` says what
    None means where None is valid (batch_size: "full batch"). `words` replace the range in
    messages where they say it better ("a positive integer")."""

    name: str
    kind: str
    default: object
    valid: str = ""
    choices: tuple[str, ...] = ()
    null: str = ""
    searchable: bool = True
    per_layer: bool = False  # may be given one value per hidden layer
    words: str = ""
    help: str = ""

    # -- what is valid ---------------------------------------------------------------------

    def accepts(self, value: object) -> bool:
        """Whether `value` (one value, not a per-layer list) is valid: a name among `choices`,
        or a finite number of the kind (an integer for "int") in the range; None if `null`."""
        if value is None:
            return bool(self.null)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if not (is_integer(value) if self.kind == "int" else is_number(value)):
            return False
        return _in_range(self.valid, cast(float, value))

    def rule(self, python: bool = False) -> str:
        """What a valid value is, as messages say it: "a number > 0", "in [0, 1)",
        "one of: adam, gd, ...", "a positive integer, or null for full batch". `python` gives
        TrainConfig's wording: None instead of null, a number's range without "a number"."""
        if self.kind == "choice":
            names = sorted(self.choices)
            return " or ".join(names) if len(names) == 2 else "one of: " + ", ".join(names)
        if self.words:
            text = self.words
        elif self.valid[0] in "[(":
            text = f"in {self.valid}"
        elif self.kind == "int":
            text = f"an integer {self.valid}"
        else:
            text = self.valid if python else f"a number {self.valid}"
        if self.null:
            text += f" or None ({self.null})" if python else f", or null for {self.null}"
        return text

    # -- checks ----------------------------------------------------------------------------

    def problem(self, value: object) -> str | None:
        """None if `value` is valid in a study file (for a per-layer setting: also a list with
        a value per hidden layer), else what is wrong, e.g. "'0.1' is not valid; it must be a
        number >= 0"."""
        if self.kind == "float" and is_integer(value):
            value = _as_float(cast(int, value))  # as training uses it: 0 is 0.0
        if self.per_layer and isinstance(value, list):
            if not value:
                return "an empty list; give one value per hidden layer"
            bad = [v for v in value if not self.accepts(v)]
            return f"{bad[0]!r} is not valid; each value must be {self.rule()}" if bad else None
        return None if self.accepts(value) else f"{value!r} is not valid; it must be {self.rule()}"

    def check(self, value: object) -> None:
        """Raise ConfigError unless `value` is valid for TrainConfig (a NumPy scalar counts as
        the number it holds): "l2 must be >= 0, got -1", "unknown optimizer 'sgd'; ..."."""
        plain = value.item() if isinstance(value, np.generic) else value
        if self.accepts(plain):
            return
        if self.kind == "choice":
            raise ConfigError(unknown_name(value, self.choices, self.name))
        if (
            self.kind == "float"
            and _non_finite(plain)
            and _in_range(self.valid, cast(float, plain))
        ):
            raise ConfigError(f"{self.name} must be finite, got {value!r}")
        raise ConfigError(f"{self.name} must be {self.rule(python=True)}, got {value!r}")


def is_number(v: object) -> bool:
    """A finite real number: an int or a float, not a bool, not nan or ±inf."""
    return _is_num(v) and not _non_finite(v)


def _as_float(v: int) -> float | int:
    try:
        return float(v)
    except OverflowError:  # more than a float holds: left as it is, and refused by its range
        return v


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _non_finite(v: object) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


@cache
def _bounds(valid: str) -> tuple[float, bool, float, bool]:
    """(low, low included, high, high included) of a range: "> 0", ">= 1", "[0, 1)"."""
    if valid.startswith(">="):
        return float(valid[2:]), True, math.inf, True
    if valid.startswith(">"):
        return float(valid[1:]), False, math.inf, True
    low, high = valid[1:-1].split(",")
    return float(low), valid[0] == "[", float(high), valid[-1] == "]"


def _in_range(valid: str, v: float) -> bool:
    low, low_in, high, high_in = _bounds(valid)
    above = v >= low if low_in else v > low
    below = v <= high if high_in else v < high
    return above and below


_HYPERPARAMETERS = (
    Setting("learning_rate", "float", 0.01, "> 0", help="α, the step size"),
    Setting("iterations", "int", 1000, "> 0", help="number of parameter updates"),
    Setting("hidden_layers", "int", 1, ">= 0", help="L − 1, the number of hidden layers"),
    Setting("hidden_units", "int", 32, ">= 1", per_layer=True, help="n[l], units per hidden layer"),
    Setting(
        "activation",
        "choice",
        "relu",
        choices=tuple(ACTIVATIONS),
        per_layer=True,
        help="σ of the hidden layers",
    ),
    Setting(
        "output",
        "choice",
        None,
        choices=tuple(OUTPUTS),
        null="the task's output",
        searchable=False,
        help="output layer and loss; by default the dataset's task decides",
    ),
    Setting("init", "choice", "he", choices=tuple(INITS), help="weight initialization"),
    Setting("optimizer", "choice", "gd", choices=tuple(OPTIMIZERS), help="update rule"),
    Setting("beta", "float", 0.9, "[0, 1)", help="momentum's β"),
    Setting("beta1", "float", 0.9, "[0, 1)", help="Adam's β1"),
    Setting("beta2", "float", 0.999, "[0, 1)", help="RMSprop's and Adam's β2"),
    Setting("epsilon", "float", 1e-8, "> 0", help="ε of RMSprop and Adam"),
    Setting(
        "batch_size",
        "int",
        None,
        ">= 1",
        null="full batch",
        words="a positive integer",
        help="minibatch size",
    ),
    Setting("l2", "float", 0.0, ">= 0", help="λ of the L2 penalty λ/(2m) Σ‖W‖²"),
    Setting("dropout", "float", 0.0, "[0, 1)", help="fraction of hidden units dropped in training"),
    Setting("lr_decay", "float", 0.0, ">= 0", help="α = α0 / (1 + lr_decay · epoch)"),
    Setting(
        "eval_every",
        "int",
        10,
        "> 0",
        searchable=False,
        help="evaluate and report every this many iterations",
    ),
    Setting(
        "dtype",
        "choice",
        "float64",
        choices=DTYPES,
        searchable=False,
        help="floating-point type of parameters and data",
    ),
)

#: The hyperparameters a study may fix (and, where `searchable`, search), in study-file order.
HYPERPARAMETERS: dict[str, Setting] = {s.name: s for s in _HYPERPARAMETERS}

#: A training run's seed (minibatch shuffles, dropout masks): not a hyperparameter; a study
#: derives one per trial and repeat from its own seed.
SEED = Setting("seed", "int", 0, ">= 0", searchable=False, help="random seed of one run")

#: Every setting by name: the hyperparameters and the seed.
SETTINGS: dict[str, Setting] = {**HYPERPARAMETERS, SEED.name: SEED}


def default(name: str) -> Any:
    """The default of setting `name`."""
    return SETTINGS[name].default


def markdown_table(settings: Iterable[Setting] = _HYPERPARAMETERS) -> str:
    """README's table of hyperparameters: name, kind, default, valid values, whether a study
    may search it, and what it does."""
    rows = [
        "| hyperparameter | kind | default | valid values | searchable | what it is |",
        "|---|---|---|---|---|---|",
    ]
    for s in settings:
        valid = ", ".join(s.choices) if s.kind == "choice" else s.valid
        if s.null:
            valid += f"; null: {s.null}"
        shown = "null" if s.default is None else str(s.default)
        per_layer = ", per layer too" if s.per_layer else ""
        searchable = f"yes{per_layer}" if s.searchable else "no, fixed only"
        rows.append(f"| `{s.name}` | {s.kind} | {shown} | {valid} | {searchable} | {s.help} |")
    return "\n".join(rows)
