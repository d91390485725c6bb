"""Properties that hold for every architecture, batch size and output layer (Hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpexp

HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
OUTPUTS = ("sigmoid", "softmax", "linear")
FAST = settings(max_examples=40, deadline=None, database=None)


def _labels(output: str, n_y: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if output == "sigmoid":
        return rng.integers(0, 2, size=(n_y, m)).astype(np.float64)
    if output == "softmax":
        return np.eye(n_y)[:, rng.integers(0, n_y, size=m)]
    return rng.standard_normal((n_y, m))


@st.composite
def problems(draw, max_m: int = 12):
    """(model, X, Y): depth 1–4, widths 1–8, any activations and output, m samples."""
    depth = draw(st.integers(1, 4))
    dims = draw(st.lists(st.integers(1, 8), min_size=depth + 1, max_size=depth + 1))
    activation = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1))
    output = draw(st.sampled_from(OUTPUTS))
    init = draw(st.sampled_from(["he", "xavier", "normal"]))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    seed = draw(st.integers(0, 2**16))
    m = draw(st.integers(1, max_m))
    model = hpexp.MLP(dims, activation=activation, output=output, init=init, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((dims[0], m))
    return model, X, _labels(output, dims[-1], m, rng)


@FAST
@given(problems())
def test_forward_shapes_and_caches(problem):
    model, X, _ = problem
    dims, m = model.layer_dims, X.shape[1]

    AL, caches = model.forward(X)

    assert AL.shape == (dims[-1], m)
    assert AL.dtype == model.dtype
    assert len(caches) == model.L == len(dims) - 1
    for l, cache in enumerate(caches, start=1):
        assert cache.A_prev.shape == (dims[l - 1], m)
        assert cache.W.shape == (dims[l], dims[l - 1])
        assert cache.b.shape == (dims[l], 1)
        assert cache.Z.shape == cache.A.shape == (dims[l], m)
        assert cache.mask is None
    np.testing.assert_array_equal(caches[-1].A, AL)
    assert np.isfinite(AL).all()


@FAST
@given(problems())
def test_gradient_shapes_match_what_they_differentiate(problem):
    model, X, Y = problem
    dims, m = model.layer_dims, X.shape[1]
    AL, caches = model.forward(X)

    grads = model.backward(AL, Y, caches)

    expected = {f"d{k}" for k in model.parameters} | {f"dA{l}" for l in range(model.L)}
    assert set(grads) == expected
    for key, value in model.parameters.items():
        assert grads["d" + key].shape == value.shape
    for l in range(model.L):
        assert grads[f"dA{l}"].shape == (dims[l], m)
    assert all(np.isfinite(g).all() for g in grads.values())

    no_input = model.backward(AL, Y, caches, input_grad=False)
    assert set(no_input) == expected - {"dA0"}


@FAST
@given(problems(), st.floats(0.0, 0.9))
def test_dropout_keeps_shapes_and_never_touches_the_output_layer(problem, dropout):
    model, X, Y = problem
    AL, caches = model.forward(X, dropout=dropout, rng=np.random.default_rng(0))
    assert AL.shape == (model.layer_dims[-1], X.shape[1])
    assert caches[-1].mask is None
    for cache in caches[:-1]:
        assert (cache.mask is None) == (dropout == 0)
        if cache.mask is not None:
            assert cache.mask.shape == cache.A.shape
    grads = model.backward(AL, Y, caches)
    for key, value in model.parameters.items():
        assert grads["d" + key].shape == value.shape


@FAST
@given(problems())
def test_output_layers_give_valid_outputs(problem):
    model, X, _ = problem
    AL, caches = model.forward(X)
    if model.output == "softmax":
        assert (AL >= 0).all()
        rtol = 1e-5 if model.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(AL.sum(axis=0), 1.0, rtol=rtol)
    elif model.output == "sigmoid":
        assert ((AL >= 0) & (AL <= 1)).all()
        # strictly inside (0, 1) wherever the precision can tell σ(Z) from 0 and 1
        limit = 15.0 if model.dtype == np.float32 else 35.0
        inside = np.abs(caches[-1].Z) < limit
        assert ((AL[inside] > 0) & (AL[inside] < 1)).all()


@FAST
@given(problems())
def test_predict_shapes_and_values(problem):
    model, X, _ = problem
    n_y, m = model.layer_dims[-1], X.shape[1]
    labels = model.predict(X)
    AL, _ = model.forward(X)

    if model.output == "linear":
        assert labels.shape == (n_y, m)
        np.testing.assert_array_equal(labels, AL)
        return
    np.testing.assert_array_equal(model.predict_proba(X), AL)
    assert labels.shape == (m,)
    assert np.issubdtype(labels.dtype, np.integer)
    if model.output == "sigmoid":
        assert set(np.unique(labels)) <= {0, 1}
        np.testing.assert_array_equal(labels, (AL[0] > 0.5).astype(int))
    else:
        assert ((labels >= 0) & (labels < n_y)).all()
        np.testing.assert_array_equal(labels, AL.argmax(axis=0))


@FAST
@given(problems(), st.floats(0.0, 3.0))
def test_cost_is_finite_and_non_negative(problem, l2):
    model, X, Y = problem
    AL, _ = model.forward(X)
    plain, regularized = model.cost(AL, Y), model.cost(AL, Y, l2=l2)
    assert isinstance(plain, float) and math.isfinite(plain)
    assert plain >= -1e-6
    assert regularized >= plain


def _float64(problem):
    model, X, Y = problem
    if model.dtype != np.float64:
        model = hpexp.MLP(
            list(model.layer_dims),
            activation=list(model.activations),
            output=model.output,
            init=model.init,
            seed=model.seed,
        )
    return model, X, Y


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_sample_order_does_not_matter(problem, random):
    """Permuting the columns permutes AL and leaves the cost and the weight gradients alone."""
    model, X, Y = _float64(problem)
    perm = np.array(random.sample(range(X.shape[1]), X.shape[1]))
    AL, caches = model.forward(X)
    AL_p, caches_p = model.forward(X[:, perm])
    grads, grads_p = model.backward(AL, Y, caches), model.backward(AL_p, Y[:, perm], caches_p)

    np.testing.assert_allclose(AL_p, AL[:, perm], rtol=1e-12, atol=1e-15)
    cost, cost_p = model.cost(AL, Y), model.cost(AL_p, Y[:, perm])
    assert math.isclose(cost_p, cost, rel_tol=1e-12, abs_tol=1e-15)
    for key in model.parameters:
        np.testing.assert_allclose(grads_p["d" + key], grads["d" + key], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grads_p["dA0"], grads["dA0"][:, perm], rtol=1e-12, atol=1e-15)


@FAST
@given(problems())
def test_duplicating_every_sample_changes_nothing(problem):
    """The cost and gradients are means over the samples."""
    model, X, Y = _float64(problem)
    X2, Y2 = np.concatenate([X, X], axis=1), np.concatenate([Y, Y], axis=1)
    AL, caches = model.forward(X)
    AL2, caches2 = model.forward(X2)
    assert math.isclose(model.cost(AL2, Y2), model.cost(AL, Y), rel_tol=1e-12, abs_tol=1e-15)
    grads, grads2 = model.backward(AL, Y, caches), model.backward(AL2, Y2, caches2)
    for key in model.parameters:
        np.testing.assert_allclose(grads2["d" + key], grads["d" + key], rtol=1e-10, atol=1e-13)


@settings(max_examples=30, deadline=None, database=None)
@given(
    problems(max_m=20),
    st.integers(1, 15),
    st.one_of(st.none(), st.integers(1, 25)),
    st.integers(1, 6),
    st.sampled_from(["gd", "momentum", "rmsprop", "adam"]),
    st.sampled_from([0.0, 0.3]),
)
def test_training_history_lengths(problem, iterations, batch_size, eval_every, optimizer, dropout):
    model, X, Y = problem
    shapes = {k: (v.shape, v.dtype) for k, v in model.parameters.items()}

    history = hpexp.train(
        model,
        X,
        Y,
        X_val=X,
        Y_val=Y,
        learning_rate=1e-3,
        iterations=iterations,
        batch_size=batch_size,
        eval_every=eval_every,
        optimizer=optimizer,
        dropout=dropout,
    )

    assert history.stop_reason == "completed"
    assert history.iterations_run == iterations
    assert len(history.costs) == iterations
    assert np.isfinite(history.costs).all()
    expected_steps = [t for t in range(1, iterations + 1) if t % eval_every == 0]
    if expected_steps[-1:] != [iterations]:
        expected_steps.append(iterations)
    assert history.eval_steps == expected_steps
    assert "cost" in history.metrics and "val_cost" in history.metrics
    for values in history.metrics.values():
        assert len(values) == len(expected_steps)
    assert {k: (v.shape, v.dtype) for k, v in model.parameters.items()} == shapes
    assert history.seconds >= 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", OUTPUTS[:2])
def test_huge_logits_give_finite_outputs_cost_and_gradients(output, dtype):
    """Softmax and sigmoid stay finite (no exp overflow) and the cost stays finite at ±1000."""
    n_y = 3 if output == "softmax" else 1
    model = hpexp.MLP([1, n_y], output=output, dtype=dtype)
    model.parameters = {
        "W1": np.linspace(-1000, 1000, n_y).reshape(n_y, 1),
        "b1": np.zeros((n_y, 1)),
    }
    X = np.array([[1.0, -1.0, 0.5]])
    Y = np.eye(n_y)[:, [0, 0, n_y - 1]] if output == "softmax" else np.array([[0.0, 1.0, 1.0]])
    with np.errstate(over="raise", invalid="raise"):
        AL, caches = model.forward(X)
        grads = model.backward(AL, Y, caches)
    assert np.isfinite(AL).all()
    assert ((AL >= 0) & (AL <= 1)).all()
    assert np.isfinite(model.cost(AL, Y))
    assert model.cost(AL, Y) > 10  # confidently wrong on some samples: large, but finite
    assert all(np.isfinite(g).all() for g in grads.values())
