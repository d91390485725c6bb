"""S seeds of one configuration trained at once: the equations of model.py and train.py on stacks.

Every array gains a leading seed axis: W[l] is (S, n[l], n[l-1]), b[l] (S, n[l], 1), A[l] and
Z[l] (S, n[l], B); each product is one batched np.matmul over the stack. A data matrix shared
by all seeds (the full batch, the validation set) stays (n, m) and is broadcast. Seed s keeps
its own random stream (its shuffles and dropout masks, drawn in the order `train` draws them), so
its parameters, costs and metrics are those of `train(models[s], ..., config=configs[s])`.

A seed that stops (its callback asks, or its cost or parameters stop being finite: rolled back
as `train` does) is frozen: its row leaves the stack and the other seeds go on.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import islice

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn import optim
from hpexp.nn._memory import keep_freed_memory
from hpexp.nn.checks import check_data
from hpexp.nn.limits import check_model_size, describe, training_copies
from hpexp.nn.losses import _safe_log
from hpexp.nn.metrics import _scores
from hpexp.nn.model import MLP, Cache, ones_column
from hpexp.nn.streams import train_stream
from hpexp.nn.train import (
    History,
    TrainConfig,
    _ended,
    _record,
    _snapshot,
    learning_rate,
    minibatches,
)

Array = np.ndarray
Params = dict[str, Array]  # {"W1": (S, n1, n0), "b1": (S, n1, 1), ...}
SeedCallback = Callable[[int, int, dict[str, float]], bool | None]

__all__ = ["SeedCallback", "train_batched"]


def _T(A: Array) -> Array:
    """The transpose of every matrix of a stack (S, n, k) -> (S, k, n), or of one matrix."""
    return A.swapaxes(-1, -2)


def _take(A: Array, rows: Array) -> Array:
    """The kept rows of a stack; a shared (n, m) matrix is kept whole."""
    return A if A.ndim == 2 else A[rows]


def _take_cache(cache: Cache, rows: Array) -> Cache:
    """A layer's cache for the kept rows of the stack."""
    A_prev, W, b, Z, A, mask = cache
    mask = None if mask is None else mask[rows]
    return Cache(_take(A_prev, rows), W[rows], b[rows], Z[rows], A[rows], mask)


def forward(
    net: MLP, P: Params, X: Array, dropout: float = 0.0, rngs: Sequence[np.random.Generator] = ()
) -> tuple[Array, list[Cache]]:
    """AL (S, n_y, B) and one Cache of stacks per layer, for X (S, n_x, B) or a shared
    (n_x, B). `net` gives the activations; seed s's dropout masks are drawn from rngs[s]."""
    keep, dtype = 1.0 - dropout, net.dtype
    caches, A = [], X
    for l, (W_l, b_l) in enumerate(net._names, start=1):
        A_prev, W, b = A, P[W_l], P[b_l]
        Z = W @ A_prev
        Z += b  # Z[l] = W[l] A[l-1] + b[l], for every seed
        if l < net.L:
            A = net._sigma[l - 1].forward(Z)  # A[l] = σ[l](Z[l])
            mask = None
            if dropout:
                draws = np.empty(A.shape, dtype)
                for s, rng in enumerate(rngs):
                    rng.random(dtype=dtype, out=draws[s])
                mask = (draws < keep) / dtype.type(keep)
            caches.append(Cache(A_prev, W, b, Z, A, mask))
            if mask is not None:
                A = A * mask
        else:
            A = net._out.forward(Z)  # AL = g(Z[L])
            caches.append(Cache(A_prev, W, b, Z, A, None))
    return A, caches


def costs(net: MLP, P: Params, AL: Array, Y: Array, l2: float = 0.0) -> Array:
    """J of every seed, shape (S,): the output's loss on AL, Y (S, n_y, B), plus
    λ/(2m) Σ_l ||W[l]||² when l2 = λ > 0."""
    m = Y.shape[-1]
    if net.output == "sigmoid":
        J = -((Y * _safe_log(AL)).sum((1, 2)) + ((1 - Y) * _safe_log(1 - AL)).sum((1, 2))) / m
    elif net.output == "softmax":
        Y_log_AL = _safe_log(AL)
        Y_log_AL *= Y
        J = -Y_log_AL.sum((1, 2)) / m
    else:
        D = AL - Y
        J = (D * D).sum((1, 2)) / (2 * m)
    if l2:
        J += l2 / (2 * m) * sum((W * W).sum((1, 2)) for W in _weights(net, P))
    return np.asarray(J, dtype=np.float64)


def _weights(net: MLP, P: Params) -> list[Array]:
    return [P[f"W{l}"] for l in range(1, net.L + 1)]


def backward(net: MLP, AL: Array, Y: Array, caches: list[Cache], l2: float = 0.0) -> Params:
    """Gradients {"dW1", "db1", ..., "dA1", ..., "dA{L-1}"}, stacked like what they
    differentiate: model.backward's equations with one batched product per layer."""
    m = Y.shape[-1]
    grads: Params = {}
    ones = ones_column(m, AL.dtype)
    dZ = AL - Y  # dZ[L]
    for l in range(net.L, 0, -1):
        A_prev, W, _, _, _, _ = caches[l - 1]
        dW_l, db_l, dA_prev_l = net._grad_names[l - 1]
        dW = dZ @ _T(A_prev)  # dW = 1/m dZ A_prevᵀ
        dW *= 1.0 / m
        if l2:
            dW += (l2 / m) * W
        grads[dW_l] = dW
        db = dZ @ ones  # db = 1/m Σ dZ
        db *= 1.0 / m
        grads[db_l] = db
        if l > 1:
            dA_prev = _T(W) @ dZ  # dA_prev = Wᵀ dZ
            grads[dA_prev_l] = dA_prev
            dZ = net._hidden_dZ(l - 1, dA_prev, caches[l - 2])  # dZ = dA ∗ σ'(Z), a layer down
    return grads


def _check(models: Sequence[MLP], configs: Sequence[TrainConfig]) -> None:
    if not models or len(models) != len(configs):
        raise ConfigError(
            f"give one TrainConfig per model, got {len(models)} models, {len(configs)} configs"
        )
    arch = {k: v for k, v in models[0].config().items() if k != "seed"}
    if any({k: v for k, v in m.config().items() if k != "seed"} != arch for m in models):
        raise ConfigError("batched models must share layer_dims, activation, output and dtype")
    if any(replace(c, seed=0) != replace(configs[0], seed=0) for c in configs):
        raise ConfigError("batched training settings may differ in their seed only")


def train_batched(
    models: Sequence[MLP],
    X: Array,
    Y: Array,
    *,
    configs: Sequence[TrainConfig],
    X_val: Array | None = None,
    Y_val: Array | None = None,
    callback: SeedCallback | None = None,
    chain: bool = False,
) -> list[History]:
    """Train models[s] in place with configs[s] (equal but for the seed) on X (n_x, m),
    Y (n_y, m); return one History per model, as `train` would.

    `callback(s, step, metrics)` runs for every seed still training at each evaluation, in
    seed order; True stops seed s. With `chain=True` the seeds behave as if trained one after
    another while each completes: when seed s stops or diverges, the seeds after it stop too.
    A History's `seconds` is the wall time of the batched run until that seed stopped.
    """
    _check(models, configs)
    net, c = models[0], configs[0]
    X, Y, X_val, Y_val = check_data(net, X, Y, X_val, Y_val)
    check_model_size(
        net.n_params * len(models),
        net.dtype,
        copies=training_copies(c.optimizer),
        what=f"training {len(models)} × {describe(net.layer_dims)} with {c.optimizer}",
    )
    with keep_freed_memory():
        return _Loop(models, configs, callback, chain).run(X, Y, X_val, Y_val)


class _Loop:
    """The loop of `train` over the stack of the seeds still training (`rows` of `models`)."""

    def __init__(
        self,
        models: Sequence[MLP],
        configs: Sequence[TrainConfig],
        callback: SeedCallback | None,
        chain: bool,
    ) -> None:
        self.models, self.c, self.callback, self.chain = models, configs[0], callback, chain
        self.net = models[0]
        self.rngs = [train_stream(cf.seed) for cf in configs]  # as `train` draws from
        self.rows = list(range(len(models)))  # the model index of each row of the stack
        self.epoch_rows = self.rows  # the rows when this epoch's sample orders were drawn
        self.P = {k: np.stack([m.parameters[k] for m in models]) for k in self.net.parameters}
        c = self.c
        self.opt = optim.make(
            c.optimizer, self.P, beta=c.beta, beta1=c.beta1, beta2=c.beta2, epsilon=c.epsilon
        )
        self.snapshot = _snapshot(self.P)
        self.histories = [History(costs=np.empty(0)) for _ in models]
        self.costs = [array("d") for _ in models]  # J of every update, per seed
        self.t = 0
        self.start = time.perf_counter()

    def run(self, X: Array, Y: Array, X_val: Array | None, Y_val: Array | None) -> list[History]:
        c = self.c
        for epoch, Xb, Yb in islice(minibatches(X, Y, c.batch_size, self.orders), c.iterations):
            self.step(self.current(Xb), self.current(Yb), learning_rate(c, epoch))
            if self.rows and (self.t % c.eval_every == 0 or self.t == c.iterations):
                self.evaluate(X_val, Y_val)
            if not self.rows:
                break
        for i in list(self.rows):
            self.finish(i, "completed")
        return self.histories

    def orders(self, m: int) -> Array:
        """An epoch's sample order (S, m) of the seeds still training, each from its stream."""
        self.epoch_rows = list(self.rows)
        return np.stack([self.rngs[i].permutation(m) for i in self.rows])

    def current(self, A: Array) -> Array:
        """A minibatch stack without the seeds that stopped since its epoch began; a matrix
        shared by all seeds (the full batch) is kept whole."""
        if A.ndim == 2 or len(self.epoch_rows) == len(self.rows):
            return A
        return A[[self.epoch_rows.index(i) for i in self.rows]]

    def step(self, Xb: Array, Yb: Array, lr: float) -> None:
        """One update of every seed: forward, cost (a non-finite one freezes its seed),
        backward, update."""
        c = self.c
        # forward
        AL, caches = forward(self.net, self.P, Xb, c.dropout, [self.rngs[i] for i in self.rows])
        J = costs(self.net, self.P, AL, Yb, c.l2)
        for i, cost in zip(self.rows, J.tolist(), strict=True):
            self.costs[i].append(cost)
        bad = ~np.isfinite(J)
        if bad.any():
            kept = self.stop_rows(bad, "diverged")
            if not self.rows:
                return
            AL, Yb = AL[kept], _take(Yb, kept)
            caches = [_take_cache(cache, kept) for cache in caches]
        # backward
        grads = backward(self.net, AL, Yb, caches, c.l2)
        # update
        self.opt.step(self.P, grads, lr)
        self.t += 1

    def evaluate(self, X_val: Array | None, Y_val: Array | None) -> None:
        """Rollback point, metrics and callback of every seed, as `train` evaluates."""
        finite = np.ones(len(self.rows), dtype=bool)
        for p in self.P.values():
            finite &= np.isfinite(p).all(axis=(1, 2))
        if not finite.all():
            for i in np.array(self.rows)[~finite]:  # an update overflowed: NaN is its cost
                self.costs[i].append(math.nan)
            self.stop_rows(~finite, "diverged")
            if not self.rows:
                return
        self.snapshot = _snapshot(self.P)
        AL = None if X_val is None else forward(self.net, self.P, X_val)[0]
        stop = np.zeros(len(self.rows), dtype=bool)
        for r, i in enumerate(self.rows):
            metrics = {"cost": self.costs[i][-1]}
            if AL is not None and Y_val is not None:
                scores = _scores(self.net.output, AL[r], Y_val)
                metrics |= {f"val_{k}": v for k, v in scores.items()}
            _record(self.histories[i], self.t, metrics)
            if self.callback is not None and self.callback(i, self.t, metrics):
                stop[r] = True
                if self.chain:
                    break
        if stop.any():
            self.stop_rows(stop, "stopped")

    def stop_rows(self, which: Array, reason: str) -> Array:
        """Freeze the seeds of the stack rows `which` (bool, one per row); a diverged seed is
        rolled back to its last finite evaluation. Returns the rows kept."""
        first = which
        if self.chain:
            which = np.cumsum(which) > 0  # the seeds after a stopped one stop with it
        for r in np.flatnonzero(which):
            self.finish(self.rows[r], reason if first[r] else "stopped", row=int(r))
        kept = np.flatnonzero(~which)
        self.rows = [self.rows[r] for r in kept]
        self.P = {k: p[kept] for k, p in self.P.items()}
        self.snapshot = {k: p[kept] for k, p in self.snapshot.items()}
        for name in ("v", "s"):  # the optimizer's state, one row per seed like the parameters
            if hasattr(self.opt, name):
                setattr(self.opt, name, {k: a[kept] for k, a in getattr(self.opt, name).items()})
        return kept

    def finish(self, i: int, reason: str, row: int | None = None) -> None:
        """Seed i's model takes its row of the stack (of the snapshot when it diverged) and
        its History is closed."""
        r = self.rows.index(i) if row is None else row
        source = self.snapshot if reason == "diverged" else self.P
        self.models[i].parameters = {k: p[r].copy() for k, p in source.items()}
        # the costs of its updates (and the non-finite one it diverged on); a seed stopped in
        # a step where another diverged drops that step's cost: it made no update
        del self.costs[i][self.t + (reason == "diverged") :]
        self.histories[i].stop_reason = reason
        _ended(self.histories[i], self.t, self.costs[i], self.start)
