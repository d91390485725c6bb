"""The L-layer network, written as the lecture's vectorized equations.

Layout: one sample per column. X is (n[0], m), A[l] and Z[l] are (n[l], m), W[l] is
(n[l], n[l-1]) and b[l] is (n[l], 1). Hidden layers use σ[l]; the output layer and its loss
come as a pair (see `losses.py`) so that dZ[L] = AL − Y.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn import checks
from hpexp.nn.activations import get_activation
from hpexp.nn.checks import DTYPES
from hpexp.nn.init import init_weights
from hpexp.nn.losses import get_output
from hpexp.nn.streams import init_stream, train_stream

Array = np.ndarray

__all__ = ["DTYPES", "MLP", "Cache"]


@functools.lru_cache(maxsize=16)
def ones_column(m: int, dtype: np.dtype) -> Array:
    """A read-only (m, 1) column of ones: Σ over the m samples of dZ is the product dZ @ ones,
    much faster than a reduction along rows. Cached, since every step needs the same one."""
    ones = np.ones((m, 1), dtype=dtype)
    ones.flags.writeable = False
    return ones


class Cache(NamedTuple):
    """What layer l keeps from the forward pass for its backward pass."""

    A_prev: Array  # (n[l-1], m), the layer's input
    W: Array  # (n[l], n[l-1])
    b: Array  # (n[l], 1)
    Z: Array  # (n[l], m), the linear part W A_prev + b
    A: Array  # (n[l], m), σ(Z) before dropout
    mask: Array | None  # (n[l], m) inverted-dropout mask D / keep_prob, or None


class MLP:
    """A fully connected network with `layer_dims = [n_x, n1, ..., n_y]` (the lecture's n[0..L]).

    `activation` is one name for every hidden layer or a list with one name per hidden layer;
    `output` is "sigmoid" (binary cross-entropy), "softmax" (categorical cross-entropy) or
    "linear" (mean squared error); `init` is "he", "xavier" or "normal", drawn from the
    initialisation stream of `seed` (see `hpexp.nn.streams`). `parameters` ({"W1": ..., "b1":
    ..., ...}, shapes checked) replaces the initialization. The arguments are checked by
    `hpexp.nn.checks`; a network over the size limit (see `hpexp.nn.limits`) is refused before
    anything is allocated.
    """

    def __init__(
        self,
        layer_dims: Sequence[int],
        activation: str | Sequence[str] = "relu",
        output: str = "sigmoid",
        init: str = "he",
        seed: int = 0,
        dtype: str = "float64",
        *,
        parameters: Mapping[str, Array] | None = None,
    ) -> None:
        arch = checks.check_architecture(layer_dims, activation, output, init, seed, dtype)
        self.layer_dims = arch.layer_dims
        self.activations = arch.activations
        self.output = arch.output
        self.init = arch.init
        self.seed = arch.seed
        self.dtype = arch.dtype
        self.metadata: dict = {}  # free-form, JSON-serializable; saved with the model
        self._sigma = [get_activation(n) for n in self.activations]
        self._out = get_output(self.output)
        # Dictionary keys per layer l = 1..L: ("Wl", "bl") and ("dWl", "dbl", "dA{l-1}").
        self._names = [(f"W{l}", f"b{l}") for l in range(1, self.L + 1)]
        self._grad_names = [(f"dW{l}", f"db{l}", f"dA{l - 1}") for l in range(1, self.L + 1)]
        if parameters is not None:
            self.parameters = dict(parameters)
        else:
            self._parameters = self._initial_parameters()

    def _initial_parameters(self) -> dict[str, Array]:
        """W[l] from the init scheme (on the seed's initialisation stream), b[l] = 0."""
        rng, P = init_stream(self.seed), {}
        for l, (W_l, b_l) in enumerate(self._names, start=1):
            n, n_prev = self.layer_dims[l], self.layer_dims[l - 1]
            P[W_l] = init_weights(self.init, rng, n, n_prev).astype(self.dtype)
            P[b_l] = np.zeros((n, 1), dtype=self.dtype)
        return P

    # -- parameters ------------------------------------------------------------------------

    @property
    def L(self) -> int:
        """Number of layers with parameters (hidden layers + output layer)."""
        return len(self.layer_dims) - 1

    @property
    def parameters(self) -> dict[str, Array]:
        """{"W1": (n1, n0), "b1": (n1, 1), ..., "WL", "bL"}; arrays may be updated in place."""
        return self._parameters

    @parameters.setter
    def parameters(self, new: dict[str, Array]) -> None:
        self._parameters = checks.check_parameters(new, self.shapes(), self.dtype)

    def shapes(self) -> dict[str, tuple[int, int]]:
        """{"W1": (n1, n0), "b1": (n1, 1), ...}: the shape of every parameter, from layer_dims."""
        shapes = {}
        for l in range(1, self.L + 1):
            n, n_prev = self.layer_dims[l], self.layer_dims[l - 1]
            shapes[f"W{l}"], shapes[f"b{l}"] = (n, n_prev), (n, 1)
        return shapes

    @property
    def n_params(self) -> int:
        """Total number of weights and biases."""
        return sum(int(p.size) for p in self._parameters.values())

    @property
    def task(self) -> str:
        """ "binary", "multiclass" or "regression", from the output layer."""
        return self._out.task

    def config(self) -> dict:
        """The constructor arguments, JSON-serializable."""
        return {
            "layer_dims": list(self.layer_dims),
            "activation": list(self.activations),
            "output": self.output,
            "init": self.init,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    def __repr__(self) -> str:
        acts = ",".join(self.activations) or "-"
        return (
            f"MLP(layer_dims={list(self.layer_dims)}, activation=[{acts}], output={self.output!r},"
            f" dtype={self.dtype.name!r}, n_params={self.n_params})"
        )

    # -- input checks (in hpexp.nn.checks) -------------------------------------------------------

    def check_X(self, X: Array, name: str = "X") -> Array:
        """X as a (n_x, m) array of this model's dtype; raises ConfigError if it cannot be."""
        return checks.check_X(self, X, name)

    def check_Y(self, Y: Array, m: int, name: str = "Y") -> Array:
        """Y as a (n_y, m) array of labels that fit the output layer; raises ConfigError."""
        return checks.check_Y(self, Y, m, name)

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self, X: Array, *, dropout: float = 0.0, rng: np.random.Generator | None = None
    ) -> tuple[Array, list[Cache]]:
        """AL (n_y, m) and one Cache per layer. `dropout` is the fraction of hidden units
        dropped (inverted dropout; 0 at evaluation time), drawn from `rng` (by default the
        training stream of the model's seed)."""
        return self._forward(checks.check_X(self, X), dropout, rng)

    def _forward(
        self, X: Array, dropout: float = 0.0, rng: np.random.Generator | None = None
    ) -> tuple[Array, list[Cache]]:
        """`forward` on a checked X."""
        if dropout and rng is None:
            rng = train_stream(self.seed)
        P, caches = self._parameters, []
        A = X
        for l, (W_l, b_l) in enumerate(self._names, start=1):
            A_prev, W, b = A, P[W_l], P[b_l]
            Z = W @ A_prev
            Z += b  # Z[l] = W[l] A[l-1] + b[l]
            if l < self.L:
                A = self._sigma[l - 1].forward(Z)  # A[l] = σ[l](Z[l])
                mask = self._dropout_mask(A.shape, dropout, rng) if dropout else None
                caches.append(Cache(A_prev, W, b, Z, A, mask))
                if mask is not None:
                    A = A * mask  # inverted dropout: A[l] ∗ D[l] / keep_prob
            else:
                A = self._out.forward(Z)  # AL = g(Z[L])
                caches.append(Cache(A_prev, W, b, Z, A, None))
        return A, caches

    def _dropout_mask(
        self, shape: tuple[int, ...], dropout: float, rng: np.random.Generator | None
    ) -> Array:
        """Inverted dropout's D / keep_prob: each unit kept with probability 1 − dropout."""
        assert rng is not None
        keep = 1.0 - dropout
        return (rng.random(shape, dtype=self.dtype) < keep) / self.dtype.type(keep)

    # -- cost -------------------------------------------------------------------------------------

    def cost(self, AL: Array, Y: Array, *, l2: float = 0.0) -> float:
        """J(AL, Y) of the output's loss, plus λ/(2m) Σ_l ||W[l]||² when l2 = λ > 0."""
        J = self._out.cost(AL, Y)
        if l2:
            m = Y.shape[1]
            J += l2 / (2 * m) * sum(float(np.vdot(W, W)) for W in self._weights())
        return J

    def _weights(self) -> list[Array]:
        return [self._parameters[f"W{l}"] for l in range(1, self.L + 1)]

    # -- backward ---------------------------------------------------------------------------------

    def backward(
        self, AL: Array, Y: Array, caches: list[Cache], *, l2: float = 0.0, input_grad: bool = True
    ) -> dict[str, Array]:
        """Gradients {"dW1", "db1", ..., "dA0", ..., "dA{L-1}"} shaped like what they differentiate.

        Exactly the lecture's: dZ = dA ∗ σ'(Z), dW = 1/m dZ A_prevᵀ (+ λ/m W), db = 1/m Σ dZ,
        dA_prev = Wᵀ dZ; the output/loss pair gives dZ[L] = AL − Y. `input_grad=False` skips dA0,
        which training does not need.
        """
        m = Y.shape[1]
        grads: dict[str, Array] = {}
        ones = ones_column(m, AL.dtype)
        dZ = AL - Y  # dZ[L]
        for l in range(self.L, 0, -1):
            A_prev, W, _, _, _, _ = caches[l - 1]
            dW_l, db_l, dA_prev_l = self._grad_names[l - 1]
            dW = dZ @ A_prev.T  # dW = 1/m dZ A_prevᵀ
            dW *= 1.0 / m
            if l2:
                dW += (l2 / m) * W
            grads[dW_l] = dW
            db = dZ @ ones  # db = 1/m Σ dZ (summing over samples as a matrix-vector product)
            db *= 1.0 / m
            grads[db_l] = db
            if l == 1 and not input_grad:
                break
            dA_prev = W.T @ dZ  # dA_prev = Wᵀ dZ
            grads[dA_prev_l] = dA_prev
            if l > 1:
                dZ = self._hidden_dZ(l - 1, dA_prev, caches[l - 2])  # the next layer down
        return grads

    def _hidden_dZ(self, l: int, dA: Array, cache: Cache) -> Array:
        """dZ = dA ∗ σ'(Z) of hidden layer l, given its dA; only the units that its dropout
        kept carry gradient. Elementwise, so stacks of layers (see batched.py) work alike."""
        _, _, _, Z, A, mask = cache
        if mask is not None:
            dA = dA * mask
        return dA * self._sigma[l - 1].derivative(Z, A)  # dZ = dA ∗ σ'(Z)

    # -- inference -------------------------------------------------------------------------------

    def predict_proba(self, X: Array) -> Array:
        """Class probabilities AL, shape (n_y, m); sigmoid gives P(y=1) in one row."""
        if self.output == "linear":
            raise ConfigError("predict_proba needs a sigmoid or softmax output; use predict")
        return self._forward(checks.check_X(self, X))[0]

    def predict(self, X: Array) -> Array:
        """Labels (m,) for classification (0/1, or the class index), values (n_y, m) otherwise."""
        AL = self._forward(checks.check_X(self, X))[0]
        if self.output == "sigmoid":
            return (AL[0] > 0.5).astype(np.int64)
        if self.output == "softmax":
            return AL.argmax(axis=0)
        return AL
