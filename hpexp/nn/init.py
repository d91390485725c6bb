"""Weight initialization schemes, keyed by name.

Each returns W[l] of shape (n[l], n[l-1]); biases always start at zero, shape (n[l], 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hpexp.registry import lookup

__all__ = ["INITS", "init_weights"]


def _he(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)


def _xavier(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(1.0 / n_in)


def _normal(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    # The lecture's first recipe: small random numbers, np.random.randn(...) * 0.01.
    return rng.standard_normal((n_out, n_in)) * 0.01


INITS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "he": _he,
    "xavier": _xavier,
    "normal": _normal,
}


def init_weights(name: str, rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """W of shape (n_out, n_in), float64, drawn with the named scheme."""
    return lookup(INITS, name, "init", sort=True)(rng, n_out, n_in)
