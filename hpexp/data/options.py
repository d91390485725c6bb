"""Dataset options: the split options every dataset takes, and checks for option values.

Option values may come from Python, YAML or the command line, so the checks accept any object and
return a clean `int` / `float` / `bool`, or raise `DataError` naming the option and where it was
given (e.g. "dataset 'moons'" or "data file 'data.csv'").
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hpexp.errors import DataError

__all__ = [
    "SPLIT_DEFAULTS",
    "SplitOptions",
    "as_bool",
    "as_float",
    "as_int",
    "check_option_names",
    "split_options",
]

#: Options every dataset accepts, with their defaults.
SPLIT_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "seed": 0,
    "standardize": True,
}

_MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SplitOptions:
    """How to split and scale a dataset (see `SPLIT_DEFAULTS`)."""

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    standardize: bool = True


def check_option_names(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise `DataError` if any name in `given` is not in `valid`."""
    valid_sorted = sorted(valid)
    unknown = sorted(set(given) - set(valid_sorted))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        word = "option" if len(unknown) == 1 else "options"
        raise DataError(
            f"unknown {word} {names} for {where}; valid options: {', '.join(valid_sorted)}"
        )


def as_int(
    value: object,
    name: str,
    where: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """`value` as an int within [minimum, maximum]; bools and non-integral numbers are refused."""
    if isinstance(value, bool):
        raise DataError(f"option {name} for {where} must be an integer (got {value!r})")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        result = int(float(value))  # e.g. 1e3 written in YAML
    else:
        raise DataError(f"option {name} for {where} must be an integer (got {value!r})")
    if minimum is not None and result < minimum:
        raise DataError(f"option {name} for {where} must be >= {minimum} (got {result})")
    if maximum is not None and result > maximum:
        raise DataError(f"option {name} for {where} must be <= {maximum} (got {result})")
    return result


def as_float(
    value: object,
    name: str,
    where: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """`value` as a finite float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"option {name} for {where} must be a number (got {value!r})")
    result = float(value)
    if not math.isfinite(result):
        raise DataError(f"option {name} for {where} must be a finite number (got {value!r})")
    if minimum is not None and (result < minimum or (exclusive_minimum and result == minimum)):
        op = ">" if exclusive_minimum else ">="
        raise DataError(f"option {name} for {where} must be {op} {minimum:g} (got {result:g})")
    if maximum is not None and (result > maximum or (exclusive_maximum and result == maximum)):
        op = "<" if exclusive_maximum else "<="
        raise DataError(f"option {name} for {where} must be {op} {maximum:g} (got {result:g})")
    return result


def as_bool(value: object, name: str, where: str) -> bool:
    """`value` as a bool; only True/False (also numpy bools) are accepted."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    raise DataError(f"option {name} for {where} must be true or false (got {value!r})")


def split_options(options: Mapping[str, object], where: str) -> SplitOptions:
    """Read and check the split options in `options` (others are ignored), filling defaults."""
    val = as_float(
        options.get("val_fraction", SPLIT_DEFAULTS["val_fraction"]),
        "val_fraction",
        where,
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
    )
    if val == 0.0:
        raise DataError(
            f"option val_fraction for {where} must be > 0 (got 0): the study scores trials on "
            "the validation split; use e.g. val_fraction: 0.2"
        )
    test = as_float(
        options.get("test_fraction", SPLIT_DEFAULTS["test_fraction"]),
        "test_fraction",
        where,
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
    )
    if val + test >= 1.0:
        raise DataError(
            f"options val_fraction + test_fraction for {where} must be < 1 so that training "
            f"data remain (got {val:g} + {test:g}); lower one of them"
        )
    seed = as_int(
        options.get("seed", SPLIT_DEFAULTS["seed"]), "seed", where, minimum=0, maximum=_MAX_SEED
    )
    standardize = as_bool(
        options.get("standardize", SPLIT_DEFAULTS["standardize"]), "standardize", where
    )
    return SplitOptions(val, test, seed, standardize)
