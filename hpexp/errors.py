"""Exceptions hpexp raises for bad input.

Every message names what is wrong (a file, a field, an argument) and how to fix it. The CLI turns
any `HpexpError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "HpexpError", "ServiceError", "SpecError", "StoreError"]


class HpexpError(ValueError):
    """Base class: bad input a user can fix."""


class ConfigError(HpexpError):
    """A model or training argument is invalid (shape, name, range)."""


class DataError(HpexpError):
    """A dataset name, data file or array is invalid."""


class SpecError(HpexpError):
    """A study file (YAML) or study spec is invalid."""


class StoreError(HpexpError):
    """An Optuna or MLflow store is damaged or cannot be opened."""


class ServiceError(HpexpError):
    """A local server (PostgreSQL, MLflow) is missing, cannot start, or its port is taken."""
