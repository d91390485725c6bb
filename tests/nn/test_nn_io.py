"""Model files: PATH.npz (parameters) + PATH.json (architecture, metadata), never pickle."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import hpexp

ARCHITECTURES = [
    pytest.param(
        {"layer_dims": [4, 6, 3], "activation": "relu", "output": "softmax"}, id="relu-softmax"
    ),
    pytest.param(
        {"layer_dims": [4, 5, 3, 1], "activation": ["tanh", "leaky_relu"], "output": "sigmoid"},
        id="mixed-sigmoid",
    ),
    pytest.param(
        {"layer_dims": [4, 2], "output": "linear", "init": "xavier"}, id="no_hidden-linear"
    ),
    pytest.param(
        {
            "layer_dims": [4, 7, 7, 7, 2],
            "activation": "sigmoid",
            "output": "linear",
            "init": "normal",
            "seed": 12,
        },
        id="deep-normal_init",
    ),
]


def _trained(dtype: str, make_problem, **architecture) -> tuple[hpexp.MLP, np.ndarray]:
    model = hpexp.MLP(dtype=dtype, **architecture)
    X, Y = make_problem(model, 30, seed=1)
    hpexp.train(model, X, Y, learning_rate=0.05, iterations=20, optimizer="adam")
    return model, X


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_round_trip_is_exact(architecture, dtype, tmp_path, make_problem):
    model, X = _trained(dtype, make_problem, **architecture)
    model.metadata = {
        "trial": 7,
        "study": "quickstart",
        "val_accuracy": 0.9375,
        "params": {"learning_rate": 0.05, "hidden_units": [6, 3], "optimizer": "adam"},
        "notes": None,
        "best": True,
        "unicode": "α = 0.05 ✓",
    }

    written = hpexp.save_model(model, tmp_path / "best")
    loaded = hpexp.load_model(tmp_path / "best")

    assert written == tmp_path / "best.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.npz"]
    assert loaded.config() == model.config()
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.metadata == model.metadata
    assert list(loaded.parameters) == list(model.parameters)
    for key, value in model.parameters.items():
        assert loaded.parameters[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded.parameters[key], value, err_msg=key)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.forward(X)[0], model.forward(X)[0])


def test_loaded_model_trains_on_exactly_like_the_original(tmp_path, make_problem):
    model, X = _trained("float64", make_problem, layer_dims=[4, 5, 3], output="softmax")
    _, Y = make_problem(model, 30, seed=1)
    hpexp.save_model(model, tmp_path / "m")
    loaded = hpexp.load_model(tmp_path / "m")
    for m in (model, loaded):
        hpexp.train(m, X, Y, learning_rate=0.1, iterations=10, batch_size=8, seed=4)
    for key in model.parameters:
        np.testing.assert_array_equal(loaded.parameters[key], model.parameters[key])


@pytest.mark.parametrize(
    ("saved_as", "loaded_as"),
    [("m", "m.npz"), ("m", "m.json"), ("m.npz", "m"), ("m.json", "m.npz")],
    ids=["load-npz", "load-json", "save-npz", "save-json"],
)
def test_either_suffix_names_the_same_model(saved_as, loaded_as, tmp_path):
    model = hpexp.MLP([3, 2, 1], seed=4)
    hpexp.save_model(model, tmp_path / saved_as)
    assert {p.name for p in tmp_path.iterdir()} == {"m.npz", "m.json"}
    loaded = hpexp.load_model(str(tmp_path / loaded_as))
    np.testing.assert_array_equal(loaded.parameters["W1"], model.parameters["W1"])


def test_save_creates_folders_and_overwrites(tmp_path):
    path = tmp_path / "a" / "b" / "model"
    first = hpexp.MLP([3, 2, 1], seed=1)
    second = hpexp.MLP([3, 2, 1], seed=2)
    hpexp.save_model(first, path)
    hpexp.save_model(second, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.npz"]
    np.testing.assert_array_equal(hpexp.load_model(path).parameters["W1"], second.parameters["W1"])


def test_json_file_is_plain_and_readable(tmp_path):
    model = hpexp.MLP([3, 4, 2], activation="tanh", output="softmax", seed=5)
    model.metadata = {"dataset": "digits"}
    hpexp.save_model(model, tmp_path / "m")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["model"] == {
        "layer_dims": [3, 4, 2],
        "activation": ["tanh"],
        "output": "softmax",
        "init": "he",
        "seed": 5,
        "dtype": "float64",
    }
    assert doc["metadata"] == {"dataset": "digits"}
    with np.load(tmp_path / "m.npz", allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["W1", "W2", "b1", "b2"]


@pytest.fixture
def saved(tmp_path):
    """A valid saved model at tmp_path/m; tests then tamper with one of its files."""
    model = hpexp.MLP([3, 2, 1], seed=0)
    hpexp.save_model(model, tmp_path / "m")
    return model, tmp_path / "m"


class Canary:
    """Unpickling this creates a directory: proof that a file was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_object_arrays_are_refused_without_unpickling(saved, tmp_path, monkeypatch):
    model, path = saved
    canary = tmp_path / "unpickled"
    params = dict(model.parameters)
    params["W1"] = np.array([Canary(str(canary))], dtype=object)
    np.savez(tmp_path / "m.npz", **params)  # object arrays are stored pickled

    def refuse(*args, **kwargs):
        raise AssertionError("load_model must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with pytest.raises(hpexp.DataError, match=r"m\.npz") as info:
        hpexp.load_model(path)

    assert "non-numeric" in str(info.value)
    assert not canary.exists()


def test_a_pickle_file_posing_as_npz_is_refused(saved, tmp_path):
    _, path = saved
    canary = tmp_path / "unpickled"
    (tmp_path / "m.npz").write_bytes(pickle.dumps(Canary(str(canary))))
    with pytest.raises(hpexp.DataError, match=r"m\.npz"):
        hpexp.load_model(path)
    assert not canary.exists()


@pytest.mark.parametrize("missing", ["m.npz", "m.json"])
def test_missing_file_error_names_the_file(missing, saved, tmp_path):
    _, path = saved
    (tmp_path / missing).unlink()
    with pytest.raises(hpexp.DataError) as info:
        hpexp.load_model(path)
    message = str(info.value)
    assert str(tmp_path / missing) in message
    assert "not found" in message


def test_no_model_at_all_names_the_file(tmp_path):
    with pytest.raises(hpexp.DataError, match=r"nothing_here\.npz"):
        hpexp.load_model(tmp_path / "nothing_here")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"model": {}}', "not an hpexp model"),
        ('["a", "list"]', "not an hpexp model"),
        ('{"format": "other/1", "model": {}}', "not an hpexp model"),
    ],
    ids=["invalid_json", "no_format", "not_an_object", "other_format"],
)
def test_a_bad_json_file_is_a_data_error(content, expected, saved, tmp_path):
    _, path = saved
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(hpexp.DataError, match=expected) as info:
        hpexp.load_model(path)
    assert "m.json" in str(info.value)


def test_parameters_that_do_not_fit_the_architecture_are_refused(saved, tmp_path):
    _, path = saved
    np.savez(
        tmp_path / "m.npz",
        W1=np.zeros((5, 3)),
        b1=np.zeros((5, 1)),
        W2=np.zeros((1, 5)),
        b2=np.zeros((1, 1)),
    )
    with pytest.raises(hpexp.HpexpError, match="W1"):
        hpexp.load_model(path)
