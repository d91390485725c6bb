"""Agreement with PyTorch autograd (an optional extra): same weights, same batch, same numbers."""

from __future__ import annotations

import numpy as np
import pytest

import hpexp

torch = pytest.importorskip("torch")
F = torch.nn.functional

TORCH_HIDDEN = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": lambda Z: F.leaky_relu(Z, negative_slope=0.01),
    "linear": lambda Z: Z,
}
CLOSE = {"rtol": 1e-10, "atol": 1e-12}


def _torch_cost(output: str, ZL, Y, m: int):
    """PyTorch's own losses, in the column-per-sample layout (transposed where torch needs rows)."""
    if output == "softmax":
        return F.cross_entropy(ZL.T, Y.argmax(dim=0)), torch.softmax(ZL, dim=0)
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(ZL, Y), torch.sigmoid(ZL)
    return F.mse_loss(ZL, Y, reduction="sum") / (2 * m), ZL


def _torch_pass(model: hpexp.MLP, X: np.ndarray, Y: np.ndarray, l2: float = 0.0):
    """Forward + backward in torch; returns AL, J and the gradients, named like hpexp's."""
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.parameters.items()}
    A0 = torch.tensor(X, requires_grad=True)
    Yt = torch.tensor(Y)
    m = X.shape[1]
    A, activations = A0, [A0]
    for l in range(1, model.L + 1):
        Z = P[f"W{l}"] @ A + P[f"b{l}"]
        if l < model.L:
            A = TORCH_HIDDEN[model.activations[l - 1]](Z)
            A.retain_grad()
            activations.append(A)
    J, AL = _torch_cost(model.output, Z, Yt, m)
    if l2:
        J = J + l2 / (2 * m) * sum((P[f"W{l}"] ** 2).sum() for l in range(1, model.L + 1))
    J.backward()
    grads = {f"d{k}": p.grad.numpy() for k, p in P.items()}
    # hpexp's dA[l] is ∂(m·J)/∂A[l]: the per-sample gradients, before the 1/m average
    for l, A in enumerate(activations):
        grads[f"dA{l}"] = A.grad.numpy() * m
    return AL.detach().numpy(), float(J.detach()), grads


def _problem(hidden: str, output: str, depth: int, seed: int):
    n_y = {"softmax": 4, "sigmoid": 1, "linear": 2}[output]
    dims = [6] + [7] * (depth - 1) + [n_y]
    model = hpexp.MLP(dims, activation=hidden, output=output, init="xavier", seed=seed)
    rng = np.random.default_rng(seed)
    params = dict(model.parameters)
    for l in range(1, model.L + 1):
        params[f"b{l}"] = rng.normal(0, 0.3, size=params[f"b{l}"].shape)
    model.parameters = params
    m = 16
    X = rng.standard_normal((6, m))
    if output == "softmax":
        Y = np.eye(n_y)[:, rng.integers(0, n_y, size=m)]
    elif output == "sigmoid":
        Y = rng.integers(0, 2, size=(1, m)).astype(np.float64)
    else:
        Y = rng.standard_normal((n_y, m))
    return model, X, Y


def _compare(model, X, Y, l2=0.0):
    AL, caches = model.forward(X)
    J = model.cost(AL, Y, l2=l2)
    grads = model.backward(AL, Y, caches, l2=l2)

    AL_t, J_t, grads_t = _torch_pass(model, X, Y, l2=l2)

    np.testing.assert_allclose(AL, AL_t, **CLOSE)
    assert pytest.approx(J_t, rel=1e-10, abs=1e-12) == J
    assert set(grads) == set(grads_t)
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_t[key], err_msg=key, **CLOSE)


@pytest.mark.parametrize("depth", [2, 3], ids=["depth2", "depth3"])
@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_softmax_network_agrees_with_torch(hidden, depth):
    _compare(*_problem(hidden, "softmax", depth, seed=depth))


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
@pytest.mark.parametrize("hidden", ["relu", "leaky_relu", "tanh", "sigmoid", "linear"])
def test_every_activation_and_output_agrees_with_torch(hidden, output):
    _compare(*_problem(hidden, output, 3, seed=7))


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_l2_regularized_cost_and_gradients_agree_with_torch(hidden):
    _compare(*_problem(hidden, "softmax", 3, seed=3), l2=0.7)


@pytest.mark.parametrize(
    ("name", "make_torch"),
    [
        ("gd", lambda p, lr: torch.optim.SGD(p, lr=lr)),
        ("rmsprop", lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.999, eps=1e-8)),
        ("adam", lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8)),
    ],
    ids=["gd", "rmsprop", "adam"],
)
def test_training_steps_agree_with_torch_optimizers(name, make_torch):
    model, X, Y = _problem("tanh", "softmax", 3, seed=11)
    P = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.parameters.items()}
    opt = make_torch(list(P.values()), 0.01)
    Xt, labels = torch.tensor(X), torch.tensor(Y.argmax(axis=0))
    for _ in range(10):
        opt.zero_grad()
        A = Xt
        for l in range(1, model.L + 1):
            Z = P[f"W{l}"] @ A + P[f"b{l}"]
            A = torch.tanh(Z) if l < model.L else Z
        F.cross_entropy(Z.T, labels).backward()
        opt.step()

    hpexp.train(model, X, Y, learning_rate=0.01, iterations=10, optimizer=name)

    for key, value in model.parameters.items():
        np.testing.assert_allclose(value, P[key].detach().numpy(), err_msg=key, **CLOSE)
