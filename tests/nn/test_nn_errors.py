"""Bad input raises ConfigError (a ValueError) with a message that says what to fix."""

from __future__ import annotations

import numpy as np
import pytest

import hpexp
from hpexp.nn.train import TrainConfig

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((4, 10))
Y_BINARY = RNG.integers(0, 2, size=(1, 10)).astype(np.float64)
Y_ONE_HOT = np.eye(3)[:, RNG.integers(0, 3, size=10)]


def _raises(call, *fragments: str) -> str:
    with pytest.raises(hpexp.ConfigError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_config_error_is_a_value_error_and_an_hpexp_error():
    assert issubclass(hpexp.ConfigError, hpexp.HpexpError)
    assert issubclass(hpexp.DataError, hpexp.HpexpError)
    assert issubclass(hpexp.HpexpError, ValueError)


# -- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"layer_dims": [3]}, ["layer_dims", "at least two positive integers", "[3]"]),
        ({"layer_dims": []}, ["layer_dims", "[n_x, ..., n_y]"]),
        ({"layer_dims": [3, 0, 1]}, ["layer_dims", "positive integers", "[3, 0, 1]"]),
        ({"layer_dims": [3, -2, 1]}, ["layer_dims", "positive integers"]),
        ({"layer_dims": [3, 2.5, 1]}, ["layer_dims", "integers", "2.5"]),
        ({"layer_dims": 5}, ["layer_dims", "5"]),
        (
            {"layer_dims": [3, 4, 1], "activation": "relux"},
            ["unknown activation 'relux'", "leaky_relu, linear, relu, sigmoid, tanh"],
        ),
        (
            {"layer_dims": [3, 4, 1], "activation": ["relu", "tanh"]},
            ["activation lists 2 names", "1 hidden layers", "one per hidden layer"],
        ),
        (
            {"layer_dims": [3, 4, 4, 1], "activation": ["relu"]},
            ["activation lists 1 names", "2 hidden layers"],
        ),
        (
            {"layer_dims": [3, 4, 4, 1], "activation": ["relu", "swish"]},
            ["unknown activation 'swish'", "choose one of"],
        ),
        (
            {"layer_dims": [3, 1], "output": "softplus"},
            ["unknown output 'softplus'", "linear, sigmoid, softmax"],
        ),
        ({"layer_dims": [3, 1], "output": "tanh"}, ["unknown output 'tanh'"]),
        ({"layer_dims": [3, 1], "init": "glorot"}, ["unknown init 'glorot'", "he, normal, xavier"]),
        (
            {"layer_dims": [3, 1], "dtype": "float16"},
            ["unknown dtype 'float16'", "float32, float64"],
        ),
        ({"layer_dims": [3, 1], "seed": -1}, ["seed", "integer >= 0", "-1"]),
        ({"layer_dims": [3, 1], "seed": 1.5}, ["seed", "integer >= 0"]),
    ],
    ids=[
        "one_layer",
        "empty_layers",
        "zero_width",
        "negative_width",
        "float_width",
        "not_a_list",
        "unknown_activation",
        "too_many_activations",
        "too_few_activations",
        "unknown_activation_in_list",
        "unknown_output",
        "hidden_activation_as_output",
        "unknown_init",
        "unknown_dtype",
        "negative_seed",
        "float_seed",
    ],
)
def test_bad_model_arguments(kwargs, fragments):
    _raises(lambda: hpexp.MLP(**kwargs), *fragments)


def test_setting_parameters_checks_keys_and_shapes():
    model = hpexp.MLP([4, 3, 1])
    params = dict(model.parameters)
    _raises(
        lambda: setattr(model, "parameters", {k: v for k, v in params.items() if k != "b2"}),
        "exactly the keys",
        "b2",
    )
    _raises(
        lambda: setattr(model, "parameters", {**params, "W1": np.zeros((4, 3))}),
        "parameter W1 must have shape (3, 4)",
        "(4, 3)",
    )


def test_predict_proba_needs_a_probability_output():
    model = hpexp.MLP([4, 1], output="linear")
    _raises(lambda: model.predict_proba(X4), "predict_proba", "use predict")


# -- X and Y --------------------------------------------------------------------------------------


def _binary():
    return hpexp.MLP([4, 3, 1], activation="tanh", output="sigmoid")


def _softmax():
    return hpexp.MLP([4, 3, 3], activation="tanh", output="softmax")


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


@pytest.mark.parametrize(
    ("make", "X", "Y", "fragments"),
    [
        (
            _binary,
            X4.T,
            Y_BINARY,
            [
                "X must have shape (n_x=4, m)",
                "one sample per column",
                "(10, 4)",
                "transpose",
                "X.T",
            ],
        ),
        (_binary, X4[0], Y_BINARY, ["X must have shape (n_x=4, m)", "(10,)"]),
        (_binary, X4[:3], Y_BINARY, ["X must have shape (n_x=4, m)", "(3, 10)"]),
        (_binary, X4.astype(str), Y_BINARY, ["X must be real numbers"]),
        (_binary, X4 + 0j, Y_BINARY, ["X must be real numbers"]),
        (_binary, _with(X4, (1, 2), np.nan), Y_BINARY, ["X contains NaN or inf", "impute"]),
        (_binary, _with(X4, (0, 0), np.inf), Y_BINARY, ["X contains NaN or inf"]),
        (_binary, _with(X4, (3, 9), -np.inf), Y_BINARY, ["X contains NaN or inf"]),
        (_binary, X4, Y_BINARY[:, :9], ["Y must have shape (n_y=1, m=10)", "(1, 9)"]),
        (_binary, X4, Y_BINARY.T, ["Y must have shape (n_y=1, m=10)", "(10, 1)"]),
        (_binary, X4, np.vstack([Y_BINARY, Y_BINARY]), ["Y must have shape (n_y=1, m=10)"]),
        (
            _binary,
            X4,
            _with(Y_BINARY, (0, 3), 2.0),
            ["Y does not fit the sigmoid output", "[0, 1]"],
        ),
        (_binary, X4, _with(Y_BINARY, (0, 3), -1.0), ["Y does not fit the sigmoid output"]),
        (_binary, X4, _with(Y_BINARY, (0, 3), np.nan), ["Y contains NaN or inf"]),
        (_binary, X4, Y_BINARY.astype(str), ["Y must be numeric"]),
        (
            _softmax,
            X4,
            Y_ONE_HOT.argmax(axis=0),
            ["Y must have shape (n_y=3, m=10)", "one-hot encode"],
        ),
        (_softmax, X4, Y_ONE_HOT[:, :, None], ["Y must have shape (n_y=3, m=10)"]),
        (
            _softmax,
            X4,
            _with(Y_ONE_HOT, (0, slice(None)), 1.0),
            ["Y does not fit the softmax output", "one-hot"],
        ),
        (_softmax, X4, Y_ONE_HOT * 2, ["Y does not fit the softmax output", "sums to 1"]),
        (_softmax, X4, Y_ONE_HOT - 0.5, ["Y does not fit the softmax output"]),
    ],
    ids=[
        "X_rows_per_sample",
        "X_1d",
        "X_too_few_features",
        "X_strings",
        "X_complex",
        "X_nan",
        "X_inf",
        "X_minus_inf",
        "Y_too_few_samples",
        "Y_rows_per_sample",
        "Y_two_rows",
        "Y_label_2_for_sigmoid",
        "Y_negative_label",
        "Y_nan",
        "Y_strings",
        "softmax_class_indices",
        "softmax_Y_3d",
        "softmax_not_one_hot",
        "softmax_columns_sum_2",
        "softmax_negative",
    ],
)
def test_bad_data_is_refused_everywhere(make, X, Y, fragments):
    model = make()
    _raises(lambda: hpexp.train(model, X, Y, learning_rate=0.1, iterations=1), *fragments)
    _raises(lambda: hpexp.evaluate(model, X, Y), *fragments)
    _raises(lambda: hpexp.gradient_check(model, X, Y), *fragments)
    if "Y " not in fragments[0]:  # X problems: also at inference time
        _raises(lambda: model.forward(X), *fragments)
        _raises(lambda: model.predict(X), *fragments)


def test_one_dimensional_binary_labels_are_accepted():
    model = _binary()
    hpexp.train(model, X4, Y_BINARY[0], learning_rate=0.1, iterations=2)
    assert set(hpexp.evaluate(model, X4, Y_BINARY[0])) == {"cost", "accuracy"}


@pytest.mark.parametrize(
    ("X_val", "Y_val", "fragments"),
    [
        (X4.T, Y_BINARY, ["X_val must have shape (n_x=4, m)", "X_val.T"]),
        (X4, Y_BINARY[:, :5], ["Y_val must have shape (n_y=1, m=10)"]),
        (X4, Y_BINARY + 2, ["Y_val does not fit the sigmoid output"]),
        (_with(X4, (0, 0), np.nan), Y_BINARY, ["X_val contains NaN or inf"]),
        (X4, None, ["give both X_val and Y_val, or neither"]),
        (None, Y_BINARY, ["give both X_val and Y_val, or neither"]),
    ],
    ids=["X_val_transposed", "Y_val_short", "Y_val_labels", "X_val_nan", "no_Y_val", "no_X_val"],
)
def test_bad_validation_data(X_val, Y_val, fragments):
    model = _binary()
    _raises(
        lambda: hpexp.train(
            model, X4, Y_BINARY, X_val=X_val, Y_val=Y_val, learning_rate=0.1, iterations=1
        ),
        *fragments,
    )


# -- training settings ------------------------------------------------------------------------


BAD_SETTINGS = [
    ({"learning_rate": 0}, ["learning_rate must be > 0", "0"]),
    ({"learning_rate": -0.1}, ["learning_rate must be > 0", "-0.1"]),
    ({"learning_rate": float("nan")}, ["learning_rate must be"]),
    ({"learning_rate": float("inf")}, ["learning_rate must be finite"]),
    ({"learning_rate": "0.1"}, ["learning_rate must be > 0", "'0.1'"]),
    ({"iterations": 0}, ["iterations must be an integer > 0", "0"]),
    ({"iterations": -5}, ["iterations must be an integer > 0"]),
    ({"iterations": 10.0}, ["iterations must be an integer > 0", "10.0"]),
    ({"iterations": True}, ["iterations must be an integer > 0"]),
    ({"batch_size": 0}, ["batch_size must be a positive integer or None"]),
    ({"batch_size": 2.5}, ["batch_size must be a positive integer or None"]),
    ({"optimizer": "sgd"}, ["unknown optimizer 'sgd'", "gd, momentum, rmsprop, adam"]),
    ({"beta": 1.0}, ["beta must be in [0, 1)"]),
    ({"beta1": -0.1}, ["beta1 must be in [0, 1)"]),
    ({"beta2": 1.5}, ["beta2 must be in [0, 1)"]),
    ({"epsilon": 0}, ["epsilon must be > 0"]),
    ({"l2": -1}, ["l2 must be >= 0"]),
    ({"dropout": 1.0}, ["dropout must be in [0, 1)", "1.0"]),
    ({"dropout": -0.1}, ["dropout must be in [0, 1)"]),
    ({"dropout": 1.5}, ["dropout must be in [0, 1)"]),
    ({"lr_decay": -0.5}, ["lr_decay must be >= 0"]),
    ({"eval_every": 0}, ["eval_every must be an integer > 0"]),
    ({"seed": -3}, ["seed must be an integer >= 0"]),
    (
        {"learning_rte": 0.1},
        ["unknown training setting(s) learning_rte", "valid:", "learning_rate"],
    ),
    ({"epochs": 3, "lr": 0.1}, ["unknown training setting(s) epochs, lr"]),
]


@pytest.mark.parametrize(
    ("settings", "fragments"),
    BAD_SETTINGS,
    ids=[",".join(f"{k}={v!r}" for k, v in settings.items()) for settings, _ in BAD_SETTINGS],
)
def test_bad_training_settings(settings, fragments):
    model = _binary()
    params = {k: v.copy() for k, v in model.parameters.items()}
    kwargs = {"learning_rate": 0.1, "iterations": 5} | settings
    _raises(lambda: hpexp.train(model, X4, Y_BINARY, **kwargs), *fragments)
    for key, value in params.items():  # nothing was trained
        np.testing.assert_array_equal(model.parameters[key], value)


@pytest.mark.parametrize(
    ("settings", "missing"),
    [({"iterations": 5}, "learning_rate"), ({"learning_rate": 0.1}, "iterations"), ({}, "")],
    ids=["no_learning_rate", "no_iterations", "nothing"],
)
def test_required_training_settings(settings, missing):
    message = _raises(
        lambda: hpexp.train(_binary(), X4, Y_BINARY, **settings), "missing training setting"
    )
    assert missing in message


def test_settings_go_either_in_a_config_or_as_keywords():
    config = TrainConfig(learning_rate=0.1, iterations=3)
    hpexp.train(_binary(), X4, Y_BINARY, config=config)
    _raises(
        lambda: hpexp.train(_binary(), X4, Y_BINARY, config=config, iterations=5),
        "either as config=TrainConfig(...) or keywords",
    )


def test_train_config_validates_on_construction():
    _raises(lambda: TrainConfig(learning_rate=0.1, iterations=0), "iterations")
    assert TrainConfig(learning_rate=0.1, iterations=1).to_dict()["optimizer"] == "gd"
