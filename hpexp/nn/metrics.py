"""Evaluation metrics for a trained network on one split (no regularization terms).

`METRICS` names every metric hpexp knows, once: what it measures, which way is better and the
tasks it applies to. A study's objectives are these names (split metrics with the split in
front: `val_accuracy`); `evaluate` returns the split metrics of a model's task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpexp.nn.checks import check_X, check_Y
from hpexp.nn.losses import OUTPUTS, get_output
from hpexp.nn.model import MLP

Array = np.ndarray

__all__ = ["METRICS", "Metric", "evaluate"]

TASKS = tuple(dict.fromkeys(o.task for o in OUTPUTS.values()))  # binary, multiclass, regression
CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class Metric:
    """One metric: `direction` is the better way ("maximize" or "minimize"); `split` is True
    for a metric `evaluate` measures on a split, False for one that describes the trained
    network or its run."""

    name: str
    direction: str
    tasks: tuple[str, ...]
    split: bool = True
    help: str = ""


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "maximize", CLASSIFICATION, help="fraction of samples classified right"),
        Metric("cost", "minimize", TASKS, help="the loss J, without the L2 term"),
        Metric("rmse", "minimize", ("regression",), help="root mean squared error"),
        Metric("mse", "minimize", ("regression",), help="mean squared error"),
        Metric("mae", "minimize", ("regression",), help="mean absolute error"),
        Metric("r2", "maximize", ("regression",), help="coefficient of determination"),
        Metric("n_params", "minimize", TASKS, split=False, help="weights and biases"),
        Metric("train_seconds", "minimize", TASKS, split=False, help="training time"),
    )
}


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
