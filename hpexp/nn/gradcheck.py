"""Gradient checking: backprop against centred finite differences over every parameter."""

from __future__ import annotations

import numpy as np

from hpexp.nn.checks import check_X, check_Y
from hpexp.nn.model import MLP

__all__ = ["gradient_check"]


def gradient_check(
    model: MLP, X: np.ndarray, Y: np.ndarray, eps: float = 1e-7, *, l2: float = 0.0
) -> float:
    """Relative difference ||g − g̃|| / (||g|| + ||g̃||) between backprop's gradient g and
    g̃_i = (J(θ + ε e_i) − J(θ − ε e_i)) / 2ε, over all of W1, b1, ..., WL, bL.

    X (n_x, m), Y (n_y, m). Use float64 and no dropout; values below ~1e-7 mean correct.
    """
    X = check_X(model, X)
    Y = check_Y(model, Y, X.shape[1])
    AL, caches = model._forward(X)
    grads = model.backward(AL, Y, caches, l2=l2)
    analytic, numeric = [], []
    for key, theta in model.parameters.items():
        flat = theta.reshape(-1)  # a view: edits change the model
        approx = np.empty(flat.size)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            j_plus = model.cost(model._forward(X)[0], Y, l2=l2)
            flat[i] = saved - eps
            j_minus = model.cost(model._forward(X)[0], Y, l2=l2)
            flat[i] = saved
            approx[i] = (j_plus - j_minus) / (2 * eps)
        analytic.append(grads["d" + key].reshape(-1))
        numeric.append(approx)
    g, g_approx = np.concatenate(analytic), np.concatenate(numeric)
    denominator = np.linalg.norm(g) + np.linalg.norm(g_approx)
    return float(np.linalg.norm(g - g_approx) / denominator) if denominator else 0.0
