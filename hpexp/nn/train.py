"""The training loop: minibatches, iterations, optimizers, L2, dropout, decay, callbacks.

`iterations` counts parameter updates, the lecture's #iterations; with `batch_size=None` every
update sees the whole training set (batch gradient descent, as in the lecture).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn import optim
from hpexp.nn._memory import keep_freed_memory
from hpexp.nn.limits import check_model_size, describe, training_copies
from hpexp.nn.metrics import _evaluate
from hpexp.nn.model import MLP
from hpexp.nn.settings import SETTINGS, default

Array = np.ndarray
Callback = Callable[[int, dict[str, float]], bool | None]
_FIRST_COSTS = 1024  # entries of the cost history before it first grows

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
    seed: int = default("seed")  # minibatch shuffling and dropout masks

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
    if config is None:
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
        config = TrainConfig(**settings)  # type: ignore[arg-type]
    elif settings:
        raise ConfigError("give training settings either as config=TrainConfig(...) or keywords")
    X = model.check_X(X, "X")
    m = X.shape[1]
    Y = model.check_Y(Y, m, "Y")
    if (X_val is None) != (Y_val is None):
        raise ConfigError("give both X_val and Y_val, or neither")
    if X_val is not None and Y_val is not None:
        X_val = model.check_X(X_val, "X_val")
        Y_val = model.check_Y(Y_val, X_val.shape[1], "Y_val")
        if X_val.shape[1] == 0:
            X_val = Y_val = None

    check_model_size(
        model.n_params,
        model.dtype,
        copies=training_copies(config.optimizer),
        what=f"training {describe(model.layer_dims)} with {config.optimizer} (parameters, "
        "gradients, rollback snapshot and optimizer state)",
    )
    with keep_freed_memory():
        return _loop(model, X, Y, X_val, Y_val, callback, config)


def _grown(costs: Array, most: int) -> Array:
    """`costs` in an array twice as long (at most `most` entries), its values kept."""
    grown = np.empty(min(2 * costs.size, most))
    grown[: costs.size] = costs
    return grown


def _loop(
    model: MLP,
    X: Array,
    Y: Array,
    X_val: Array | None,
    Y_val: Array | None,
    callback: Callback | None,
    config: TrainConfig,
) -> History:
    """The training loop of `train`, on checked inputs."""
    m = X.shape[1]
    c = config
    rng = np.random.default_rng(c.seed)
    B = m if c.batch_size is None else min(c.batch_size, m)
    batches_per_epoch = math.ceil(m / B)
    opt = optim.make(
        c.optimizer, model.parameters, beta=c.beta, beta1=c.beta1, beta2=c.beta2, epsilon=c.epsilon
    )
    history = History(costs=np.empty(0))
    # The cost history grows with the run (doubling, so amortised O(1) per update) instead of
    # being allocated for `iterations` up front: a run stopped or pruned early never pays for
    # the iterations it did not run, and a huge `iterations` does not exhaust memory at once.
    costs = np.empty(min(c.iterations + 1, _FIRST_COSTS))
    snapshot = {k: p.copy() for k, p in model.parameters.items()}
    start = time.perf_counter()
    Xs, Ys = X, Y
    # Samples as rows for shuffling: gathering whole rows is several times faster than
    # gathering columns; the shuffled copy is viewed back as (n, m) without another copy.
    rows_X, rows_Y = (np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)) if m > B else (X, Y)
    t = 0
    while t < c.iterations:
        # -- one epoch: shuffle once, then consecutive minibatches (views, no copies) ---------
        if m > B:
            perm = rng.permutation(m)
            Xs, Ys = rows_X[perm].T, rows_Y[perm].T
        for j in range(batches_per_epoch):
            if t >= c.iterations:
                break
            Xb, Yb = Xs[:, j * B : (j + 1) * B], Ys[:, j * B : (j + 1) * B]
            lr = c.learning_rate / (1.0 + c.lr_decay * (t // batches_per_epoch))

            # forward
            AL, caches = model._forward(Xb, c.dropout, rng)
            cost = model.cost(AL, Yb, l2=c.l2)
            if t == costs.size:
                costs = _grown(costs, c.iterations + 1)
            costs[t] = cost
            if not math.isfinite(cost):
                model.parameters = snapshot
                history.stop_reason = "diverged"
                break
            # backward
            grads = model.backward(AL, Yb, caches, l2=c.l2, input_grad=False)
            # update
            opt.step(model.parameters, grads, lr)
            t += 1

            # evaluate
            if t % c.eval_every == 0 or t == c.iterations:
                if not all(np.isfinite(p).all() for p in model.parameters.values()):
                    # this update overflowed; without a next step the cost check cannot see it
                    model.parameters = snapshot
                    history.stop_reason = "diverged"
                    if t == costs.size:
                        costs = _grown(costs, c.iterations + 1)
                    costs[t] = np.nan  # the cost of the overflowed parameters
                    break
                snapshot = {k: p.copy() for k, p in model.parameters.items()}
                metrics = {"cost": cost}
                if X_val is not None and Y_val is not None:
                    metrics |= {f"val_{k}": v for k, v in _evaluate(model, X_val, Y_val).items()}
                history.eval_steps.append(t)
                for name, value in metrics.items():
                    history.metrics.setdefault(name, []).append(value)
                if callback is not None and callback(t, metrics):
                    history.stop_reason = "stopped"
                    break
        if history.stop_reason != "completed":
            break
    history.iterations_run = t
    n = t + (history.stop_reason == "diverged")
    history.costs = costs[:n] if n == costs.size else costs[:n].copy()
    history.seconds = time.perf_counter() - start
    return history
