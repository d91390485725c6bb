"""Batched training of several seeds equals training each seed alone (float64, to 1e-12)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpexp.errors import ConfigError
from hpexp.nn import MLP, History, TrainConfig, train
from hpexp.nn.batched import train_batched

from .conftest import random_labels

SEEDS = (3, 11, 42)
TOL = 1e-12


def problem(output: str, n_x: int, n_y: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    return X, random_labels(output, n_y, m, rng)


def assert_same(alone: MLP, h1: History, batched: MLP, h2: History) -> None:
    for key, p in alone.parameters.items():
        np.testing.assert_allclose(batched.parameters[key], p, rtol=0, atol=TOL, err_msg=key)
    np.testing.assert_allclose(h2.costs, h1.costs, rtol=TOL, atol=TOL, equal_nan=True)
    assert (h2.stop_reason, h2.iterations_run) == (h1.stop_reason, h1.iterations_run)
    assert h2.eval_steps == h1.eval_steps
    assert h2.metrics.keys() == h1.metrics.keys()
    for name, values in h1.metrics.items():
        np.testing.assert_allclose(h2.metrics[name], values, rtol=TOL, atol=TOL, err_msg=name)


def both(dims, activation, output, configs, X, Y, X_val=None, Y_val=None, params=None, **kw):
    """(models trained alone, their histories, models trained batched, their histories)."""

    def make(i: int, cf: TrainConfig) -> MLP:
        given = None if params is None else {k: v.copy() for k, v in params[i].items()}
        return MLP(dims, activation, output, seed=cf.seed, parameters=given)

    alone = [make(i, cf) for i, cf in enumerate(configs)]
    h_alone = [
        train(m, X, Y, X_val=X_val, Y_val=Y_val, config=cf)
        for m, cf in zip(alone, configs, strict=True)
    ]
    batched = [make(i, cf) for i, cf in enumerate(configs)]
    h_batched = train_batched(batched, X, Y, X_val=X_val, Y_val=Y_val, configs=configs, **kw)
    return alone, h_alone, batched, h_batched


CASES = [
    # (optimizer, output, activation, batch_size, dropout, l2, lr_decay)
    (opt, out, act, bs, drop, l2, decay)
    for i, (opt, out) in enumerate(
        (o, out)
        for o in ("gd", "momentum", "rmsprop", "adam")
        for out in ("sigmoid", "softmax", "linear")
    )
    for act in [("relu", "tanh", "leaky_relu", "sigmoid")[i % 4]]
    for bs, drop, l2, decay in ((None, 0.0, 0.0, 0.0), (16, 0.3, 0.1, 0.5))
]


@pytest.mark.parametrize(
    "opt, output, activation, batch_size, dropout, l2, lr_decay",
    CASES,
    ids=[
        f"{c[0]}-{c[1]}-{c[2]}-{'mini' if c[3] else 'full'}{'-reg' if c[4] else ''}" for c in CASES
    ],
)
def test_each_seed_equals_training_it_alone(
    opt, output, activation, batch_size, dropout, l2, lr_decay
):
    n_y = 1 if output == "sigmoid" else 3
    X, Y = problem(output, 5, n_y, 50)
    X_val, Y_val = problem(output, 5, n_y, 20, seed=1)
    base = TrainConfig(
        learning_rate=0.05,
        iterations=37,  # not a multiple of eval_every: the last evaluation is at the end
        batch_size=batch_size,
        optimizer=opt,
        dropout=dropout,
        l2=l2,
        lr_decay=lr_decay,
        eval_every=5,
    )
    configs = [replace(base, seed=s) for s in SEEDS]
    alone, h1, batched, h2 = both([5, 7, 6, n_y], activation, output, configs, X, Y, X_val, Y_val)
    for a, ha, b, hb in zip(alone, h1, batched, h2, strict=True):
        assert_same(a, ha, b, hb)
        assert "val_cost" in hb.metrics
    assert not np.array_equal(batched[0].parameters["W1"], batched[1].parameters["W1"])


@settings(max_examples=12, deadline=None)
@given(
    dims=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    S=st.integers(1, 4),
    m=st.integers(1, 30),
    batch_size=st.one_of(st.none(), st.integers(1, 12)),
    dropout=st.sampled_from([0.0, 0.5]),
)
def test_shapes_and_equality_for_any_architecture(dims, S, m, batch_size, dropout):
    X, Y = problem("linear", dims[0], dims[-1], m)
    configs = [
        TrainConfig(
            learning_rate=0.01, iterations=9, batch_size=batch_size, dropout=dropout, seed=s
        )
        for s in range(S)
    ]
    alone, h1, batched, h2 = both(dims, "tanh", "linear", configs, X, Y)
    for a, ha, b, hb in zip(alone, h1, batched, h2, strict=True):
        assert {k: p.shape for k, p in b.parameters.items()} == b.shapes()
        assert hb.costs.shape == (9,)
        assert_same(a, ha, b, hb)


def test_callback_sees_what_each_seed_sees_alone_and_stops_one_seed():
    X, Y = problem("softmax", 4, 3, 40)
    configs = [TrainConfig(learning_rate=0.1, iterations=30, eval_every=4, seed=s) for s in SEEDS]
    seen_alone: list[list] = [[] for _ in SEEDS]
    alone = [MLP([4, 5, 3], output="softmax", seed=s) for s in SEEDS]
    for i, (model, cf) in enumerate(zip(alone, configs, strict=True)):

        def stop_second_at_12(step, metrics, i=i):
            seen_alone[i].append((step, dict(metrics)))
            return i == 1 and step == 12

        train(model, X, Y, X_val=X, Y_val=Y, callback=stop_second_at_12, config=cf)
    seen: list[list] = [[] for _ in SEEDS]

    def callback(i, step, metrics):
        seen[i].append((step, dict(metrics)))
        return i == 1 and step == 12

    batched = [MLP([4, 5, 3], output="softmax", seed=s) for s in SEEDS]
    histories = train_batched(batched, X, Y, X_val=X, Y_val=Y, configs=configs, callback=callback)
    assert [h.stop_reason for h in histories] == ["completed", "stopped", "completed"]
    for i in range(len(SEEDS)):
        assert [s for s, _ in seen[i]] == [s for s, _ in seen_alone[i]]
        for (_, got), (_, want) in zip(seen[i], seen_alone[i], strict=True):
            assert got.keys() == want.keys()
            np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=TOL)
    assert histories[1].iterations_run == 12 and histories[0].iterations_run == 30


def diverging(kind: str) -> tuple[list[int], list[dict]]:
    """Layer dims and initial parameters for SEEDS, with seed index 1 set up to diverge:
    "cost" (a deep linear network grows until its cost is not finite) or "update" (one
    update overflows the weights while the cost is still finite)."""
    dims = [3, 8, 8, 2] if kind == "cost" else [3, 4, 2]
    params = [dict(MLP(dims, "linear", "linear", seed=s).parameters) for s in SEEDS]
    if kind == "cost":
        params[1] = {k: 3.0 * v for k, v in params[1].items()}
    else:
        params[1]["W1"], params[1]["W2"] = params[1]["W1"] * 1e250, params[1]["W2"] * 1e-150
    return dims, params


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("kind", ["cost", "update"])
@pytest.mark.parametrize("eval_every", [1, 7])
def test_a_diverging_seed_is_frozen_and_the_others_go_on(kind, eval_every):
    dims, params = diverging(kind)
    X, Y = problem("linear", 3, 2, 30)
    configs = [
        TrainConfig(learning_rate=0.05, iterations=60, eval_every=eval_every, seed=s) for s in SEEDS
    ]
    alone, h1, batched, h2 = both(dims, "linear", "linear", configs, X, Y, X, Y, params=params)
    assert [h.stop_reason for h in h1] == ["completed", "diverged", "completed"]
    assert not np.isfinite(h1[1].costs[-1]) and h1[1].iterations_run < 60
    for a, ha, b, hb in zip(alone, h1, batched, h2, strict=True):
        assert_same(a, ha, b, hb)
    assert all(np.isfinite(p).all() for p in batched[1].parameters.values())  # rolled back


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_chain_stops_the_seeds_after_a_diverged_one():
    dims, params = diverging("cost")
    X, Y = problem("linear", 3, 2, 30)
    configs = [TrainConfig(learning_rate=0.05, iterations=60, eval_every=5, seed=s) for s in SEEDS]
    alone, h1, batched, h2 = both(
        dims, "linear", "linear", configs, X, Y, X, Y, params=params, chain=True
    )
    assert [h.stop_reason for h in h2] == ["completed", "diverged", "stopped"]
    assert h2[2].iterations_run == h2[1].iterations_run
    for i in (0, 1):  # as if trained one after another: seed 2 would never have started
        assert_same(alone[i], h1[i], batched[i], h2[i])


def test_every_seed_stopping_ends_the_run():
    X, Y = problem("sigmoid", 2, 1, 20)
    configs = [TrainConfig(learning_rate=0.1, iterations=50, eval_every=5, seed=s) for s in SEEDS]
    models = [MLP([2, 3, 1], seed=s) for s in SEEDS]
    histories = train_batched(
        models, X, Y, configs=configs, callback=lambda i, step, m: step >= 5 * (i + 1)
    )
    assert [h.iterations_run for h in histories] == [5, 10, 15]
    assert {h.stop_reason for h in histories} == {"stopped"}


def test_models_or_settings_that_differ_are_refused():
    X, Y = problem("sigmoid", 2, 1, 10)
    configs = [TrainConfig(learning_rate=0.1, iterations=5, seed=s) for s in (0, 1)]
    with pytest.raises(ConfigError, match="share layer_dims"):
        train_batched([MLP([2, 3, 1]), MLP([2, 4, 1])], X, Y, configs=configs)
    with pytest.raises(ConfigError, match="seed only"):
        train_batched(
            [MLP([2, 3, 1]), MLP([2, 3, 1])],
            X,
            Y,
            configs=[configs[0], replace(configs[1], learning_rate=0.2)],
        )
    with pytest.raises(ConfigError, match="one TrainConfig per model"):
        train_batched([MLP([2, 3, 1])], X, Y, configs=configs)
