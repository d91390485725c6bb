"""Sizes that exhaust memory: the cost history grows with the run, and networks over the
model-size limit are refused before anything is allocated."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import hpexp
from hpexp.errors import ConfigError
from hpexp.nn.limits import (
    DEFAULT_MAX_MODEL_BYTES,
    MAX_MODEL_BYTES_ENV,
    check_model_size,
    count_parameters,
    max_model_bytes,
    training_copies,
)

HUGE = [64, 30000, 30000, 10]  # 902,280,010 parameters: 6.7 GiB of float64


@pytest.fixture(autouse=True)
def default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_MODEL_BYTES_ENV, raising=False)


def stop_after(n: int):
    return lambda step, metrics: step >= n


# -- the cost history -----------------------------------------------------------------------------


@pytest.mark.parametrize("iterations", [1, 2, 1023, 1024, 1025, 2049, 3000])
def test_cost_history_has_one_entry_per_update(iterations, make_problem):
    """Across the sizes where the history grows, it is a float64 array of exactly the costs."""
    model = hpexp.MLP([3, 4, 1], seed=2)
    X, Y = make_problem(model, 16, seed=2)
    history = hpexp.train(model, X, Y, learning_rate=0.05, iterations=iterations, eval_every=500)
    assert isinstance(history.costs, np.ndarray)
    assert history.costs.dtype == np.float64
    assert history.costs.shape == (iterations,)
    assert np.isfinite(history.costs).all()
    assert history.iterations_run == iterations


@pytest.mark.slow
def test_growing_history_holds_the_same_costs(make_problem):
    """A run stopped early has exactly the first costs of a full run: growth loses nothing."""
    model_a, model_b = hpexp.MLP([3, 5, 1], seed=4), hpexp.MLP([3, 5, 1], seed=4)
    X, Y = make_problem(model_a, 20, seed=4)
    settings = {"learning_rate": 0.05, "batch_size": 7, "eval_every": 100}
    full = hpexp.train(model_a, X, Y, iterations=2600, **settings)
    stopped = hpexp.train(model_b, X, Y, iterations=10**9, callback=stop_after(2500), **settings)
    assert stopped.stop_reason == "stopped"
    assert stopped.iterations_run == 2500
    np.testing.assert_array_equal(stopped.costs, full.costs[:2500])


def test_history_of_a_stopped_run_keeps_no_spare_room(make_problem):
    model = hpexp.MLP([3, 4, 1], seed=1)
    X, Y = make_problem(model, 16, seed=1)
    history = hpexp.train(
        model, X, Y, learning_rate=0.05, iterations=10**6, eval_every=5, callback=stop_after(1500)
    )
    costs = history.costs
    assert costs.shape == (1500,)
    assert costs.base is None or costs.base.size == costs.size  # not a view of a larger buffer


def test_diverged_history_ends_with_the_non_finite_cost(make_problem):
    model = hpexp.MLP([3, 8, 1], output="linear", seed=0)
    X, Y = make_problem(model, 32, seed=0)
    history = hpexp.train(model, X, Y * 1e3, learning_rate=50.0, iterations=10**9, eval_every=1)
    assert history.stop_reason == "diverged"
    assert len(history.costs) == history.iterations_run + 1
    assert not np.isfinite(history.costs[-1])
    assert np.isfinite(history.costs[:-1]).all()


def test_many_iterations_allocate_nothing_up_front(make_problem):
    """iterations=10**7 used to cost 80 MB for the history before the first update."""
    model = hpexp.MLP([3, 4, 1], seed=3)
    X, Y = make_problem(model, 8, seed=3)
    tracemalloc.start()
    try:
        hpexp.train(
            model, X, Y, learning_rate=0.05, iterations=10**7, eval_every=5, callback=stop_after(20)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"peak {peak:,} bytes"


@pytest.mark.slow
def test_a_billion_iterations_start_within_bounded_memory():
    """In a process capped at 1 GiB of address space, iterations=10**9 starts and stops early
    (the whole history up front would be 7.45 GiB)."""
    code = textwrap.dedent(
        """
        import numpy as np, hpexp
        model = hpexp.MLP([3, 4, 1], seed=0)
        rng = np.random.default_rng(0)
        X, Y = rng.standard_normal((3, 8)), rng.integers(0, 2, (1, 8)).astype(float)
        h = hpexp.train(model, X, Y, learning_rate=0.05, iterations=10**9, eval_every=10,
                        callback=lambda step, metrics: step >= 3000)
        print(h.stop_reason, h.iterations_run, h.costs.shape[0])
        """
    )

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=cap,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["stopped", "3000", "3000"]


# -- the size limit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dims", [[4, 1], [4, 5, 3], [2, 7, 7, 7, 2], [64, 256, 128, 64, 10], [1, 1, 1]]
)
def test_count_parameters_matches_the_network(dims):
    assert count_parameters(dims) == hpexp.MLP(dims).n_params
    by_hand = sum(dims[l] * dims[l - 1] + dims[l] for l in range(1, len(dims)))
    assert count_parameters(dims) == by_hand


def test_a_huge_network_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            hpexp.MLP(HUGE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message
    assert "[64, 30000, 30000, 10]" in message
    assert "902,280,010 parameters" in message
    assert "6.72 GiB" in message  # the size
    assert "4 GiB limit" in message  # the limit
    assert f"{MAX_MODEL_BYTES_ENV}=" in message  # how to raise it
    assert peak < 2**20, f"peak {peak:,} bytes"


def test_a_network_far_beyond_memory_is_refused_at_once():
    with pytest.raises(ConfigError, match="596 GiB"):
        hpexp.MLP([64, 200000, 200000, 200000, 10])
    with pytest.raises(ConfigError, match=r"\.\.\. \(\d+ more\)"):  # a long list is shortened
        hpexp.MLP([64, *[20000] * 50, 10])


def test_the_dtype_counts(monkeypatch):
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "1M")  # 1 MiB: 131,072 float64 or 262,144 float32
    dims = [100, 2000, 10]  # 222,010 parameters
    with pytest.raises(ConfigError, match="float64"):
        hpexp.MLP(dims)
    assert hpexp.MLP(dims, dtype="float32").n_params == 222_010


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17179869184", 16 * 2**30),
        ("16G", 16 * 2**30),
        ("16GiB", 16 * 2**30),
        ("512m", 512 * 2**20),
        ("64K", 64 * 2**10),
        ("2T", 2 * 2**40),
        (" 1000 ", 1000),
        ("", DEFAULT_MAX_MODEL_BYTES),
    ],
)
def test_the_limit_is_read_from_the_environment(value, expected, monkeypatch):
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, value)
    assert max_model_bytes() == expected


@pytest.mark.parametrize("value", ["lots", "-5", "1.5G", "0", "16Q"])
def test_a_bad_limit_names_the_variable(value, monkeypatch):
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, value)
    with pytest.raises(ConfigError, match=MAX_MODEL_BYTES_ENV):
        hpexp.MLP([2, 1])


def test_raising_the_limit_allows_a_larger_network(monkeypatch):
    n = count_parameters(HUGE)
    with pytest.raises(ConfigError):
        check_model_size(n, "float64")
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "8G")
    assert check_model_size(n, "float64") == n * 8
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "1K")
    assert hpexp.MLP([4, 8, 1]).n_params * 8 <= 1024  # 49 parameters: 392 bytes


@pytest.mark.parametrize(
    ("optimizer", "copies"), [("gd", 3), ("momentum", 4), ("rmsprop", 4), ("adam", 5)]
)
def test_training_counts_the_copies_it_keeps(optimizer, copies, make_problem, monkeypatch):
    """Parameters, gradients, the rollback snapshot and the optimizer's state."""
    assert training_copies(optimizer) == copies
    model = hpexp.MLP([10, 50, 1], seed=0)  # 601 parameters: 4,808 bytes a copy
    X, Y = make_problem(model, 8)
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(4808 * copies))
    hpexp.train(model, X, Y, learning_rate=0.01, iterations=2, optimizer=optimizer)
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(4808 * copies - 1))
    with pytest.raises(ConfigError) as info:
        hpexp.train(model, X, Y, learning_rate=0.01, iterations=2, optimizer=optimizer)
    message = str(info.value)
    assert f"with {optimizer}" in message
    assert f"× {copies} copies" in message
    assert MAX_MODEL_BYTES_ENV in message


def test_loading_checks_the_size_before_reading_the_weights(tmp_path):
    import json

    hpexp.save_model(hpexp.MLP([4, 8, 3], output="softmax"), tmp_path / "m")
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["model"]["layer_dims"] = HUGE
    doc["model"]["activation"] = ["relu", "relu"]
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(hpexp.DataError, match=r"m\.json.*model\.layer_dims.*limit"):
        hpexp.load_model(tmp_path / "m")


def test_a_model_built_from_given_parameters_is_not_initialized():
    source = hpexp.MLP([3, 4, 2], seed=5)
    params = {k: v * 2 for k, v in source.parameters.items()}
    model = hpexp.MLP([3, 4, 2], seed=99, parameters=params)
    for key, value in params.items():
        np.testing.assert_array_equal(model.parameters[key], value)
    with pytest.raises(ConfigError, match="W1"):
        hpexp.MLP([3, 5, 2], parameters=params)
