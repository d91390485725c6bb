"""Tracking overhead: the quickstart study run in full (Optuna storage + MLflow runs, curves,
artifacts, best model) vs the very same trial configurations trained bare with the core.

Each trial is retrained bare with its logged params and seed, for the iterations it actually
ran (pruned trials stop where the pruner stopped them), evaluating the validation set on the
same schedule. The difference is what the study machinery costs.

    make bench            # or: python benchmarks/tracking.py [--study studies/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import hpexp
from hpexp.search.objective import trial_seed
from hpexp.search.space import resolve


def bare_seconds(result: hpexp.StudyResult) -> float:
    """Seconds to train every finished trial of `result` again, with no Optuna or MLflow."""
    spec = result.spec
    ds = hpexp.load_dataset(**spec.dataset)
    dtype = spec.setting("dtype")
    X, Y = ds.X_train.astype(dtype), ds.Y_train.astype(dtype)
    Xv, Yv = ds.X_val.astype(dtype), ds.Y_val.astype(dtype)
    total = 0.0
    for t in result.study.trials:
        if not t.state.is_finished() or "iterations_run" not in t.user_attrs:
            continue
        start = time.perf_counter()
        for repeat in range(spec.repeats if t.state.name == "COMPLETE" else 1):
            seed = trial_seed(spec.seed, t.number, repeat)
            setup = resolve(spec, t.params, ds.task, ds.n_x, ds.n_y, seed)
            config = dataclasses.replace(setup.train, iterations=t.user_attrs["iterations_run"])
            model = hpexp.MLP(**setup.model)
            hpexp.train(model, X, Y, X_val=Xv, Y_val=Yv, config=config)
        total += time.perf_counter() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study",
        action="append",
        help="study file (repeatable); default: "
        "studies/quickstart.yaml and 20 trials of studies/mnist1d.yaml",
    )
    parser.add_argument("--n-trials", type=int, default=None)
    args = parser.parse_args()
    import hpexp.search  # noqa: F401  (Optuna and MLflow load here, outside the timings)

    runs = [(Path(s), args.n_trials) for s in args.study or []] or [
        (Path("studies/quickstart.yaml"), args.n_trials),
        (Path("studies/mnist1d.yaml"), args.n_trials or 20),
    ]
    for study_file, n_trials in runs:
        measure(study_file.resolve(), n_trials)


def measure(study_file: Path, n_trials: int | None) -> None:
    """Run the study in a scratch folder and print its overhead over bare training."""
    from mlflow.tracking import MlflowClient

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="hpexp-bench-") as tmp:
        os.chdir(tmp)
        try:
            start = time.perf_counter()
            MlflowClient(f"sqlite:///{Path(tmp).resolve()}/mlflow.db").search_experiments()
            store = time.perf_counter() - start
            start = time.perf_counter()
            result = hpexp.run_study(study_file, n_trials=n_trials, progress=False, verbose=False)
            full = time.perf_counter() - start
            bare = bare_seconds(result)
            report(result, full, bare, store)
        finally:
            os.chdir(here)


def report(result: hpexp.StudyResult, full: float, bare: float, store: float) -> None:
    states = result.trials["state"].value_counts().to_dict()
    n = len(result.trials)
    overhead = full - bare
    print(f"\nstudy {result.name!r}: {n} trials {states}")
    print(f"{'  full study (Optuna + MLflow)':<36}{full:>8.2f} s")
    print(f"{'  same trials, bare core':<36}{bare:>8.2f} s")
    print(
        f"{'  overhead':<36}{overhead:>8.2f} s = {overhead / full:.1%} of the study's wall "
        f"time, {overhead / n * 1000:.0f} ms per trial (target ≤ 10%)"
    )
    print(f"{'  MLflow store creation (once)':<36}{store:>8.2f} s, not included above")
    test = result.best_metrics.get("test_accuracy", np.nan)
    print(f"  best {result.spec.metric} {result.best_value:.4f}, its test accuracy {test:.4f}")


if __name__ == "__main__":
    main()
