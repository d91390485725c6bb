"""Core speed: hpexp's NumPy MLP vs scikit-learn, PyTorch (CPU) and the exact-GEMM floor.

Reference workload: scikit-learn's digits tiled ×10 (17,970 × 64, pixels / 16), layer dims
[64, 256, 128, 64, 10], ReLU + softmax, plain SGD, α = 0.1, batch 256, 10 epochs, in float32 and
float64. Every contestant runs the same number of updates on the same data in this one process;
ratios are hpexp's time over the other's (below 1 means hpexp is faster).

With `--threads trainer` every contestant (BLAS, PyTorch) gets the threads a study gives its
trainer (the cores but one, which the MLflow writer and the sampler use); by default all cores.
NumPy's elementwise work runs on one core whatever the setting, while the floor's products use
them all, so on few cores the ratio to the floor is a question of threads as much as of code.

    make bench            # or: python benchmarks/core.py [--repeats 3] [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from itertools import pairwise

import numpy as np
from threadpoolctl import threadpool_limits

import hpexp

DIMS = [64, 256, 128, 64, 10]
BATCH, EPOCHS, LR = 256, 10, 0.1


def reference_data() -> tuple[np.ndarray, np.ndarray]:
    """X (17970, 64) in [0, 1], y (17970,) labels: digits tiled ten times."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.tile(digits.data / 16.0, (10, 1)), np.tile(digits.target, 10)


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` runs of each function, in seconds, after one untimed warm-up.

    The contestants take turns within each repeat, so a slow spell of the machine hits them
    alike instead of whichever happened to run during it.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def updates(m: int, epochs: int) -> int:
    return epochs * -(-m // BATCH)


def run_hpexp(X: np.ndarray, y: np.ndarray, dims: list[int], dtype: str, epochs: int) -> None:
    n_y = dims[-1]
    Y = np.eye(n_y)[y].T
    model = hpexp.MLP(dims, activation="relu", output="softmax", seed=0, dtype=dtype)
    hpexp.train(
        model,
        X.T,
        Y,
        learning_rate=LR,
        iterations=updates(X.shape[0], epochs),
        batch_size=BATCH,
        eval_every=10**9,
    )


def run_gemm_floor(X: np.ndarray, y: np.ndarray, dims: list[int], dtype: str, epochs: int) -> None:
    """Only the matrix products one update needs, of exactly the training shapes: forward
    W[l] A[l-1] for every layer, backward dZ A_prevᵀ for every layer, Wᵀ dZ for layers 2..L."""
    rng = np.random.default_rng(0)
    m = X.shape[0]
    Ws = [rng.standard_normal((n, k)).astype(dtype) for k, n in pairwise(dims)]
    sizes = [BATCH] * (m // BATCH) + ([m % BATCH] if m % BATCH else [])
    acts = {b: [rng.standard_normal((n, b)).astype(dtype) for n in dims] for b in set(sizes)}
    for _ in range(epochs):
        for b in sizes:
            A = acts[b]
            for l, W in enumerate(Ws, start=1):
                W @ A[l - 1]
            for l, W in reversed(list(enumerate(Ws, start=1))):
                A[l] @ A[l - 1].T
                if l > 1:
                    W.T @ A[l]


def run_sklearn(X: np.ndarray, y: np.ndarray, dims: list[int], dtype: str, epochs: int) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(dims[1:-1]),
        activation="relu",
        solver="sgd",
        learning_rate_init=LR,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=BATCH,
        max_iter=epochs,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X.astype(dtype), y)


def run_torch(X: np.ndarray, y: np.ndarray, dims: list[int], dtype: str, epochs: int) -> None:
    import torch

    tdtype = getattr(torch, dtype)
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for k, n in pairwise(dims[:-1]):
        layers += [torch.nn.Linear(k, n), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(dims[-2], dims[-1]))
    net = torch.nn.Sequential(*layers).to(tdtype)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X).to(tdtype), torch.from_numpy(y).long()
    m = Xt.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(m)
        Xs, ys = Xt[perm], yt[perm]
        for start in range(0, m, BATCH):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xs[start : start + BATCH]), ys[start : start + BATCH])
            loss.backward()
            opt.step()


def thread_count(value: str) -> int:
    """--threads: "all" (the cores), "trainer" (the cores but one), or a number."""
    cores = len(os.sched_getaffinity(0))
    if value == "all":
        return cores
    if value == "trainer":
        return max(1, cores - 1)
    return max(1, int(value))


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (best kept)")
    parser.add_argument("--quick", action="store_true", help="2 epochs instead of 10")
    parser.add_argument("--threads", default="all", help="all (default), trainer, or a number")
    args = parser.parse_args()
    epochs = 2 if args.quick else EPOCHS
    threads = thread_count(args.threads)
    with threadpool_limits(threads):
        compare(args.repeats, epochs, threads)


def compare(repeats: int, epochs: int, threads: int) -> None:
    """Every contestant on every workload, `threads` threads each."""

    X, y = reference_data()
    contestants: dict[str, Callable] = {
        "hpexp": run_hpexp,
        "gemm floor": run_gemm_floor,
        "scikit-learn": run_sklearn,
    }
    if torch_available():
        import torch

        torch.set_num_threads(threads)
        contestants["pytorch"] = run_torch
    else:
        print("PyTorch not installed (pip install '.[bench]'); its column is skipped.")

    workloads = [("digits×10 " + str(DIMS), X, y, DIMS)]
    rng = np.random.default_rng(0)
    big_dims = [784, 512, 512, 10]
    Xb, yb = rng.random((8192, 784)), rng.integers(0, 10, 8192)
    workloads.append(("random 8192×784 " + str(big_dims), Xb, yb, big_dims))

    print(
        f"{updates(X.shape[0], epochs)} updates of batch {BATCH} on the reference workload, "
        f"best of {repeats}; {threads} thread(s) each; times in seconds\n"
    )
    header = f"{'workload':<40} {'dtype':<8}" + "".join(f"{n:>14}" for n in contestants)
    ratios = "".join(f"{'hpexp/' + n:>18}" for n in contestants if n != "hpexp")
    print(header + ratios)
    for title, Xw, yw, dims in workloads:
        for dtype in ("float32", "float64"):
            runs = {n: partial(fn, Xw, yw, dims, dtype, epochs) for n, fn in contestants.items()}
            times = best_times(runs, repeats)
            row = f"{title:<40} {dtype:<8}" + "".join(f"{t:>14.3f}" for t in times.values())
            row += "".join(
                f"{times['hpexp'] / t:>17.2f}×" for n, t in times.items() if n != "hpexp"
            )
            print(row, flush=True)
    print(
        "\nTargets (reference workload): float32 hpexp ≤ 0.9× PyTorch, ≤ 0.6× scikit-learn, "
        "≤ 1.5× the GEMM floor; float64 ≤ 1.0× PyTorch."
    )


if __name__ == "__main__":
    main()
