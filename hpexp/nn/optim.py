"""Parameter update rules, keyed by name: gd, momentum, rmsprop, adam.

Each optimizer is created for one model's parameter dict and updates it in place with
`step(parameters, grads, learning_rate)`; grads use the lecture's names ("dW1", "db1", ...).
The grads arrays are scratch space for the update and may be overwritten.
"""

from __future__ import annotations

import math

import numpy as np

from hpexp.registry import lookup

Array = np.ndarray

__all__ = ["OPTIMIZERS", "Adam", "GradientDescent", "Momentum", "Optimizer", "RMSprop", "make"]


class Optimizer:
    """Base: plain gradient descent, W -= α dW."""

    name = "gd"
    state_copies = 0  # arrays shaped like the parameters that the optimizer keeps

    def __init__(self, parameters: dict[str, Array], **hyper: float) -> None:
        self.t = 0  # number of updates so far (Adam's bias correction needs it)

    def step(self, parameters: dict[str, Array], grads: dict[str, Array], lr: float) -> None:
        self.t += 1
        for key, p in parameters.items():
            self._update(key, p, grads["d" + key], lr)

    def _update(self, key: str, p: Array, g: Array, lr: float) -> None:
        g *= lr
        p -= g  # W = W − α dW


GradientDescent = Optimizer


class Momentum(Optimizer):
    """v = β v + (1−β) dW;  W −= α v."""

    name = "momentum"
    state_copies = 1  # v

    def __init__(self, parameters: dict[str, Array], *, beta: float = 0.9, **_: float) -> None:
        super().__init__(parameters)
        self.beta = beta
        self.v = {k: np.zeros_like(p) for k, p in parameters.items()}

    def _update(self, key: str, p: Array, g: Array, lr: float) -> None:
        v = self.v[key]
        v *= self.beta
        g *= 1 - self.beta
        v += g
        p -= lr * v


class RMSprop(Optimizer):
    """s = β2 s + (1−β2) dW²;  W −= α dW / (√s + ε)."""

    name = "rmsprop"
    state_copies = 1  # s

    def __init__(
        self,
        parameters: dict[str, Array],
        *,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        **_: float,
    ) -> None:
        super().__init__(parameters)
        self.beta2, self.epsilon = beta2, epsilon
        self.s = {k: np.zeros_like(p) for k, p in parameters.items()}

    def _update(self, key: str, p: Array, g: Array, lr: float) -> None:
        s = self.s[key]
        s *= self.beta2
        s += (1 - self.beta2) * g * g
        g /= np.sqrt(s) + self.epsilon
        g *= lr
        p -= g


class Adam(Optimizer):
    """v, s as momentum and RMSprop, bias-corrected by 1−β^t;  W −= α v̂ / (√ŝ + ε)."""

    name = "adam"
    state_copies = 2  # v, s

    def __init__(
        self,
        parameters: dict[str, Array],
        *,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        **_: float,
    ) -> None:
        super().__init__(parameters)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.v = {k: np.zeros_like(p) for k, p in parameters.items()}
        self.s = {k: np.zeros_like(p) for k, p in parameters.items()}

    def step(self, parameters: dict[str, Array], grads: dict[str, Array], lr: float) -> None:
        # W −= α v̂ / (√ŝ + ε) with v̂ = v / (1−β1^t), ŝ = s / (1−β2^t); the same step as
        # α √(1−β2^t)/(1−β1^t) · v / (√s + ε √(1−β2^t)), which needs no corrected copies of v, s.
        # The two scalars are the same for every parameter of this update.
        self.t += 1
        root_correction2 = math.sqrt(1 - self.beta2**self.t)
        step_size = lr * root_correction2 / (1 - self.beta1**self.t)
        epsilon_t = self.epsilon * root_correction2
        for key, p in parameters.items():
            self._adam(key, p, grads["d" + key], step_size, epsilon_t)

    def _adam(self, key: str, p: Array, g: Array, step_size: float, epsilon_t: float) -> None:
        """One parameter's update, given this update's corrected step size and ε."""
        v, s = self.v[key], self.s[key]
        v *= self.beta1
        v += (1 - self.beta1) * g  # v = β1 v + (1−β1) dW
        g *= g
        s *= self.beta2
        g *= 1 - self.beta2
        s += g  # s = β2 s + (1−β2) dW²
        np.sqrt(s, out=g)
        g += epsilon_t
        np.divide(v, g, out=g)
        g *= step_size
        p -= g  # W −= α v̂ / (√ŝ + ε)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "gd": GradientDescent,
    "momentum": Momentum,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def make(name: str, parameters: dict[str, Array], **hyper: float) -> Optimizer:
    """An optimizer by name, with its β's and ε from `hyper` (others are ignored)."""
    return lookup(OPTIMIZERS, name, "optimizer")(parameters, **hyper)
