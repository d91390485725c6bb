"""Each activation and its derivative equal the textbook piecewise definition, bit for bit,
on every float (signed zeros, subnormals, overflow range, infinities, NaN included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hpexp.nn.activations import LEAKY_SLOPE, get_activation


def _sigmoid(Z):  # 1 / (1 + e^-Z) above 0, e^Z / (1 + e^Z) below: e^x never overflows
    with np.errstate(all="ignore"):
        return np.where(Z >= 0, 1 / (1 + np.exp(-Z)), np.exp(Z) / (1 + np.exp(Z)))


def _where(mask, a, b, Z):
    return np.where(mask, Z.dtype.type(a), Z.dtype.type(b))


TEXTBOOK = {
    "relu": (lambda Z: np.where(np.isnan(Z) | (Z > 0), Z, Z.dtype.type(0)),
             lambda Z, A: Z > 0),
    "leaky_relu": (lambda Z: np.where(Z > 0, Z, Z * Z.dtype.type(LEAKY_SLOPE)),
                   lambda Z, A: _where(Z > 0, 1, LEAKY_SLOPE, Z)),
    "sigmoid": (_sigmoid, lambda Z, A: A * (1 - A)),
}  # fmt: skip


def _same(a: np.ndarray, b: np.ndarray, signed_zeros: bool = True) -> bool:
    """Equal values of one dtype, NaN where NaN, and (`signed_zeros`) the sign of every zero."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = np.isnan(a) & np.isnan(b)
    sign = (np.signbit(a) == np.signbit(b)) | (not signed_zeros)
    return bool(np.all(nan | ((a == b) & sign)))


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_activations_are_their_piecewise_definitions(name, dtype, data):
    Z = data.draw(hnp.arrays(dtype, hnp.array_shapes(max_dims=2, max_side=9)))
    Z = np.concatenate([Z.ravel(), [0.0, -0.0, 1e-45, -1e-45, 88.7, -88.7, 710.0, -710.0,
                                    np.inf, -np.inf, np.nan]]).astype(dtype)[None, :]  # fmt: skip
    act, (forward, derivative) = get_activation(name), TEXTBOOK[name]
    with np.errstate(all="ignore"):
        A = act.forward(Z)
        # max(0, -0.0) may be either zero: relu's sign of zero is not part of its definition
        assert _same(A, forward(Z).astype(dtype, copy=False), name != "relu"), name
        got, want = act.derivative(Z, A), derivative(Z, A)
        if want.dtype == bool:  # relu's derivative is a 0/1 mask in any form
            got, want = np.asarray(got, dtype), want.astype(dtype)
        assert _same(np.asarray(got), want), f"{name}'"
