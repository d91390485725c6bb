"""The training loop: minibatches, iterations, optimizers, L2, dropout, decay, callbacks.

`iterations` counts parameter updates, the lecture's #iterations; with `batch_size=None` every
update sees the whole training set (batch gradient descent, as in the lecture).
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from itertools import count, islice

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn import optim
from hpexp.nn._memory import keep_freed_memory
from hpexp.nn.checks import check_data
from hpexp.nn.limits import check_model_size, describe, training_copies
from hpexp.nn.metrics import _evaluate
from hpexp.nn.model import MLP
from hpexp.nn.settings import SETTINGS, default
from hpexp.nn.streams import train_stream

Array = np.ndarray
Callback = Callable[[int, dict[str, float]], bool | None]

__all__ = ["History", "TrainConfig", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; validated on construction. What each means, its
    default and its valid values are defined once, in `hpexp.nn.settings`."""

    learning_rate: float
    iterations: int
    batch_size: int | None = default("batch_size")  # None: full batch
    optimizer: str = default("optimizer")  # gd | momentum | rmsprop | adam
    beta: float = default("beta")  # momentum's β
    beta1: float = default("beta1")  # Adam's first-moment β
    beta2: float = default("beta2")  # RMSprop's and Adam's second-moment β
    epsilon: float = default("epsilon")
    l2: float = default("l2")  # λ of the L2 penalty λ/(2m) Σ||W||²
    dropout: float = default("dropout")  # fraction of hidden units dropped during training
    lr_decay: float = default("lr_decay")  # α = α0 / (1 + lr_decay · epoch)
    eval_every: int = default("eval_every")  # evaluate (and call the callback) this often
    seed: int = default("seed")
    """Seeds the training stream (`hpexp.nn.streams.train_stream`): child 1 of
    `np.random.SeedSequence(seed).spawn(2)`, which draws every epoch's shuffle and every dropout
    mask. `MLP(seed=...)` initialises from child 0, so one integer given to both (as a study
    does) never draws the initial weights and the shuffles from the same stream."""

    def __post_init__(self) -> None:
        for name in self.names():
            SETTINGS[name].check(getattr(self, name))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """What happened during training.

    `costs[t]` is the training cost J at update t+1 (on that update's minibatch, with the L2 term).
    `metrics[name][i]` was measured at iteration `eval_steps[i]`: "cost" (training), and with
    validation data "val_cost" plus "val_accuracy" or "val_rmse", "val_r2", ...
    `stop_reason` is "completed", "stopped" (the callback asked) or "diverged" (non-finite
    cost or parameters; the parameters are rolled back to the last finite evaluation, and
    `costs` ends with one extra, non-finite entry).
    """

    costs: Array
    eval_steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    stop_reason: str = "completed"
    iterations_run: int = 0
    seconds: float = 0.0

    def last(self) -> dict[str, float]:
        """The most recent value of every evaluated metric."""
        return {k: v[-1] for k, v in self.metrics.items() if v}


def train(
    model: MLP,
    X: Array,
    Y: Array,
    *,
    X_val: Array | None = None,
    Y_val: Array | None = None,
    callback: Callback | None = None,
    config: TrainConfig | None = None,
    **settings: object,
) -> History:
    """Train `model` in place on X (n_x, m), Y (n_y, m); return the History.

    Settings are TrainConfig's fields (learning_rate and iterations are required), given either
    as keywords or as `config`. `callback(step, metrics)` runs at every evaluation; returning
    True stops training (stop_reason "stopped").
    """
    config = _config(config, settings)
    X, Y, X_val, Y_val = check_data(model, X, Y, X_val, Y_val)
    check_model_size(
        model.n_params,
        model.dtype,
        copies=training_copies(config.optimizer),
        what=f"training {describe(model.layer_dims)} with {config.optimizer} (parameters, "
        "gradients, rollback snapshot and optimizer state)",
    )
    with keep_freed_memory():
        return _loop(model, X, Y, X_val, Y_val, callback, config)


def _config(config: TrainConfig | None, settings: dict[str, object]) -> TrainConfig:
    """`config`, or the TrainConfig of the keyword `settings` (never both)."""
    if config is not None:
        if settings:
            raise ConfigError(
                "give training settings either as config=TrainConfig(...) or keywords"
            )
        return config
    unknown = set(settings) - set(TrainConfig.names())
    if unknown:
        raise ConfigError(
            f"unknown training setting(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(TrainConfig.names())}"
        )
    missing = [
        f.name for f in fields(TrainConfig) if f.default is MISSING and f.name not in settings
    ]
    if missing:
        raise ConfigError(
            f"missing training setting(s) {', '.join(missing)}; give them as keywords"
        )
    return TrainConfig(**settings)  # type: ignore[arg-type]


def _loop(
    model: MLP,
    X: Array,
    Y: Array,
    X_val: Array | None,
    Y_val: Array | None,
    callback: Callback | None,
    c: TrainConfig,
) -> History:
    """The training loop of `train`, on checked inputs: forward, backward and update on each
    minibatch; every `eval_every` updates an evaluation (roll-back point, metrics, callback).
    A non-finite cost, or non-finite parameters at an evaluation, ends the run as diverged,
    and the roll-back after the loop handles both."""
    rng = train_stream(c.seed)  # minibatch shuffles and dropout masks
    opt = optim.make(
        c.optimizer, model.parameters, beta=c.beta, beta1=c.beta1, beta2=c.beta2, epsilon=c.epsilon
    )
    history, costs = History(costs=np.empty(0)), array("d")  # J of every update, as they come
    snapshot = _snapshot(model.parameters)  # where a diverged run rolls back to
    start, t = time.perf_counter(), 0  # t: updates done
    for epoch, Xb, Yb in islice(minibatches(X, Y, c.batch_size, rng.permutation), c.iterations):
        lr = learning_rate(c, epoch)
        # forward
        AL, caches = model._forward(Xb, c.dropout, rng)
        cost = model.cost(AL, Yb, l2=c.l2)
        costs.append(cost)
        if not math.isfinite(cost):
            break
        # backward
        grads = model.backward(AL, Yb, caches, l2=c.l2, input_grad=False)
        # update
        opt.step(model.parameters, grads, lr)
        t += 1
        # evaluate, every eval_every updates and after the last
        if t % c.eval_every == 0 or t == c.iterations:
            if not _finite(model.parameters):  # this update overflowed; no later cost shows it
                costs.append(math.nan)  # the cost of the overflowed parameters
                break
            snapshot = _snapshot(model.parameters)
            metrics = {"cost": cost} | _validation(model, X_val, Y_val)
            _record(history, t, metrics)
            if callback is not None and callback(t, metrics):
                history.stop_reason = "stopped"
                break
    if not math.isfinite(costs[-1]):  # diverged: back to the last finite evaluation
        history.stop_reason = "diverged"
        model.parameters = snapshot
    return _ended(history, t, costs, start)


# -- pieces of the loop, shared with batched.py ---------------------------------------------------


def minibatches(
    X: Array, Y: Array, batch_size: int | None, permutation: Callable[[int], Array]
) -> Iterator[tuple[int, Array, Array]]:
    """(epoch, X_batch, Y_batch), endlessly: each epoch puts the m samples in the order
    `permutation(m)` and cuts them into consecutive minibatches of `batch_size` columns (the
    last one smaller when batch_size does not divide m). With batch_size None or >= m every
    batch is the whole set, unshuffled.

    An epoch's order is drawn when its first batch is taken. `permutation` may give one order
    (m,) or one per seed (S, m), and the batches are then stacks (S, n, B).
    """
    m = X.shape[1]
    size = m if batch_size is None else min(batch_size, m)
    if size == m:
        for epoch in count():
            yield epoch, X, Y
    # Samples as rows for shuffling: gathering whole rows is several times faster than
    # gathering columns; the shuffled copy is viewed back as (n, m) without another copy, and
    # the minibatches are views of it.
    rows_X, rows_Y = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)
    for epoch in count():
        order = permutation(m)
        Xs, Ys = rows_X[order].swapaxes(-1, -2), rows_Y[order].swapaxes(-1, -2)
        for j in range(0, m, size):
            yield epoch, Xs[..., j : j + size], Ys[..., j : j + size]


def learning_rate(c: TrainConfig, epoch: int) -> float:
    """α of the updates in `epoch` (counted from 0): α0 / (1 + lr_decay · epoch)."""
    return c.learning_rate / (1.0 + c.lr_decay * epoch)


def _validation(model: MLP, X_val: Array | None, Y_val: Array | None) -> dict[str, float]:
    """The validation metrics of `model` ("val_cost", "val_accuracy", ...); none without
    validation data."""
    if X_val is None or Y_val is None:
        return {}
    return {f"val_{k}": v for k, v in _evaluate(model, X_val, Y_val).items()}


def _snapshot(parameters: dict[str, Array]) -> dict[str, Array]:
    return {k: p.copy() for k, p in parameters.items()}


def _finite(parameters: dict[str, Array]) -> bool:
    return all(np.isfinite(p).all() for p in parameters.values())


def _record(history: History, step: int, metrics: dict[str, float]) -> None:
    """The evaluation at `step` into `history`."""
    history.eval_steps.append(step)
    for name, value in metrics.items():
        history.metrics.setdefault(name, []).append(value)


def _ended(history: History, t: int, costs: array, start: float) -> History:
    """`history` closed after t updates, with the costs logged (an exact-size copy: the log
    keeps spare room to grow into)."""
    history.iterations_run = t
    history.costs = np.frombuffer(costs, dtype=np.float64).copy()
    history.seconds = time.perf_counter() - start
    return history
