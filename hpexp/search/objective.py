"""The objective: one trial's training, recorded in the trial itself.

Each trial trains `repeats` networks with seeds derived from (study seed, trial number, repeat)
and returns the mean of the validation metric. With repeats > 1 the seeds train together in one
batched run (`hpexp.nn.batched`), each exactly as it would alone; the outcome is that of training
them one after another while each completes (the seeds after the first that is pruned or
diverges are dropped), and `train_seconds` is the batched run's wall time. The first repeat
reports its validation metric to Optuna at every evaluation (step = iteration), so the pruner
can stop hopeless trials, and its learning curves and model are the trial's. Test metrics are
computed for reporting only, never returned to Optuna.

With repeats > 1, `metrics` also holds, for each validation objective, the sample std, the
standard error and a 95% t interval of the mean over the seeds (`val_accuracy_std`,
`val_accuracy_sem`, `val_accuracy_ci95_low`, `val_accuracy_ci95_high`), and `record["per_seed"]`
lists every seed's final validation and test metrics, in seed order.

Everything a trial produced goes into the Optuna storage, the study's record: final metrics
(user attribute `metrics`), learning curves (`curves`), how it ended and where its model file is
(`record`). The model itself is saved beside the storage (`ModelFiles`). Tracking reads all of it
from there later, off the training path.
"""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hpexp.data import Dataset
from hpexp.nn import MLP, History, evaluate, save_model, train
from hpexp.nn.batched import train_batched
from hpexp.nn.io import ModelMetadata
from hpexp.search.repeats import summary
from hpexp.search.reports import Reports
from hpexp.search.space import TrialSetup, resolve
from hpexp.search.spec import StudySpec
from hpexp.search.stop import StopRequest

__all__ = [
    "Curves",
    "ModelFiles",
    "Objective",
    "TrialDiverged",
    "trial_seed",
    "worker_id",
]

Curves = dict[str, list[list[float]]]  # name -> [steps, values]


class TrialDiverged(Exception):
    """Training hit a non-finite cost: the trial fails with this reason, the study goes on."""


def trial_seed(study_seed: int, number: int, repeat: int) -> int:
    """A 32-bit seed determined by (study seed, trial number, repeat index)."""
    return int(np.random.SeedSequence([study_seed, number, repeat]).generate_state(1)[0])


def worker_id() -> str:
    """host:pid of this process, recorded on each trial to recognise trials left by a dead one."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ModelFiles:
    """Where a study keeps its trials' networks: `root/trial-00007/model.npz` + `model.json`
    (`root` is `hpexp-models/<study>` beside the Optuna storage)."""

    root: Path

    def folder(self, number: int) -> Path:
        return self.root / f"trial-{number:05d}"

    def path(self, number: int) -> Path:
        """The path without suffix, as `save_model`/`load_model` take it."""
        return self.folder(number) / "model"

    def exists(self, number: int) -> bool:
        p = self.path(number)
        return p.with_suffix(".npz").is_file() and p.with_suffix(".json").is_file()


def _with_origin(metadata: dict, spec: StudySpec, number: int, values: dict[str, Any]) -> dict:
    """A trial model's metadata: what it needs to predict from raw rows (`metadata`, the
    dataset's `ModelMetadata`), and the study, trial and hyperparameter values it came from."""
    return {**metadata, "study": spec.name, "trial": number, "params": dict(values)}


@dataclass
class _Run:
    model: MLP
    history: History
    setup: TrialSetup


class Objective:
    """`objective(trial, params)` trains the configuration `params` (already suggested on
    `trial`) and returns the objective value(s); raises `optuna.TrialPruned` when the pruner
    stops it and `TrialDiverged` when its cost stops being finite. Any exception leaves the
    reason in the trial's `fail_reason` attribute."""

    def __init__(
        self,
        spec: StudySpec,
        dataset: Dataset,
        models: ModelFiles,
        stop: StopRequest | None = None,
    ) -> None:
        self.spec, self.ds, self.models = spec, dataset, models
        self.stop = stop or StopRequest()
        self.reports = Reports()  # written behind the training
        self.metadata = ModelMetadata.of_dataset(dataset).to_dict()  # the dataset's part, once
        dtype = spec.setting("dtype")
        # Convert once, not once per trial.
        self.data = {
            split: np.ascontiguousarray(getattr(dataset, split), dtype=dtype)
            for split in ("X_train", "Y_train", "X_val", "Y_val", "X_test", "Y_test")
        }

    def __call__(self, trial: optuna.Trial, params: dict[str, Any]) -> float | list[float]:
        runs: list[_Run] = []
        try:
            setups = [self._setup(params, trial.number, r) for r in range(self.spec.repeats)]
            runs = self._train(trial, setups)
            return self._finish(trial, runs)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            self._fail(trial, runs, "interrupted")
            raise
        except TrialDiverged as e:
            self._fail(trial, runs, str(e))
            raise
        except Exception as e:
            detail = traceback.format_exception_only(type(e), e)[-1].strip()
            self._fail(trial, runs, f"error: {detail}")
            raise

    # -- pieces ---------------------------------------------------------------------------------

    def _setup(self, params: dict[str, Any], number: int, repeat: int) -> TrialSetup:
        seed = trial_seed(self.spec.seed, number, repeat)
        return resolve(self.spec, params, self.ds.task, self.ds.n_x, self.ds.n_y, seed)

    def _train(self, trial: optuna.Trial, setups: list[TrialSetup]) -> list[_Run]:
        """Train one model per setup (one seed each; together when there are several) and
        return the runs up to the first that did not complete."""
        metric = "val_" + self.spec.metric.removeprefix("val_")
        single = not self.spec.multi_objective

        def on_eval(seed_index: int, step: int, metrics: dict[str, float]) -> bool:
            value = metrics.get(metric)
            if seed_index or not single or value is None or not np.isfinite(value):
                return False
            with self.stop.shielded():
                self.reports.report(step, float(value))
                return self.reports.should_prune()

        d = self.data
        data = (d["X_train"], d["Y_train"])
        models = [MLP(**setup.model) for setup in setups]
        self.reports.start(trial)
        try:
            with self.stop.interruptible():
                if len(models) == 1:
                    histories = [
                        train(
                            models[0],
                            *data,
                            X_val=d["X_val"],
                            Y_val=d["Y_val"],
                            callback=lambda step, metrics: on_eval(0, step, metrics),
                            config=setups[0].train,
                        )
                    ]
                else:
                    histories = train_batched(
                        models,
                        *data,
                        X_val=d["X_val"],
                        Y_val=d["Y_val"],
                        callback=on_eval,
                        configs=[setup.train for setup in setups],
                        chain=True,
                    )
        except BaseException:
            with self.stop.shielded():
                self.reports.flush()  # the learning curve is in the storage before the trial ends
            raise
        runs = [_Run(*run) for run in zip(models, histories, setups, strict=True)]
        ended = [i for i, run in enumerate(runs) if run.history.stop_reason != "completed"]
        return runs[: ended[0] + 1] if ended else runs

    def _finish(self, trial: optuna.Trial, runs: list[_Run]) -> float | list[float]:
        spec, last = self.spec, runs[-1]
        stop = last.history.stop_reason
        if stop == "diverged":
            at = last.history.iterations_run + 1
            raise TrialDiverged(f"diverged: non-finite cost at iteration {at}")
        pruned = stop == "stopped"
        rows = self._rows(runs[:1] if pruned else runs)
        final = self._final(rows)
        record = self._record(runs)
        if len(rows) > 1:
            record["per_seed"] = {
                k: [row[k] for row in rows] for k in rows[0] if k.startswith(("val_", "test_"))
            }
        if pruned:
            record["pruned_at"] = runs[0].history.iterations_run
        else:
            model = runs[0].model
            model.metadata = _with_origin(self.metadata, spec, trial.number, runs[0].setup.values)
            save_model(model, self.models.path(trial.number))
            record["model"] = self.models.folder(trial.number).name
        self._store(record, runs, final)
        if pruned:
            raise optuna.TrialPruned(f"pruned at iteration {record['pruned_at']}")
        values = [final[o.metric] for o in spec.objectives]
        return values[0] if len(values) == 1 else values

    def _record(self, runs: list[_Run]) -> dict[str, Any]:
        first = runs[0]
        return {
            "stop_reason": runs[-1].history.stop_reason,
            "iterations_run": runs[-1].history.iterations_run,
            "layer_dims": list(first.setup.model["layer_dims"]),
            "values": first.setup.values,
            "seeds": [run.setup.model["seed"] for run in runs],
        }

    def _store(self, record: dict[str, Any], runs: list[_Run], final: dict[str, float]) -> None:
        """How it ended, its final metrics, its learning curves, with the values it reported
        to the pruner: one write to a journal file."""
        attrs: dict[str, Any] = {"record": record}
        if final:
            attrs["metrics"] = final
        if runs:
            attrs["curves"] = curves(runs[0].history)
        self.reports.flush(user_attrs=attrs)

    def _rows(self, runs: list[_Run]) -> list[dict[str, float]]:
        """Each run's final validation and test metrics, plus size and training time."""
        rows = []
        for run in runs:
            row = _validated_last(run.history) or {
                f"val_{k}": v
                for k, v in evaluate(run.model, self.data["X_val"], self.data["Y_val"]).items()
            }
            if self.data["X_test"].shape[1]:
                row |= {
                    f"test_{k}": v
                    for k, v in evaluate(
                        run.model, self.data["X_test"], self.data["Y_test"]
                    ).items()
                }
            row["train_cost"] = float(run.history.costs[-1]) if len(run.history.costs) else np.nan
            row["train_seconds"] = run.history.seconds
            row["n_params"] = run.model.n_params
            rows.append(row)
        return rows

    def _final(self, rows: list[dict[str, float]]) -> dict[str, float]:
        """The mean of every metric over the rows; with several, the spread of each validation
        objective (std, standard error, 95% interval: see `hpexp.search.repeats`)."""
        out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        if len(rows) > 1:
            for name in (o.metric for o in self.spec.objectives if o.metric.startswith("val_")):
                out |= summary(name, [r[name] for r in rows])
        return out

    def _fail(self, trial: optuna.Trial, runs: list[_Run], reason: str) -> None:
        trial.set_user_attr("fail_reason", reason)
        if runs:
            self._store(self._record(runs), runs, {})


def _validated_last(history: History) -> dict[str, float]:
    """The validation metrics of the network as training left it, when its last evaluation
    came after its last update (it does, unless it diverged); else {}."""
    if not history.eval_steps or history.eval_steps[-1] != history.iterations_run:
        return {}
    return {k: v for k, v in history.last().items() if k.startswith("val_")}


def curves(history: History) -> Curves:
    """Learning curves by iteration: every validation metric at each evaluation, and the
    training cost averaged over the iterations since the previous point (a last, partial
    window too when training stopped between evaluations). Non-finite values are left out:
    MLflow stores numbers only, and JSON has no NaN."""

    def finite(steps: list[int], values: list[float]) -> list[list[float]]:
        kept = [(s, float(v)) for s, v in zip(steps, values, strict=True) if np.isfinite(v)]
        return [[s for s, _ in kept], [v for _, v in kept]]

    ends = list(history.eval_steps)
    if history.iterations_run > (ends[-1] if ends else 0):
        ends.append(history.iterations_run)
    costs = history.costs[: history.iterations_run]
    windows = zip([0, *ends[:-1]], ends, strict=True)
    means = [float(np.mean(costs[a:b])) for a, b in windows]
    out = {"train_cost": finite(ends, means)}
    for name, values in history.metrics.items():
        if name != "cost":
            out[name] = finite(history.eval_steps, values)
    return out
