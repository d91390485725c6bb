"""The hyperparameters a study can fix or search: the core's table of settings, seen from a study.

Each hyperparameter (kind, default, valid values, whether it can be searched or given per layer)
is defined once, in `hpexp.nn.settings`; this module names what the search side uses of it.
Per-layer values are named `hidden_units_1`, `hidden_units_2`, ... (and `activation_1`, ...) in
Optuna's `trial.params` when searched layer by layer.
"""

from __future__ import annotations

from hpexp.nn.losses import OUTPUT_FOR_TASK
from hpexp.nn.settings import HYPERPARAMETERS, Setting

__all__ = ["HYPERPARAMETERS", "OUTPUT_FOR_TASK", "SEARCHABLE", "Hyperparameter", "check_value"]

Hyperparameter = Setting

#: The hyperparameters a study may search, in study-file order.
SEARCHABLE = tuple(name for name, h in HYPERPARAMETERS.items() if h.searchable)


def check_value(name: str, value: object) -> str | None:
    """None if `value` is valid for hyperparameter `name` in a study file, else what is wrong."""
    return HYPERPARAMETERS[name].problem(value)
