"""Shared fixtures for the NumPy core tests: random inputs and labels that fit a model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import hpexp


def random_labels(output: str, n_y: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Y (n_y, m) that fits the output: 0/1 labels, one-hot columns or real targets."""
    if output == "sigmoid":
        return rng.integers(0, 2, size=(n_y, m)).astype(np.float64)
    if output == "softmax":
        return np.eye(n_y)[:, rng.integers(0, n_y, size=m)]
    return rng.standard_normal((n_y, m))


def random_problem(model: hpexp.MLP, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X (n_x, m) from a standard normal and matching labels Y (n_y, m)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((model.layer_dims[0], m))
    return X, random_labels(model.output, model.layer_dims[-1], m, rng)


def randomize_biases(model: hpexp.MLP, seed: int = 0, scale: float = 0.3) -> None:
    """Give every bias a small nonzero value, so no pre-activation sits exactly on relu's kink."""
    rng = np.random.default_rng(seed + 1000)
    params = dict(model.parameters)
    for l in range(1, model.L + 1):
        b = params[f"b{l}"]
        magnitude = rng.uniform(0.2, 1.0, size=b.shape) * scale
        params[f"b{l}"] = magnitude * rng.choice([-1.0, 1.0], size=b.shape)
    model.parameters = params


@pytest.fixture(scope="session")
def make_problem() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """`make_problem(model, m, seed=0) -> (X, Y)` with Y fitting the model's output layer."""
    return random_problem


@pytest.fixture(scope="session")
def nonzero_biases() -> Callable[..., None]:
    """`nonzero_biases(model, seed=0, scale=0.3)` sets every bias to a small nonzero value."""
    return randomize_biases


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """A small, nearly separable binary problem: X (4, 120), Y (1, 120)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=120)
    X = rng.standard_normal((4, 120)) + 1.5 * (2 * y - 1) * np.array([[1.0], [0.5], [0], [-1]])
    return X, y.reshape(1, -1).astype(np.float64)
