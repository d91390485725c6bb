"""Tiny networks worked through by hand: every number below is written out, not recomputed.

Network A: layer_dims [2, 2, 1], relu hidden, sigmoid output, m = 2 samples (columns).

    X  = [[ 1.0, 2.0],       W1 = [[0.5, -0.5],     b1 = [[ 0.0],
          [-1.0, 0.5]]             [1.0,  1.0]]           [-1.0]]
    W2 = [[1.0, -0.5]]       b2 = [[0.25]]          Y  = [[1, 0]]

Forward
    Z1 = W1 X + b1
       sample 1: 0.5·1 + (−0.5)(−1) + 0 = 1.0      1·1 + 1·(−1) − 1 = −1.0
       sample 2: 0.5·2 + (−0.5)(0.5) + 0 = 0.75    1·2 + 1·0.5 − 1 = 1.5
       Z1 = [[1.0, 0.75], [−1.0, 1.5]]
    A1 = relu(Z1) = [[1.0, 0.75], [0.0, 1.5]]
    Z2 = W2 A1 + b2 = [[1 − 0 + 0.25, 0.75 − 0.75 + 0.25]] = [[1.25, 0.25]]
    AL = σ(Z2) = [[1/(1+e^−1.25), 1/(1+e^−0.25)]] = [[0.7772998611746911, 0.5621765008857981]]
    J  = −1/2 [log 0.7772998611746911 + log(1 − 0.5621765008857981)]
       = −1/2 [−0.251929081345373 + (−0.8259394198788435)] = 0.5389342506121082

Backward (p = 0.7772998611746911, q = 0.5621765008857981)
    dZ2 = AL − Y = [[p − 1, q − 0]] = [[−0.22270013882530892, 0.5621765008857981]]
    dW2 = 1/2 dZ2 A1ᵀ = 1/2 [(p−1)·1 + q·0.75,  (p−1)·0 + q·1.5]
        = [[0.0994661184195198, 0.4216323756643485]]
    db2 = 1/2 (p − 1 + q) = [[0.16973818103024457]]
    dA1 = W2ᵀ dZ2 = [[1·(p−1), 1·q], [−0.5·(p−1), −0.5·q]]
        = [[−0.22270013882530892, 0.5621765008857981], [0.11135006941265446, −0.28108825044289905]]
    dZ1 = dA1 ∗ relu'(Z1), relu'(Z1) = [[1, 1], [0, 1]]
        = [[−0.22270013882530892, 0.5621765008857981], [0.0, −0.28108825044289905]]
    dW1 = 1/2 dZ1 Xᵀ
        row 1: 1/2 [(p−1)·1 + q·2,  (p−1)·(−1) + q·0.5]
             = [0.4508264314731436, 0.251894194634104]
        row 2: 1/2 [0·1 + (−q/2)·2,  0·(−1) + (−q/2)·0.5]
             = [−0.28108825044289903, −0.07027206261072476]
    db1 = 1/2 [(p−1) + q,  0 + (−q/2)] = [[0.16973818103024457], [−0.14054412522144952]]
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import hpexp

TIGHT = {"rtol": 1e-12, "atol": 1e-15}

X_A = np.array([[1.0, 2.0], [-1.0, 0.5]])
Y_A = np.array([[1.0, 0.0]])


@pytest.fixture
def net_a() -> hpexp.MLP:
    model = hpexp.MLP([2, 2, 1], activation="relu", output="sigmoid")
    model.parameters = {
        "W1": np.array([[0.5, -0.5], [1.0, 1.0]]),
        "b1": np.array([[0.0], [-1.0]]),
        "W2": np.array([[1.0, -0.5]]),
        "b2": np.array([[0.25]]),
    }
    return model


def test_forward_by_hand(net_a):
    AL, caches = net_a.forward(X_A)

    assert len(caches) == 2
    np.testing.assert_array_equal(caches[0].A_prev, X_A)
    np.testing.assert_array_equal(caches[0].Z, [[1.0, 0.75], [-1.0, 1.5]])
    np.testing.assert_array_equal(caches[0].A, [[1.0, 0.75], [0.0, 1.5]])
    np.testing.assert_array_equal(caches[1].A_prev, [[1.0, 0.75], [0.0, 1.5]])
    np.testing.assert_array_equal(caches[1].Z, [[1.25, 0.25]])
    np.testing.assert_allclose(AL, [[0.7772998611746911, 0.5621765008857981]], **TIGHT)
    assert caches[0].mask is None and caches[1].mask is None


def test_cost_by_hand(net_a):
    AL, _ = net_a.forward(X_A)
    assert net_a.cost(AL, Y_A) == pytest.approx(0.5389342506121082, rel=1e-12)


def test_backward_by_hand(net_a):
    AL, caches = net_a.forward(X_A)
    grads = net_a.backward(AL, Y_A, caches)

    assert set(grads) == {"dW1", "db1", "dW2", "db2", "dA0", "dA1"}
    np.testing.assert_allclose(grads["dW2"], [[0.0994661184195198, 0.4216323756643485]], **TIGHT)
    np.testing.assert_allclose(grads["db2"], [[0.16973818103024457]], **TIGHT)
    np.testing.assert_allclose(
        grads["dA1"],
        [[-0.22270013882530892, 0.5621765008857981], [0.11135006941265446, -0.28108825044289905]],
        **TIGHT,
    )
    np.testing.assert_allclose(
        grads["dW1"],
        [[0.4508264314731436, 0.251894194634104], [-0.28108825044289903, -0.07027206261072476]],
        **TIGHT,
    )
    np.testing.assert_allclose(
        grads["db1"], [[0.16973818103024457], [-0.14054412522144952]], **TIGHT
    )
    # dA0 = W1ᵀ dZ1, dZ1 = [[p−1, q], [0, −q/2]]:
    #   row 1: 0.5(p−1) + 1·0,        0.5q + 1(−q/2)       = [−0.11135006941265446, 0]
    #   row 2: −0.5(p−1) + 1·0,       −0.5q + 1(−q/2)      = [ 0.11135006941265446, −q]
    np.testing.assert_allclose(
        grads["dA0"],
        [[-0.11135006941265446, 0.0], [0.11135006941265446, -0.5621765008857981]],
        **TIGHT,
    )


def test_backward_without_input_gradient_skips_dA0(net_a):
    AL, caches = net_a.forward(X_A)
    grads = net_a.backward(AL, Y_A, caches, input_grad=False)
    assert "dA0" not in grads
    assert {"dW1", "db1", "dW2", "db2", "dA1"} <= set(grads)


def test_one_step_of_gradient_descent_by_hand(net_a):
    # W := W − α dW with α = 0.5, full batch:
    #   W1 = [[0.5 − 0.5·0.4508264314731436,  −0.5 − 0.5·0.251894194634104],
    #         [1.0 + 0.5·0.28108825044289903,  1.0 + 0.5·0.07027206261072476]]
    #   b1 = [[0.0 − 0.5·0.16973818103024457], [−1.0 + 0.5·0.14054412522144952]]
    #   W2 = [[1.0 − 0.5·0.0994661184195198, −0.5 − 0.5·0.4216323756643485]]
    #   b2 = [[0.25 − 0.5·0.16973818103024457]]
    history = hpexp.train(net_a, X_A, Y_A, learning_rate=0.5, iterations=1)

    P = net_a.parameters
    np.testing.assert_allclose(
        P["W1"],
        [[0.2745867842634282, -0.625947097317052], [1.1405441252214495, 1.0351360313053624]],
        **TIGHT,
    )
    np.testing.assert_allclose(P["b1"], [[-0.08486909051512229], [-0.9297279373892753]], **TIGHT)
    np.testing.assert_allclose(P["W2"], [[0.9502669407902401, -0.7108161878321743]], **TIGHT)
    np.testing.assert_allclose(P["b2"], [[0.16513090948487772]], **TIGHT)
    # the recorded cost is the cost before the update
    np.testing.assert_allclose(history.costs, [0.5389342506121082], **TIGHT)


def test_l2_term_by_hand(net_a):
    # Σ||W||² = (0.25 + 0.25 + 1 + 1) + (1 + 0.25) = 3.75;  λ/(2m) = 0.4 / 4 = 0.1
    # J_l2 = 0.5389342506121082 + 0.1 · 3.75 = 0.9139342506121082
    AL, caches = net_a.forward(X_A)
    assert net_a.cost(AL, Y_A, l2=0.4) == pytest.approx(0.9139342506121082, rel=1e-12)

    # dW_l2 = dW + λ/m W = dW + 0.2 W
    #   dW2 = [[0.0994661184195198 + 0.2, 0.4216323756643485 − 0.1]]
    #   dW1 = [[0.4508264314731436 + 0.1, 0.251894194634104 − 0.1],
    #          [−0.28108825044289903 + 0.2, −0.07027206261072476 + 0.2]]
    #   biases are not regularized
    grads = net_a.backward(AL, Y_A, caches, l2=0.4)
    np.testing.assert_allclose(grads["dW2"], [[0.2994661184195198, 0.3216323756643485]], **TIGHT)
    np.testing.assert_allclose(
        grads["dW1"],
        [[0.5508264314731436, 0.151894194634104], [-0.08108825044289903, 0.12972793738927524]],
        **TIGHT,
    )
    np.testing.assert_allclose(grads["db2"], [[0.16973818103024457]], **TIGHT)


# Network B: no hidden layer, layer_dims [1, 3], softmax output, X = [[1, −1]].
#   W1 = [[0], [ln 3], [ln 4]], b1 = 0
#   sample 1 (x = 1):  Z = [0, ln 3, ln 4],   e^Z = [1, 3, 4],       Σ = 8
#                      AL = [1/8, 3/8, 4/8]
#   sample 2 (x = −1): Z = [0, −ln 3, −ln 4], e^Z = [1, 1/3, 1/4],   Σ = 19/12
#                      AL = [12/19, 4/19, 3/19]
#   Y = one-hot of classes (1, 0)
#   J = −1/2 [ln(3/8) + ln(12/19)] = 1/2 [ln(8/3) + ln(19/12)]
#   dZ = AL − Y = [[1/8, 12/19 − 1], [3/8 − 1, 4/19], [4/8, 3/19]]
#               = [[1/8, −7/19], [−5/8, 4/19], [1/2, 3/19]]
#   dW1 = 1/2 dZ Xᵀ = 1/2 (dZ[:, 0] − dZ[:, 1])
#       = 1/2 [1/8 + 7/19, −5/8 − 4/19, 1/2 − 3/19] = [75/304, −127/304, 13/76]
#   db1 = 1/2 (dZ[:, 0] + dZ[:, 1])
#       = 1/2 [1/8 − 7/19, −5/8 + 4/19, 1/2 + 3/19] = [−37/304, −63/304, 25/76]
#   dA0 = W1ᵀ dZ = [0·1/8 + ln3·(−5/8) + ln4·(1/2),  0·(−7/19) + ln3·(4/19) + ln4·(3/19)]


@pytest.fixture
def net_b() -> hpexp.MLP:
    model = hpexp.MLP([1, 3], output="softmax")
    model.parameters = {
        "W1": np.array([[0.0], [math.log(3)], [math.log(4)]]),
        "b1": np.zeros((3, 1)),
    }
    return model


X_B = np.array([[1.0, -1.0]])
Y_B = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])


def test_softmax_forward_and_cross_entropy_by_hand(net_b):
    AL, _ = net_b.forward(X_B)
    np.testing.assert_allclose(AL, [[1 / 8, 12 / 19], [3 / 8, 4 / 19], [4 / 8, 3 / 19]], **TIGHT)
    expected = 0.5 * (math.log(8 / 3) + math.log(19 / 12))
    assert net_b.cost(AL, Y_B) == pytest.approx(expected, rel=1e-12)


def test_softmax_cross_entropy_gradient_is_AL_minus_Y(net_b):
    AL, caches = net_b.forward(X_B)
    grads = net_b.backward(AL, Y_B, caches)

    np.testing.assert_allclose(grads["dW1"], [[75 / 304], [-127 / 304], [13 / 76]], **TIGHT)
    np.testing.assert_allclose(grads["db1"], [[-37 / 304], [-63 / 304], [25 / 76]], **TIGHT)
    ln3, ln4 = math.log(3), math.log(4)
    np.testing.assert_allclose(
        grads["dA0"], [[-5 / 8 * ln3 + 1 / 2 * ln4, 4 / 19 * ln3 + 3 / 19 * ln4]], **TIGHT
    )


# Network C: no hidden layer, linear output (half mean squared error), exact in binary.
#   W1 = [[2, −1]], b1 = [[0.5]], X = [[1, 0, 2], [1, 2, 0]], Y = [[1, −1, 3]]
#   Z = AL = [2 − 1 + 0.5, 0 − 2 + 0.5, 4 − 0 + 0.5] = [1.5, −1.5, 4.5]
#   AL − Y = [0.5, −0.5, 1.5]
#   J = 1/(2·3) (0.25 + 0.25 + 2.25) = 2.75 / 6
#   dW1 = 1/3 [0.5·1 − 0.5·0 + 1.5·2,  0.5·1 − 0.5·2 + 1.5·0] = [3.5/3, −0.5/3]
#   db1 = 1/3 (0.5 − 0.5 + 1.5) = 0.5


def test_linear_output_and_half_mse_by_hand():
    model = hpexp.MLP([2, 1], output="linear")
    model.parameters = {"W1": np.array([[2.0, -1.0]]), "b1": np.array([[0.5]])}
    X = np.array([[1.0, 0.0, 2.0], [1.0, 2.0, 0.0]])
    Y = np.array([[1.0, -1.0, 3.0]])

    AL, caches = model.forward(X)
    grads = model.backward(AL, Y, caches)

    np.testing.assert_array_equal(AL, [[1.5, -1.5, 4.5]])
    assert model.cost(AL, Y) == pytest.approx(2.75 / 6, rel=1e-15)
    np.testing.assert_allclose(grads["dW1"], [[3.5 / 3, -0.5 / 3]], **TIGHT)
    np.testing.assert_allclose(grads["db1"], [[0.5]], **TIGHT)
    np.testing.assert_array_equal(model.predict(X), [[1.5, -1.5, 4.5]])


def test_predict_thresholds_and_argmax_by_hand(net_a, net_b):
    # AL_A = [0.777..., 0.562...] → both above 0.5;  AL_B argmax per column: class 2, class 0
    np.testing.assert_array_equal(net_a.predict(X_A), [1, 1])
    np.testing.assert_array_equal(net_b.predict(X_B), [2, 0])
    np.testing.assert_allclose(
        net_a.predict_proba(X_A), [[0.7772998611746911, 0.5621765008857981]], **TIGHT
    )
