"""What the study machinery costs: the quickstart study run by hpexp (Optuna journal + MLflow
behind the search) against the very same trials trained bare, and side by side in one run with
plain Optuna (in memory) and plain Optuna + optuna-integration's MLflowCallback (which logs
final values only) on the same objective.

Overhead is measured two ways: (wall − bare retraining of the same trials) / wall, and
1 − Σ train_seconds / wall. Stores are created before the clock starts; the study's end
(artifacts: trials table, plots, best model) is inside it.

    make bench            # or: python benchmarks/tracking.py [--study studies/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import hpexp
from hpexp.search.objective import trial_seed
from hpexp.search.space import resolve, suggest


def bare_seconds(result: hpexp.StudyResult) -> float:
    """Seconds to train every finished trial of `result` again, with no Optuna or MLflow."""
    spec = result.spec
    ds = hpexp.load_dataset(**spec.dataset)
    dtype = spec.setting("dtype")
    X, Y = ds.X_train.astype(dtype), ds.Y_train.astype(dtype)
    Xv, Yv = ds.X_val.astype(dtype), ds.Y_val.astype(dtype)
    total = 0.0
    for t in result.study.trials:
        record = t.user_attrs.get("record") or {}
        if not t.state.is_finished() or "iterations_run" not in record:
            continue
        start = time.perf_counter()
        for repeat in range(len(record.get("seeds", [0]))):
            seed = trial_seed(spec.seed, t.number, repeat)
            setup = resolve(spec, t.params, ds.task, ds.n_x, ds.n_y, seed)
            config = dataclasses.replace(setup.train, iterations=record["iterations_run"])
            model = hpexp.MLP(**setup.model)
            hpexp.train(model, X, Y, X_val=Xv, Y_val=Yv, config=config)
        total += time.perf_counter() - start
    return total


def train_seconds(trials: list[Any]) -> float:
    return sum(float((t.user_attrs.get("metrics") or {}).get("train_seconds", 0.0)) for t in trials)


def plain_optuna(
    study_file: Path, n_trials: int | None, callback: bool
) -> tuple[float, float, int]:
    """The same study as an Optuna objective in memory (optionally with MLflowCallback):
    (wall seconds, Σ train seconds, trials)."""
    import optuna
    from optuna_integration.mlflow import MLflowCallback

    from hpexp.search.factories import make_pruner, make_sampler

    spec = hpexp.load_spec(study_file)
    ds = hpexp.load_dataset(**spec.dataset)
    dtype = spec.setting("dtype")
    data = [a.astype(dtype) for a in (ds.X_train, ds.Y_train, ds.X_val, ds.Y_val)]
    metric = spec.metric.removeprefix("val_")
    seconds = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, spec)
        setup = resolve(
            spec, params, ds.task, ds.n_x, ds.n_y, trial_seed(spec.seed, trial.number, 0)
        )

        def on_eval(step: int, metrics: dict[str, float]) -> bool:
            trial.report(metrics["val_" + metric], step)
            return trial.should_prune()

        model = hpexp.MLP(**setup.model)
        history = hpexp.train(model, data[0], data[1], X_val=data[2], Y_val=data[3],
                              callback=on_eval, config=setup.train)  # fmt: skip
        seconds.append(history.seconds)
        if history.stop_reason == "stopped":
            raise optuna.TrialPruned()
        return hpexp.evaluate(model, data[2], data[3])[metric]

    callbacks = []
    if callback:
        uri = f"sqlite:///{Path.cwd() / 'plain.db'}"
        from mlflow.tracking import MlflowClient

        MlflowClient(uri).search_experiments()  # the store exists before the clock starts
        callbacks = [MLflowCallback(tracking_uri=uri, metric_name=spec.metric)]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        sampler=make_sampler(spec.sampler, spec.seed),
        pruner=make_pruner(spec.pruner),
        direction=spec.directions[0],
    )
    n = n_trials or spec.n_trials or 20
    start = time.perf_counter()
    study.optimize(objective, n_trials=n, callbacks=callbacks)
    return time.perf_counter() - start, sum(seconds), n


def hpexp_study(study_file: Path, n_trials: int | None) -> tuple[float, float, int, float]:
    """(wall, Σ train seconds, trials, bare retraining seconds) for hpexp's own run, as
    `hpexp run` does it: it returns when every trial's MLflow run is written; the study run's
    artifacts (plots, best model) follow from the writer, timed separately."""
    from mlflow.tracking import MlflowClient

    from hpexp.background import _DETACHED

    MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}").search_experiments()
    spec = hpexp.load_spec(study_file)  # what loading the study file and its data imports
    hpexp.load_dataset(**spec.dataset)  # (as the other two runs do before their clocks)
    start = time.perf_counter()
    result = hpexp.run_study(study_file, n_trials=n_trials, progress=False, verbose=False)
    wall = time.perf_counter() - start
    for proc in _DETACHED:
        proc.wait()
    print(f"  (the study run's artifacts were in MLflow {time.perf_counter() - start - wall:.2f} s "
          "after run_study returned)")  # fmt: skip
    trials = result.study.trials
    return wall, train_seconds(trials), len(trials), bare_seconds(result)


def line(name: str, wall: float, train: float, n: int) -> None:
    over = wall - train
    print(
        f"  {name:<34}{wall:>7.2f} s wall, {train:>6.2f} s training, "
        f"{over / n * 1000:>5.0f} ms per trial = {over / wall:5.1%} overhead"
    )


def measure(study_file: Path, n_trials: int | None) -> None:
    here = os.getcwd()
    print(f"\n{study_file.name}: {n_trials or 'its'} trials (1 − Σ train_seconds / wall)")
    runs = {}
    for name, kind in (("hpexp (journal + MLflow)", "hpexp"), ("Optuna in memory", "plain"),
                       ("Optuna + MLflowCallback", "callback")):  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="hpexp-bench-") as tmp:
            os.chdir(tmp)
            try:
                if kind == "hpexp":
                    wall, train, n, bare = hpexp_study(study_file, n_trials)
                else:
                    wall, train, n = plain_optuna(study_file, n_trials, kind == "callback")
            finally:
                os.chdir(here)
        runs[kind] = (wall, train, n)
        line(name, wall, train, n)
    wall, _, n = runs["hpexp"]
    print(
        f"  {'hpexp vs bare retraining':<34}{wall:>7.2f} s wall, {bare:>6.2f} s bare, "
        f"{(wall - bare) / n * 1000:>5.0f} ms per trial = {(wall - bare) / wall:5.1%} overhead "
        "(target ≤ 10%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "studies/quickstart.yaml and 20 trials of studies/mnist1d.yaml"
    parser.add_argument("--study", action="append", help=f"study file (repeatable); {default}")
    parser.add_argument("--n-trials", type=int, default=None)
    args = parser.parse_args()
    import hpexp.study  # noqa: F401  (Optuna loads here, outside the timings)

    runs = [(Path(s), args.n_trials) for s in args.study or []] or [
        (Path("studies/quickstart.yaml"), args.n_trials),
        (Path("studies/mnist1d.yaml"), args.n_trials or 20),
    ]
    for study_file, n_trials in runs:
        measure(study_file.resolve(), n_trials)


if __name__ == "__main__":
    main()
