"""Pieces of the objective: a trial's final validation metrics without a second evaluation."""

from __future__ import annotations

import numpy as np
import pytest

import hpexp
from hpexp.nn import History, TrainConfig
from hpexp.search.objective import _validated_last


@pytest.mark.parametrize("stop_at", [None, 30], ids=["completed", "stopped"])
def test_the_last_evaluation_is_the_final_one(stop_at: int | None) -> None:
    ds = hpexp.load_dataset("iris")
    model = hpexp.MLP([ds.n_x, 8, ds.n_y], "relu", "softmax", seed=1)
    config = TrainConfig(learning_rate=0.05, iterations=47, eval_every=10, optimizer="adam")
    history = hpexp.train(
        model,
        ds.X_train,
        ds.Y_train,
        X_val=ds.X_val,
        Y_val=ds.Y_val,
        config=config,
        callback=lambda step, metrics: step == stop_at,
    )
    assert history.iterations_run == (stop_at or 47)
    again = {f"val_{k}": v for k, v in hpexp.evaluate(model, ds.X_val, ds.Y_val).items()}
    assert _validated_last(history) == again  # equal, not close: the same computation


def test_updates_after_the_last_evaluation_need_one() -> None:
    history = History(costs=np.zeros(12), eval_steps=[5, 10], iterations_run=12)
    history.metrics = {"cost": [0.9, 0.8], "val_accuracy": [0.5, 0.7]}
    assert _validated_last(history) == {}
    history.iterations_run = 10
    assert _validated_last(history) == {"val_accuracy": 0.7}
