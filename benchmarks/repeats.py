"""Repeats: S seeds of one configuration trained batched vs one seed alone.

Workload: mnist1d (40 features, 10 classes, 3,200 training samples), layer dims [40, 64, 64, 10],
ReLU + softmax, Adam, batch 64, validation every 50 updates, in float32 (the dtype of every
shipped study; --dtype float64 for the other) and with the BLAS threads a study's trainer gets
(the cores but one, which the MLflow writer and the sampler use). Both contestants run the same
updates in this one process, taking turns; the ratio is the batched run's time over one seed's
(S seeds one after another would take about S times one seed's).

    make bench            # or: python benchmarks/repeats.py [--seeds 5] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os

from core import best_times  # benchmarks/ is on the path when a script here runs
from threadpoolctl import threadpool_limits

import hpexp
from hpexp.nn import MLP, TrainConfig, train
from hpexp.nn.batched import train_batched

DIMS = [40, 64, 64, 10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer updates")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    ds = hpexp.load_dataset("mnist1d")
    X, Y, X_val, Y_val = (
        a.astype(args.dtype) for a in (ds.X_train, ds.Y_train, ds.X_val, ds.Y_val)
    )
    iterations = 100 if args.quick else 500
    seeds = range(args.seeds)
    configs = [
        TrainConfig(
            learning_rate=0.01,
            iterations=iterations,
            batch_size=64,
            optimizer="adam",
            eval_every=50,
            seed=s,
        )
        for s in seeds
    ]
    data = {"X": X, "Y": Y, "X_val": X_val, "Y_val": Y_val}

    def one() -> None:
        train(MLP(DIMS, "relu", "softmax", seed=0, dtype=args.dtype), config=configs[0], **data)

    def batched() -> None:
        models = [MLP(DIMS, "relu", "softmax", seed=s, dtype=args.dtype) for s in seeds]
        train_batched(models, configs=configs, **data)

    threads = max(1, (os.cpu_count() or 1) - 1)  # as hpexp.study gives its trainer
    with threadpool_limits(threads, "blas"):
        t = best_times({"one": one, "batched": batched}, args.repeats)
    print(
        f"repeats: {args.seeds} seeds of {DIMS}, batch 64, {iterations} Adam updates on "
        f"{ds.name} ({ds.n_x} features), {args.dtype}, {threads} BLAS thread(s)"
    )
    print(f"  one seed alone     {t['one']:8.3f} s")
    print(f"  {args.seeds} seeds batched    {t['batched']:8.3f} s")
    print(
        f"  ratio batched / one seed: {t['batched'] / t['one']:.2f}x "
        f"(one after another: about {args.seeds}x; target <= 2x)"
    )


if __name__ == "__main__":
    main()
