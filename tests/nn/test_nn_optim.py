"""The update rules of gd, momentum, RMSprop and Adam, step by step."""

from __future__ import annotations

import numpy as np
import pytest

import hpexp
from hpexp.nn import optim


def _params() -> dict[str, np.ndarray]:
    return {"W1": np.array([[1.0, -2.0], [0.5, 0.0]]), "b1": np.array([[0.25], [-0.75]])}


def _grads(t: int) -> dict[str, np.ndarray]:
    """A different gradient at every step t = 1, 2, ... (fresh arrays: steps may overwrite them)."""
    return {
        "dW1": np.array([[0.1, -0.3], [0.02 * t, -1.0]]) * (1 + 0.5 * t),
        "db1": np.array([[0.4 - 0.1 * t], [1e-3]]),
    }


def test_gd_step_by_hand():
    params = _params()
    optim.make("gd", params).step(
        params, {"dW1": np.full((2, 2), 0.5), "db1": np.ones((2, 1))}, 0.1
    )
    # W − 0.1 · 0.5 = W − 0.05;  b − 0.1 · 1 = b − 0.1
    np.testing.assert_allclose(params["W1"], [[0.95, -2.05], [0.45, -0.05]], rtol=1e-15)
    np.testing.assert_allclose(params["b1"], [[0.15], [-0.85]], rtol=1e-15)


def test_momentum_steps_by_hand():
    params = {"w": np.array([1.0])}
    opt = optim.make("momentum", params, beta=0.5)
    # v1 = 0.5·0 + 0.5·4 = 2,  w = 1 − 0.1·2 = 0.8
    opt.step(params, {"dw": np.array([4.0])}, 0.1)
    np.testing.assert_allclose(params["w"], [0.8], rtol=1e-15)
    # v2 = 0.5·2 + 0.5·(−2) = 0,  w unchanged
    opt.step(params, {"dw": np.array([-2.0])}, 0.1)
    np.testing.assert_allclose(params["w"], [0.8], rtol=1e-15)
    # v3 = 0.5·0 + 0.5·6 = 3,  w = 0.8 − 0.1·3 = 0.5
    opt.step(params, {"dw": np.array([6.0])}, 0.1)
    np.testing.assert_allclose(params["w"], [0.5], rtol=1e-14)


def test_rmsprop_steps_by_hand():
    params = {"w": np.array([1.0])}
    opt = optim.make("rmsprop", params, beta2=0.75, epsilon=1e-8)
    # s1 = 0.25·16 = 4,  w = 1 − 0.1·4 / (√4 + 1e-8) ≈ 0.8
    opt.step(params, {"dw": np.array([4.0])}, 0.1)
    np.testing.assert_allclose(params["w"], [1 - 0.4 / (2 + 1e-8)], rtol=1e-15)
    # s2 = 0.75·4 + 0.25·4 = 4,  w = w − 0.1·(−2) / (√4 + 1e-8) ≈ 0.9
    opt.step(params, {"dw": np.array([-2.0])}, 0.1)
    np.testing.assert_allclose(params["w"], [1 - 0.2 / (2 + 1e-8)], rtol=1e-15)


@pytest.mark.parametrize("g", [1e-6, 0.3, -50.0], ids=["tiny", "small", "large_negative"])
def test_adam_first_step_moves_every_weight_by_about_alpha(g):
    # t = 1: v̂ = g, ŝ = g², so the step is α g / (|g| + ε) ≈ α sign(g), whatever |g| is
    params = {"w": np.array([2.0])}
    optim.make("adam", params).step(params, {"dw": np.array([g])}, 0.01)
    expected = 2.0 - 0.01 * g / (abs(g) + 1e-8)
    np.testing.assert_allclose(params["w"], [expected], rtol=1e-12)


def _textbook(name: str, steps: int, lr: float, **hyper: float) -> dict[str, np.ndarray]:
    """The lecture's formulas, written out separately for comparison."""
    beta, beta1 = hyper.get("beta", 0.9), hyper.get("beta1", 0.9)
    beta2, eps = hyper.get("beta2", 0.999), hyper.get("epsilon", 1e-8)
    params = _params()
    v = {k: np.zeros_like(p) for k, p in params.items()}
    s = {k: np.zeros_like(p) for k, p in params.items()}
    for t in range(1, steps + 1):
        grads = _grads(t)
        for k in params:
            g = grads["d" + k]
            if name == "gd":
                params[k] = params[k] - lr * g
            elif name == "momentum":
                v[k] = beta * v[k] + (1 - beta) * g
                params[k] = params[k] - lr * v[k]
            elif name == "rmsprop":
                s[k] = beta2 * s[k] + (1 - beta2) * g**2
                params[k] = params[k] - lr * g / (np.sqrt(s[k]) + eps)
            else:
                v[k] = beta1 * v[k] + (1 - beta1) * g
                s[k] = beta2 * s[k] + (1 - beta2) * g**2
                v_hat, s_hat = v[k] / (1 - beta1**t), s[k] / (1 - beta2**t)
                params[k] = params[k] - lr * v_hat / (np.sqrt(s_hat) + eps)
    return params


@pytest.mark.parametrize(
    ("name", "hyper"),
    [
        ("gd", {}),
        ("momentum", {}),
        ("momentum", {"beta": 0.5}),
        ("rmsprop", {}),
        ("rmsprop", {"beta2": 0.9, "epsilon": 1e-4}),
        ("adam", {}),
        ("adam", {"beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3}),
    ],
    ids=[
        "gd",
        "momentum",
        "momentum-beta0.5",
        "rmsprop",
        "rmsprop-beta2_0.9-eps1e-4",
        "adam",
        "adam-beta1_0.5-beta2_0.9-eps1e-3",
    ],
)
def test_optimizer_matches_the_textbook_formulas_over_many_steps(name, hyper):
    params = _params()
    opt = optim.make(name, params, **hyper)
    for t in range(1, 26):
        opt.step(params, _grads(t), 0.05)
    assert opt.t == 25
    expected = _textbook(name, 25, 0.05, **hyper)
    for key in params:
        np.testing.assert_allclose(params[key], expected[key], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["gd", "momentum", "rmsprop", "adam"])
def test_step_updates_the_parameter_arrays_in_place(name):
    params = _params()
    arrays = {k: v for k, v in params.items()}
    optim.make(name, params).step(params, _grads(1), 0.1)
    for key in params:
        assert params[key] is arrays[key]
    assert not np.array_equal(params["W1"], _params()["W1"])


def test_momentum_with_beta_zero_is_gd():
    a, b = _params(), _params()
    gd, momentum = optim.make("gd", a), optim.make("momentum", b, beta=0.0)
    for t in range(1, 6):
        gd.step(a, _grads(t), 0.1)
        momentum.step(b, _grads(t), 0.1)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-15)


@pytest.mark.parametrize(
    ("name", "hyper"),
    [("momentum", {"beta": 0.3}), ("rmsprop", {"beta2": 0.8}), ("adam", {"beta1": 0.6})],
    ids=["momentum-beta", "rmsprop-beta2", "adam-beta1"],
)
def test_train_passes_the_betas_to_the_optimizer(name, hyper, blobs):
    """train(optimizer=..., beta...=...) runs exactly the optimizer built with those betas."""
    X, Y = blobs
    model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=1)
    reference = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=1)
    hpexp.train(model, X, Y, learning_rate=0.05, iterations=4, optimizer=name, **hyper)

    opt = optim.make(name, reference.parameters, **hyper)
    for _ in range(4):
        AL, caches = reference.forward(X)
        opt.step(reference.parameters, reference.backward(AL, Y, caches, input_grad=False), 0.05)

    for key in model.parameters:
        np.testing.assert_array_equal(model.parameters[key], reference.parameters[key])
    default = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=1)
    hpexp.train(default, X, Y, learning_rate=0.05, iterations=4, optimizer=name)
    assert not np.array_equal(default.parameters["W1"], model.parameters["W1"])


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(hpexp.ConfigError, match="unknown optimizer 'sgd'") as info:
        optim.make("sgd", _params())
    for name in ("gd", "momentum", "rmsprop", "adam"):
        assert name in str(info.value)
