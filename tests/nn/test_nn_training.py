"""The training loop end to end: datasets, optimizers, minibatches, dropout, decay, evaluation,
callbacks, the divergence guard, seeding and float32."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hpexp

OPTIMIZER_LR = {"gd": 0.5, "momentum": 0.5, "rmsprop": 0.01, "adam": 0.05}


def _params(model: hpexp.MLP) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.parameters.items()}


def _assert_same_params(a: hpexp.MLP, b: hpexp.MLP) -> None:
    assert a.parameters.keys() == b.parameters.keys()
    for key in a.parameters:
        np.testing.assert_array_equal(a.parameters[key], b.parameters[key], err_msg=key)


def _all_finite(model: hpexp.MLP) -> bool:
    return all(np.isfinite(p).all() for p in model.parameters.values())


@pytest.fixture(scope="module")
def planar() -> hpexp.Dataset:
    return hpexp.load_dataset("planar")


@pytest.fixture(scope="module")
def digits() -> hpexp.Dataset:
    return hpexp.load_dataset("digits")


# -- datasets ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_planar_flower_with_the_course_setting(planar):
    """The course: [2, 4, 1], tanh hidden, sigmoid out, full-batch gd, α = 1.2, 10000 iterations."""
    model = hpexp.MLP([2, 4, 1], activation="tanh", output="sigmoid", seed=0)
    history = hpexp.train(
        model,
        planar.X_train,
        planar.Y_train,
        learning_rate=1.2,
        iterations=10_000,
        eval_every=1000,
    )

    assert history.stop_reason == "completed"
    assert history.costs[-1] < history.costs[0] / 2
    assert hpexp.evaluate(model, planar.X_train, planar.Y_train)["accuracy"] >= 0.85
    # a linear boundary cannot get there: the hidden layer is doing the work
    assert hpexp.evaluate(model, planar.X_test, planar.Y_test)["accuracy"] >= 0.8


def test_planar_flower_is_not_linearly_separable(planar):
    """Guards the test above: logistic regression (no hidden layer) stays far below 85%."""
    model = hpexp.MLP([2, 1], output="sigmoid", seed=0)
    hpexp.train(model, planar.X_train, planar.Y_train, learning_rate=1.2, iterations=2000)
    assert hpexp.evaluate(model, planar.X_train, planar.Y_train)["accuracy"] < 0.75


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "adam", "learning_rate": 0.003, "iterations": 1000, "batch_size": 64},
        {"optimizer": "gd", "learning_rate": 0.1, "iterations": 1500, "batch_size": 32},
    ],
    ids=["adam-minibatch64", "gd-minibatch32"],
)
def test_digits_reaches_95_percent_test_accuracy(digits, settings):
    model = hpexp.MLP([64, 64, 10], activation="relu", output="softmax", seed=0)
    history = hpexp.train(
        model,
        digits.X_train,
        digits.Y_train,
        X_val=digits.X_val,
        Y_val=digits.Y_val,
        seed=0,
        eval_every=250,
        **settings,
    )

    assert history.stop_reason == "completed"
    assert history.metrics["val_accuracy"][-1] >= 0.93
    assert hpexp.evaluate(model, digits.X_test, digits.Y_test)["accuracy"] >= 0.95


# -- optimizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_LR))
@pytest.mark.parametrize("batch_size", [None, 16], ids=["full_batch", "minibatch16"])
def test_every_optimizer_decreases_the_cost(optimizer, batch_size, blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 6, 1], activation="tanh", output="sigmoid", seed=1)
    before = hpexp.evaluate(model, X, Y)["cost"]

    history = hpexp.train(
        model,
        X,
        Y,
        learning_rate=OPTIMIZER_LR[optimizer],
        iterations=100,
        optimizer=optimizer,
        batch_size=batch_size,
    )

    after = hpexp.evaluate(model, X, Y)
    assert after["cost"] < 0.5 * before
    assert after["accuracy"] >= 0.9
    assert np.all(np.isfinite(history.costs))


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_LR))
def test_optimizers_take_different_paths(optimizer, blobs):
    """Each optimizer name selects its own update rule (none silently falls back to gd)."""
    X, Y = blobs
    results = {}
    for name in ("gd", optimizer):
        model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=1)
        hpexp.train(model, X, Y, learning_rate=0.01, iterations=3, optimizer=name)
        results[name] = model.parameters["W1"]
    same = np.array_equal(results["gd"], results[optimizer])
    assert same == (optimizer == "gd")


# -- minibatches ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [120, 500], ids=["batch=m", "batch>m"])
def test_a_batch_as_large_as_the_data_is_full_batch(batch_size, blobs):
    X, Y = blobs
    full = hpexp.MLP([4, 5, 1], activation="relu", output="sigmoid", seed=3)
    batched = hpexp.MLP([4, 5, 1], activation="relu", output="sigmoid", seed=3)
    h_full = hpexp.train(full, X, Y, learning_rate=0.1, iterations=20)
    h_batched = hpexp.train(batched, X, Y, learning_rate=0.1, iterations=20, batch_size=batch_size)
    _assert_same_params(full, batched)
    np.testing.assert_array_equal(h_full.costs, h_batched.costs)


def test_minibatches_differ_from_full_batch(blobs):
    X, Y = blobs
    full = hpexp.MLP([4, 5, 1], activation="relu", output="sigmoid", seed=3)
    mini = hpexp.MLP([4, 5, 1], activation="relu", output="sigmoid", seed=3)
    hpexp.train(full, X, Y, learning_rate=0.1, iterations=20)
    hpexp.train(mini, X, Y, learning_rate=0.1, iterations=20, batch_size=16)
    assert not np.array_equal(full.parameters["W1"], mini.parameters["W1"])


@pytest.mark.parametrize(
    ("m", "batch_size", "iterations"),
    [(10, 3, 9), (12, 4, 7), (10, 10, 3), (7, 1, 10)],
    ids=["m10-b3", "m12-b4", "m10-b10", "m7-b1"],
)
def test_each_epoch_is_a_shuffled_partition_into_minibatches(m, batch_size, iterations):
    """Every epoch visits every sample exactly once: ceil(m/B) batches, the last one smaller."""
    model = hpexp.MLP([1, 1], output="linear")
    X = np.arange(m, dtype=np.float64).reshape(1, m)  # the feature is the sample's index
    Y = X.copy()
    seen: list[list[int]] = []
    forward = model._forward

    def recording_forward(Xb, *args, **kwargs):
        seen.append([int(i) for i in Xb[0]])
        return forward(Xb, *args, **kwargs)

    model._forward = recording_forward
    hpexp.train(model, X, Y, learning_rate=1e-3, iterations=iterations, batch_size=batch_size)

    assert len(seen) == iterations
    per_epoch = math.ceil(m / batch_size)
    sizes = [batch_size] * (m // batch_size) + ([m % batch_size] if m % batch_size else [])
    orders = []
    for start in range(0, iterations, per_epoch):
        epoch = seen[start : start + per_epoch]
        assert [len(b) for b in epoch] == sizes[: len(epoch)]
        if len(epoch) == per_epoch:
            order = [i for batch in epoch for i in batch]
            assert sorted(order) == list(range(m))
            orders.append(order)
    if batch_size < m and len(orders) > 1:
        assert orders[0] != orders[1]  # reshuffled every epoch


@pytest.mark.parametrize(
    ("iterations", "batch_size"),
    [(1, None), (7, None), (7, 16), (25, 50), (13, 1)],
    ids=["1-full", "7-full", "7-b16", "25-b50", "13-b1"],
)
def test_iterations_counts_parameter_updates(iterations, batch_size, blobs, monkeypatch):
    X, Y = blobs
    model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=0)
    steps = []
    step = hpexp.nn.optim.Optimizer.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(hpexp.nn.optim.Optimizer, "step", counting_step)

    history = hpexp.train(
        model, X, Y, learning_rate=0.1, iterations=iterations, batch_size=batch_size
    )

    assert len(steps) == iterations
    assert history.iterations_run == iterations
    assert len(history.costs) == iterations
    assert history.eval_steps[-1] == iterations


# -- dropout ----------------------------------------------------------------------------------


def test_dropout_trains_and_evaluation_is_deterministic(blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 16, 16, 1], activation="relu", output="sigmoid", seed=4)
    plain = hpexp.MLP([4, 16, 16, 1], activation="relu", output="sigmoid", seed=4)

    history = hpexp.train(model, X, Y, learning_rate=0.05, iterations=200, dropout=0.3)
    hpexp.train(plain, X, Y, learning_rate=0.05, iterations=200)

    assert history.stop_reason == "completed"
    assert np.mean(history.costs[-20:]) < 0.5 * history.costs[0]
    assert hpexp.evaluate(model, X, Y)["accuracy"] >= 0.9
    assert not np.array_equal(model.parameters["W1"], plain.parameters["W1"])
    # evaluation uses no dropout: the same input gives bit-identical outputs
    first, caches = model.forward(X)
    second, _ = model.forward(X)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, model.predict_proba(X))
    assert all(c.mask is None for c in caches)


@pytest.mark.parametrize("dropout", [0.2, 0.5], ids=["dropout=0.2", "dropout=0.5"])
def test_dropout_masks_are_inverted_and_only_on_hidden_layers(dropout):
    model = hpexp.MLP([5, 200, 200, 3], activation="relu", output="softmax", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 50))

    AL, caches = model.forward(X, dropout=dropout, rng=np.random.default_rng(1))

    keep = 1 - dropout
    for cache in caches[:-1]:
        values = np.unique(cache.mask)
        np.testing.assert_allclose(values, [0.0, 1 / keep])
        assert np.mean(cache.mask == 0) == pytest.approx(dropout, abs=0.02)
    assert caches[-1].mask is None  # the output layer is never dropped
    # layer 2's input is layer 1's activation times its mask
    np.testing.assert_array_equal(caches[1].A_prev, caches[0].A * caches[0].mask)
    np.testing.assert_allclose(AL.sum(axis=0), 1.0)
    # same rng seed, same masks; another seed, other masks
    again, _ = model.forward(X, dropout=dropout, rng=np.random.default_rng(1))
    other, _ = model.forward(X, dropout=dropout, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(AL, again)
    assert not np.array_equal(AL, other)


# -- learning-rate decay ----------------------------------------------------------------------


def test_lr_decay_divides_the_step_per_epoch(blobs):
    """Full batch: every update is an epoch, so update t uses α0 / (1 + decay · (t − 1))."""
    X, Y = blobs
    decayed = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=2)
    stepwise = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=2)

    hpexp.train(decayed, X, Y, learning_rate=0.6, iterations=3, lr_decay=1.0)
    for lr in (0.6 / 1, 0.6 / 2, 0.6 / 3):  # as computed: 0.6 / 3 is not the float 0.2
        hpexp.train(stepwise, X, Y, learning_rate=lr, iterations=1)

    _assert_same_params(decayed, stepwise)


def test_lr_decay_counts_epochs_not_minibatches(blobs):
    X, Y = blobs  # m = 120, batch 60: two updates per epoch
    kwargs = {"learning_rate": 0.5, "batch_size": 60, "seed": 3}

    def run(iterations: int, lr_decay: float) -> hpexp.MLP:
        model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid", seed=2)
        hpexp.train(model, X, Y, iterations=iterations, lr_decay=lr_decay, **kwargs)
        return model

    # the first epoch runs at α0 with or without decay ...
    _assert_same_params(run(2, 0.0), run(2, 5.0))
    # ... the second at α0 / 6
    assert not np.array_equal(run(3, 0.0).parameters["W1"], run(3, 5.0).parameters["W1"])
    moved_plain = np.abs(run(4, 0.0).parameters["W1"] - run(2, 0.0).parameters["W1"]).sum()
    moved_decay = np.abs(run(4, 5.0).parameters["W1"] - run(2, 5.0).parameters["W1"]).sum()
    assert moved_decay < 0.3 * moved_plain


# -- evaluation and callbacks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("iterations", "eval_every", "expected"),
    [
        (10, 3, [3, 6, 9, 10]),
        (10, 5, [5, 10]),
        (4, 1, [1, 2, 3, 4]),
        (10, 20, [10]),
        (1, 10, [1]),
    ],
    ids=["10-every3", "10-every5", "4-every1", "10-every20", "1-every10"],
)
def test_eval_every_sets_the_evaluated_iterations(iterations, eval_every, expected, blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid")
    seen = []
    history = hpexp.train(
        model,
        X,
        Y,
        X_val=X[:, :30],
        Y_val=Y[:, :30],
        learning_rate=0.1,
        iterations=iterations,
        eval_every=eval_every,
        callback=lambda step, metrics: seen.append(step),
    )

    assert history.eval_steps == expected
    assert seen == expected
    assert set(history.metrics) == {"cost", "val_cost", "val_accuracy"}
    for values in history.metrics.values():
        assert len(values) == len(expected)
    # the "cost" metric is the training cost of the update at that step
    np.testing.assert_array_equal(history.metrics["cost"], [history.costs[s - 1] for s in expected])


def test_callback_gets_validation_metrics_and_can_stop_training(blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 5, 1], activation="tanh", output="sigmoid", seed=0)
    calls = []

    def callback(step, metrics):
        calls.append((step, dict(metrics)))
        return step >= 30

    history = hpexp.train(
        model,
        X[:, :90],
        Y[:, :90],
        X_val=X[:, 90:],
        Y_val=Y[:, 90:],
        learning_rate=0.5,
        iterations=1000,
        eval_every=10,
        callback=callback,
    )

    assert history.stop_reason == "stopped"
    assert [step for step, _ in calls] == [10, 20, 30]
    assert history.iterations_run == 30
    assert len(history.costs) == 30
    assert history.eval_steps == [10, 20, 30]
    for _, metrics in calls:
        assert set(metrics) == {"cost", "val_cost", "val_accuracy"}
        assert 0.0 <= metrics["val_accuracy"] <= 1.0
    last = calls[-1][1]
    assert last["val_accuracy"] == hpexp.evaluate(model, X[:, 90:], Y[:, 90:])["accuracy"]
    assert last["val_cost"] == pytest.approx(hpexp.evaluate(model, X[:, 90:], Y[:, 90:])["cost"])
    assert history.last() == last


@pytest.mark.parametrize("returned", [None, False, 0], ids=["None", "False", "zero"])
def test_a_callback_returning_falsy_does_not_stop(returned, blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid")
    history = hpexp.train(
        model,
        X,
        Y,
        learning_rate=0.1,
        iterations=25,
        eval_every=5,
        callback=lambda step, metrics: returned,
    )
    assert history.stop_reason == "completed"
    assert history.iterations_run == 25


def test_regression_validation_metrics():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 80))
    Y = np.array([[1.0, -2.0, 0.5]]) @ X + 0.3
    model = hpexp.MLP([3, 8, 1], activation="tanh", output="linear", seed=0)
    history = hpexp.train(
        model,
        X[:, :60],
        Y[:, :60],
        X_val=X[:, 60:],
        Y_val=Y[:, 60:],
        learning_rate=0.05,
        iterations=300,
        optimizer="adam",
        eval_every=100,
    )
    assert set(history.metrics) == {
        "cost",
        "val_cost",
        "val_mse",
        "val_rmse",
        "val_mae",
        "val_r2",
    }
    last = history.last()
    assert last["val_r2"] > 0.95
    assert last["val_rmse"] == pytest.approx(math.sqrt(last["val_mse"]))
    assert last["val_cost"] == pytest.approx(last["val_mse"] / 2)  # half MSE, one output


# -- divergence guard -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_huge_learning_rate_diverges_and_keeps_finite_parameters():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 40))
    Y = rng.standard_normal((1, 40)) * 5
    model = hpexp.MLP([3, 8, 1], activation="relu", output="linear", seed=0)

    history = hpexp.train(model, X, Y, learning_rate=1e6, iterations=500, eval_every=1)

    assert history.stop_reason == "diverged"
    assert 0 < history.iterations_run < 500
    assert _all_finite(model)
    assert len(history.costs) == history.iterations_run + 1
    assert not math.isfinite(history.costs[-1])
    assert np.all(np.isfinite(history.costs[:-1]))
    # rolled back to the last evaluation: exactly the parameters after iterations_run updates
    replay = hpexp.MLP([3, 8, 1], activation="relu", output="linear", seed=0)
    h = hpexp.train(
        replay, X, Y, learning_rate=1e6, iterations=history.iterations_run, eval_every=1
    )
    assert h.stop_reason == "completed"
    _assert_same_params(model, replay)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("eval_every", [1, 7, 1000], ids=["every1", "every7", "every1000"])
def test_divergence_rolls_back_to_a_finite_evaluation(eval_every):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 30))
    Y = rng.standard_normal((2, 30))
    model = hpexp.MLP([2, 4, 2], activation="tanh", output="linear", seed=0)
    initial = _params(model)

    history = hpexp.train(model, X, Y, learning_rate=1e6, iterations=2000, eval_every=eval_every)

    assert history.stop_reason == "diverged"
    assert _all_finite(model)
    if not history.eval_steps:  # diverged before the first evaluation
        for key, value in initial.items():
            np.testing.assert_array_equal(model.parameters[key], value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("iterations", [1, 3], ids=["1_iteration", "3_iterations"])
def test_an_overflowing_last_update_is_caught(iterations):
    """The final update itself overflows: there is no next cost to see it, the parameters are."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 20)) * 10
    Y = rng.standard_normal((1, 20)) * 10
    model = hpexp.MLP([3, 4, 1], activation="tanh", output="linear", seed=0)
    initial = _params(model)

    history = hpexp.train(model, X, Y, learning_rate=1e308, iterations=iterations, eval_every=1)

    assert history.stop_reason == "diverged"
    assert _all_finite(model)
    assert len(history.costs) == history.iterations_run + 1
    assert not math.isfinite(history.costs[-1])
    for key, value in initial.items():
        np.testing.assert_array_equal(model.parameters[key], value)


# -- seeds ------------------------------------------------------------------------------------


def _trained(seed: int, model_seed: int, X, Y, optimizer="adam") -> hpexp.MLP:
    model = hpexp.MLP([4, 6, 6, 1], activation="relu", output="sigmoid", seed=model_seed)
    hpexp.train(
        model,
        X,
        Y,
        learning_rate=0.01,
        iterations=40,
        batch_size=16,
        dropout=0.2,
        optimizer=optimizer,
        seed=seed,
    )
    return model


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_LR))
def test_same_seed_gives_bit_identical_parameters(optimizer, blobs):
    X, Y = blobs
    _assert_same_params(_trained(5, 1, X, Y, optimizer), _trained(5, 1, X, Y, optimizer))


@pytest.mark.parametrize(
    ("seed", "model_seed"), [(6, 1), (5, 2)], ids=["other_train_seed", "other_model_seed"]
)
def test_a_different_seed_gives_different_parameters(seed, model_seed, blobs):
    X, Y = blobs
    reference = _trained(5, 1, X, Y)
    other = _trained(seed, model_seed, X, Y)
    assert not np.array_equal(reference.parameters["W1"], other.parameters["W1"])


def test_model_seed_fixes_initialization():
    a = hpexp.MLP([5, 4, 3], seed=9)
    b = hpexp.MLP([5, 4, 3], seed=9)
    c = hpexp.MLP([5, 4, 3], seed=10)
    _assert_same_params(a, b)
    assert not np.array_equal(a.parameters["W1"], c.parameters["W1"])


def test_training_does_not_touch_the_callers_arrays(blobs):
    X, Y = blobs
    X_copy, Y_copy = X.copy(), Y.copy()
    model = hpexp.MLP([4, 3, 1], output="sigmoid")
    hpexp.train(model, X, Y, learning_rate=0.1, iterations=30, batch_size=16, dropout=0.1)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(Y, Y_copy)


# -- float32 ----------------------------------------------------------------------------------


def test_float32_end_to_end(digits):
    model = hpexp.MLP([64, 32, 10], activation="relu", output="softmax", dtype="float32")
    assert all(p.dtype == np.float32 for p in model.parameters.values())

    AL, caches = model.forward(digits.X_train[:, :50])
    grads = model.backward(AL, digits.Y_train[:, :50].astype(np.float32), caches)
    assert AL.dtype == np.float32
    assert all(c.Z.dtype == np.float32 and c.A.dtype == np.float32 for c in caches)
    assert all(g.dtype == np.float32 for g in grads.values())

    history = hpexp.train(
        model,
        digits.X_train,
        digits.Y_train,
        X_val=digits.X_val,
        Y_val=digits.Y_val,
        learning_rate=0.003,
        iterations=800,
        batch_size=64,
        optimizer="adam",
        dropout=0.1,
        l2=0.1,
        eval_every=200,
    )

    assert history.stop_reason == "completed"
    assert all(p.dtype == np.float32 for p in model.parameters.values())
    assert model.predict_proba(digits.X_test).dtype == np.float32
    assert hpexp.evaluate(model, digits.X_test, digits.Y_test)["accuracy"] >= 0.94


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_LR))
def test_float32_parameters_stay_float32_with_every_optimizer(optimizer, blobs):
    X, Y = blobs
    model = hpexp.MLP([4, 5, 1], activation="tanh", output="sigmoid", dtype="float32")
    hpexp.train(
        model,
        X,
        Y,
        learning_rate=OPTIMIZER_LR[optimizer],
        iterations=30,
        optimizer=optimizer,
        batch_size=32,
        l2=0.5,
        lr_decay=0.1,
        dropout=0.2,
    )
    assert all(p.dtype == np.float32 for p in model.parameters.values())
    assert hpexp.evaluate(model, X, Y)["accuracy"] >= 0.9


def test_float32_follows_the_float64_trajectory(blobs):
    X, Y = blobs
    runs = {}
    for dtype in ("float32", "float64"):
        model = hpexp.MLP([4, 5, 1], activation="tanh", output="sigmoid", dtype=dtype, seed=3)
        history = hpexp.train(model, X, Y, learning_rate=0.5, iterations=50)
        runs[dtype] = (model, history)
    (m32, h32), (m64, h64) = runs["float32"], runs["float64"]
    np.testing.assert_allclose(h32.costs, h64.costs, rtol=1e-4)
    for key in m64.parameters:
        np.testing.assert_allclose(m32.parameters[key], m64.parameters[key], rtol=1e-3, atol=1e-4)
