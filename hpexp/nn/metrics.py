"""Evaluation metrics for a trained network on one split (no regularization terms)."""

from __future__ import annotations

import numpy as np

from hpexp.nn.checks import check_X, check_Y
from hpexp.nn.losses import get_output
from hpexp.nn.model import MLP

Array = np.ndarray

__all__ = ["evaluate", "metric_names"]


def metric_names(output: str) -> tuple[str, ...]:
    """The names `evaluate` returns for a model with this output layer."""
    if output == "linear":
        return ("cost", "mse", "rmse", "mae", "r2")
    return ("cost", "accuracy")


def evaluate(model: MLP, X: Array, Y: Array) -> dict[str, float]:
    """Cost and task metrics of `model` on X (n_x, m), Y (n_y, m), without dropout or L2.

    Classification: cost, accuracy. Regression (linear output): cost, mse, rmse, mae, r2
    (mse averages over samples and outputs; r2 is 1 − SS_res / SS_tot over all outputs).
    Raises ConfigError for X or Y that do not fit the model.
    """
    X = check_X(model, X)
    return _evaluate(model, X, check_Y(model, Y, X.shape[1]))


def _evaluate(model: MLP, X: Array, Y: Array) -> dict[str, float]:
    """`evaluate` for X and Y already checked (`hpexp.nn.checks`)."""
    return _scores(model.output, model._forward(X)[0], Y)


def _scores(output: str, AL: Array, Y: Array) -> dict[str, float]:
    """The metrics of `evaluate` from the output AL (n_y, m) of a model with this output layer."""
    metrics = {"cost": get_output(output).cost(AL, Y)}
    if output == "linear":
        D = AL - Y
        mse = float(np.mean(D * D))
        spread = Y - Y.mean(axis=1, keepdims=True)
        ss_tot = float(np.vdot(spread, spread))
        metrics |= {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(np.mean(np.abs(D))),
            "r2": 1.0 - float(np.vdot(D, D)) / ss_tot if ss_tot > 0 else float("nan"),
        }
    elif output == "sigmoid":
        metrics["accuracy"] = float(np.mean((AL > 0.5) == (Y > 0.5)))
    else:
        metrics["accuracy"] = float(np.mean(AL.argmax(axis=0) == Y.argmax(axis=0)))
    return metrics
