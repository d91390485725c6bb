"""How large a network may be: its parameters are counted before any of them is allocated.

A network with `layer_dims = [n0, n1, ..., nL]` has Σ_l n[l]·n[l-1] + n[l] parameters, each of
the dtype's size. Holding the model takes one copy of them; training takes more: the gradients,
the snapshot the divergence guard rolls back to, and the optimizer's state (momentum's v,
RMSprop's s, Adam's v and s). A size over the limit is refused with a `ConfigError` before
anything is allocated, instead of exhausting memory halfway through.

The limit is `DEFAULT_MAX_MODEL_BYTES` (4 GiB); the environment variable `HPEXP_MAX_MODEL_BYTES`
sets another, in bytes or with a unit (`8G`, `512M`, `17179869184`).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence

import numpy as np

from hpexp.errors import ConfigError
from hpexp.nn import optim
from hpexp.registry import lookup

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "MAX_MODEL_BYTES_ENV",
    "check_model_size",
    "count_parameters",
    "describe",
    "max_model_bytes",
    "training_copies",
]

MAX_MODEL_BYTES_ENV = "HPEXP_MAX_MODEL_BYTES"
DEFAULT_MAX_MODEL_BYTES = 4 * 2**30
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def count_parameters(layer_dims: Sequence[int]) -> int:
    """Σ_l n[l]·n[l-1] + n[l]: the weights and biases of a network (exact, as a Python int)."""
    dims = [int(n) for n in layer_dims]
    return sum(n * n_prev + n for n_prev, n in itertools.pairwise(dims))


def describe(layer_dims: Sequence[int]) -> str:
    """ "the network [n0, n1, ..., nL]" for messages, long lists shortened."""
    dims = [int(n) for n in layer_dims]
    shown = (
        ", ".join(map(str, dims))
        if len(dims) <= 8
        else (
            ", ".join(map(str, dims[:4]))
            + f", ... ({len(dims) - 6} more), "
            + ", ".join(map(str, dims[-2:]))
        )
    )
    return f"the network [{shown}]"


def max_model_bytes() -> int:
    """The limit in bytes: HPEXP_MAX_MODEL_BYTES if set, else DEFAULT_MAX_MODEL_BYTES."""
    text = os.environ.get(MAX_MODEL_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MODEL_BYTES
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"{MAX_MODEL_BYTES_ENV}={text!r} is not a size; give bytes or a size with a unit, "
            "e.g. 17179869184, 16G or 512M"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def training_copies(optimizer: str) -> int:
    """Copies of the parameters that training with `optimizer` holds at once: the parameters,
    their gradients, the rollback snapshot and the optimizer's state."""
    return 3 + lookup(optim.OPTIMIZERS, optimizer, "optimizer").state_copies


def check_model_size(
    n_params: int, dtype: object, *, copies: int = 1, what: str = "the network"
) -> int:
    """The bytes `copies` copies of `n_params` parameters of `dtype` take; raises ConfigError
    naming the size, the limit and how to raise it when that is over the limit."""
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    needed = int(n_params) * dt.itemsize * int(copies)
    limit = max_model_bytes()
    if needed > limit:
        held = "" if copies == 1 else f" × {copies} copies"
        raise ConfigError(
            f"{what} needs {_size(needed)} ({n_params:,} parameters × {dt.itemsize} bytes "
            f"of {dt.name}{held}), over the {_size(limit)} limit on model size; use fewer or "
            f"narrower layers, or raise the limit with {MAX_MODEL_BYTES_ENV}=<bytes> "
            f"(e.g. {MAX_MODEL_BYTES_ENV}={_suggest(needed)})"
        )
    return needed


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _suggest(needed: int) -> str:
    """A limit with a unit that covers `needed` bytes."""
    for unit, scale in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if needed >= scale:
            return f"{-(-needed // scale)}{unit}"
    return str(needed)
