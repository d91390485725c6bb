"""What the study machinery costs: the quickstart study run by hpexp (Optuna journal + MLflow
behind the search) against the very same trials trained bare, and side by side in one run with
plain Optuna (in memory) and plain Optuna + optuna-integration's MLflowCallback (which logs
final values only) on the same objective.

Overhead is measured two ways: (wall − bare retraining of the same trials) / wall, and
1 − Σ train_seconds / wall. Every contestant trains with the BLAS threads hpexp gives its
trainer. Stores are created before the clock starts. The study returns once every trial's run
is in MLflow; the study run's artifacts (trials table, plots, report, best model) are written
behind it, and the time they take after it returns is printed apart.

    make bench            # or: python benchmarks/tracking.py [--study FILE] [--rounds R]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import tempfile
import time
import warnings
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
    with trainer_threads():
        bare = bare_seconds(result)
    return wall, train_seconds(trials), len(trials), bare


def trainer_threads() -> Any:
    """The BLAS threads hpexp gives a study's trainer (the cores but one), for the others:
    every contestant trains under the same conditions (with all cores' threads, OpenBLAS
    slows several-fold whenever another process wants a core)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(max(1, (os.cpu_count() or 1) - 1), "blas")


def line(name: str, rounds: list[tuple[float, float, int]], base: str = "training") -> None:
    """One contestant's medians over the rounds; the overhead's range across rounds too."""
    walls = [w for w, _, _ in rounds]
    others = [t for _, t, _ in rounds]
    per_trial = [(w - t) / n * 1000 for w, t, n in rounds]
    shares = [(w - t) / w for w, t, _ in rounds]
    spread = f" ({min(shares):.1%}–{max(shares):.1%})" if len(rounds) > 1 else ""
    print(
        f"  {name:<28}{statistics.median(walls):>7.2f} s wall, "
        f"{statistics.median(others):>6.2f} s {base}, "
        f"{statistics.median(per_trial):>5.0f} ms per trial = "
        f"{statistics.median(shares):5.1%} overhead{spread}"
    )


def measure(study_file: Path, n_trials: int | None, rounds: int) -> None:
    """Every contestant once per round, taking turns, so that a slow spell of the machine
    (timings here vary by ±30% from one minute to the next) hits them alike; medians."""
    here = os.getcwd()
    print(
        f"\n{study_file.name}: {n_trials or 'its'} trials, median of {rounds} round(s); "
        "overhead = 1 − Σ train_seconds / wall, then against bare retraining"
    )
    kinds = {"hpexp": "hpexp (journal + MLflow)", "plain": "Optuna in memory",
             "callback": "Optuna + MLflowCallback"}  # fmt: skip
    runs: dict[str, list[tuple[float, float, int]]] = {kind: [] for kind in [*kinds, "bare"]}
    for _ in range(rounds):
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix="hpexp-bench-") as tmp:
                os.chdir(tmp)
                try:
                    if kind == "hpexp":
                        wall, train, n, bare = hpexp_study(study_file, n_trials)
                        runs["bare"].append((wall, bare, n))
                    else:
                        with trainer_threads():
                            wall, train, n = plain_optuna(study_file, n_trials, kind == "callback")
                finally:
                    os.chdir(here)
            runs[kind].append((wall, train, n))
    for kind, name in kinds.items():
        line(name, runs[kind])
    line("hpexp vs bare retraining", runs["bare"], base="bare")
    print("  (target: hpexp ≤ 10% overhead)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "studies/quickstart.yaml and 20 trials of studies/mnist1d.yaml"
    parser.add_argument("--study", action="append", help=f"study file (repeatable); {default}")
    parser.add_argument("--n-trials", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="default: 3, 1 for mnist1d")
    args = parser.parse_args()
    import hpexp.study  # noqa: F401  (Optuna loads here, outside the timings)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its "Creating tables" lines
    warnings.filterwarnings("ignore", message=".*(experimental|deprecated).*")

    runs = [(Path(s), args.n_trials, args.rounds or 3) for s in args.study or []] or [
        (Path("studies/quickstart.yaml"), args.n_trials, args.rounds or 3),
        (Path("studies/mnist1d.yaml"), args.n_trials or 20, args.rounds or 1),
    ]
    for study_file, n_trials, rounds in runs:
        measure(study_file.resolve(), n_trials, rounds)


if __name__ == "__main__":
    main()
