"""Backpropagation against centred finite differences (`hpexp.gradient_check` and by hand)."""

from __future__ import annotations

import numpy as np
import pytest

import hpexp
from hpexp.nn import activations
from hpexp.nn.activations import Activation

HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
OUTPUT_WIDTH = {"sigmoid": 1, "softmax": 3, "linear": 2}
WIDTH, M = 5, 8
TOLERANCE = 1e-7


def _dims(depth: int, n_y: int, n_x: int = 4) -> list[int]:
    """depth = number of layers with weights: depth 1 is [n_x, n_y], no hidden layer."""
    return [n_x] + [WIDTH] * (depth - 1) + [n_y]


def _cases() -> list:
    cases = []
    for output in OUTPUT_WIDTH:
        # depth 1 has no hidden layer, so the hidden activation plays no part
        cases.append(pytest.param("relu", output, 1, id=f"no_hidden-{output}-depth1"))
        for activation in HIDDEN:
            for depth in (2, 3, 4):
                cases.append(
                    pytest.param(
                        activation, output, depth, id=f"{activation}-{output}-depth{depth}"
                    )
                )
    return cases


def _model(activation, output, depth, nonzero_biases, seed=0, **kw):
    model = hpexp.MLP(
        _dims(depth, OUTPUT_WIDTH[output]),
        activation=activation,
        output=output,
        init="xavier",
        seed=seed,
        **kw,
    )
    nonzero_biases(model, seed=seed)
    return model


@pytest.mark.parametrize(("activation", "output", "depth"), _cases())
def test_backprop_matches_finite_differences(
    activation, output, depth, make_problem, nonzero_biases
):
    model = _model(activation, output, depth, nonzero_biases, seed=depth)
    X, Y = make_problem(model, M, seed=depth)
    before = {k: v.copy() for k, v in model.parameters.items()}

    difference = hpexp.gradient_check(model, X, Y)

    assert difference < TOLERANCE
    for key, value in model.parameters.items():  # the check restores every parameter
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize(
    ("activation", "output"),
    [("relu", "softmax"), ("tanh", "sigmoid"), ("leaky_relu", "linear")],
    ids=["relu-softmax", "tanh-sigmoid", "leaky_relu-linear"],
)
@pytest.mark.parametrize("l2", [0.1, 2.0], ids=["l2=0.1", "l2=2"])
def test_backprop_with_l2_matches_finite_differences(
    activation, output, l2, make_problem, nonzero_biases
):
    model = _model(activation, output, 3, nonzero_biases, seed=11)
    X, Y = make_problem(model, M, seed=11)
    assert hpexp.gradient_check(model, X, Y, l2=l2) < TOLERANCE


def test_l2_gradient_is_not_the_plain_gradient(make_problem, nonzero_biases):
    """gradient_check with l2 compares against the regularized cost, so l2 matters."""
    model = _model("tanh", "sigmoid", 2, nonzero_biases, seed=3)
    X, Y = make_problem(model, M, seed=3)
    AL, caches = model.forward(X)
    plain = model.backward(AL, Y, caches)
    regularized = model.backward(AL, Y, caches, l2=1.0)
    for l in (1, 2):
        W = model.parameters[f"W{l}"]
        np.testing.assert_allclose(regularized[f"dW{l}"] - plain[f"dW{l}"], W / M, rtol=1e-12)
        np.testing.assert_array_equal(regularized[f"db{l}"], plain[f"db{l}"])


def _scale_dW1(backward):
    def wrong(self, *args, **kwargs):
        grads = backward(self, *args, **kwargs)
        grads["dW1"] = grads["dW1"] * 1.01
        return grads

    return wrong


def _drop_one_over_m_in_dbL(backward):
    def wrong(self, AL, Y, caches, **kwargs):
        grads = backward(self, AL, Y, caches, **kwargs)
        grads[f"db{self.L}"] = grads[f"db{self.L}"] * Y.shape[1]
        return grads

    return wrong


def _forget_l2_in_backward(backward):
    def wrong(self, AL, Y, caches, **kwargs):
        kwargs["l2"] = 0.0
        return backward(self, AL, Y, caches, **kwargs)

    return wrong


@pytest.mark.parametrize(
    ("corrupt", "l2"),
    [(_scale_dW1, 0.0), (_drop_one_over_m_in_dbL, 0.0), (_forget_l2_in_backward, 0.5)],
    ids=["dW1_scaled_by_1.01", "dbL_missing_1_over_m", "backward_ignores_l2"],
)
def test_gradient_check_detects_a_wrong_backward(
    corrupt, l2, monkeypatch, make_problem, nonzero_biases
):
    model = _model("tanh", "softmax", 2, nonzero_biases, seed=5)
    X, Y = make_problem(model, M, seed=5)
    assert hpexp.gradient_check(model, X, Y, l2=l2) < TOLERANCE

    monkeypatch.setattr(hpexp.MLP, "backward", corrupt(hpexp.MLP.backward))

    assert hpexp.gradient_check(model, X, Y, l2=l2) > 1e-4


def test_gradient_check_detects_a_wrong_activation_derivative(
    monkeypatch, make_problem, nonzero_biases
):
    # tanh' is 1 − A², not 1 − A
    wrong = Activation("tanh", np.tanh, lambda Z, A: 1 - A)
    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", wrong)
    model = _model("tanh", "sigmoid", 3, nonzero_biases, seed=9)
    X, Y = make_problem(model, M, seed=9)
    assert hpexp.gradient_check(model, X, Y) > 1e-4


def _numeric_gradient(f, theta: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centred differences of the scalar f() with respect to every entry of theta (in place)."""
    grad = np.empty_like(theta)
    flat, out = theta.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        out[i] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("output", list(OUTPUT_WIDTH))
def test_input_gradient_dA0_matches_finite_differences(
    activation, output, make_problem, nonzero_biases
):
    model = _model(activation, output, 3, nonzero_biases, seed=21)
    X, Y = make_problem(model, M, seed=21)
    AL, caches = model.forward(X)
    grads = model.backward(AL, Y, caches)

    numeric = _numeric_gradient(lambda: model.cost(model.forward(X)[0], Y), X)

    # J averages over samples, so ∂J/∂X = dA0 / m
    np.testing.assert_allclose(grads["dA0"] / M, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_backprop_through_dropout_matches_finite_differences(
    activation, make_problem, nonzero_biases
):
    """With the masks held fixed (same rng seed), backprop differentiates the dropped network."""
    model = _model(activation, "softmax", 3, nonzero_biases, seed=31)
    X, Y = make_problem(model, M, seed=31)

    def cost() -> float:
        AL, _ = model.forward(X, dropout=0.4, rng=np.random.default_rng(123))
        return model.cost(AL, Y)

    AL, caches = model.forward(X, dropout=0.4, rng=np.random.default_rng(123))
    assert any((c.mask == 0).any() for c in caches[:-1])  # some units really are dropped
    grads = model.backward(AL, Y, caches)
    for key, theta in model.parameters.items():
        numeric = _numeric_gradient(cost, theta)
        np.testing.assert_allclose(grads["d" + key], numeric, rtol=1e-6, atol=1e-9, err_msg=key)


def test_gradient_check_of_untrained_default_model_on_softmax(make_problem):
    """The model as constructed (he init, zero biases) also passes for smooth activations."""
    model = hpexp.MLP([6, 5, 5, 4], activation="tanh", output="softmax", seed=2)
    X, Y = make_problem(model, 10, seed=2)
    assert hpexp.gradient_check(model, X, Y) < TOLERANCE
