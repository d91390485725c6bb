"""`StudyResult`: a finished (or resumed) study as tables, the best trial and its model."""

from __future__ import annotations

import functools
from typing import Any

import optuna
import pandas as pd

from hpexp.errors import HpexpError
from hpexp.nn import MLP, load_model
from hpexp.report.tables import compare, trials_frame
from hpexp.search.spec import StudySpec

__all__ = ["StudyResult"]


class StudyResult:
    """What a study found. `trials` is a DataFrame (one row per trial); `best_*` describe the
    best completed trial (for several objectives: the Pareto-optimal trial that is best on the
    first objective)."""

    def __init__(self, spec: StudySpec, study: optuna.Study, tracking_uri: str) -> None:
        self.spec, self.study, self.tracking_uri = spec, study, tracking_uri

    def __repr__(self) -> str:
        n = len(self.study.trials)
        best = f", best {self.spec.metric}={self.best_value:.4g}" if self._has_best() else ""
        return f"StudyResult({self.spec.name!r}, {n} trials{best})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def parent_run_id(self) -> str | None:
        return self.study.user_attrs.get("mlflow_parent_run_id")

    @functools.cached_property
    def experiment_id(self) -> str | None:
        """The study's MLflow experiment id (None if it has none yet)."""
        from mlflow.tracking import MlflowClient

        found = MlflowClient(self.tracking_uri).get_experiment_by_name(self.spec.experiment)
        return found.experiment_id if found else None

    def ui_url(self, host: str = "127.0.0.1", port: int = 5000) -> str:
        """Where the MLflow UI (`make ui` / `hpexp ui`) shows this study's runs."""
        base = f"http://{host}:{port}"
        if self.experiment_id is None:
            return base
        return f"{base}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"

    def _has_best(self) -> bool:
        return any(t.state == optuna.trial.TrialState.COMPLETE for t in self.study.trials)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        if not self._has_best():
            raise HpexpError(f"study '{self.name}' has no completed trial yet; run more trials")
        if not self.spec.multi_objective:
            return self.study.best_trial
        sign = -1 if self.spec.objectives[0].direction == "maximize" else 1
        return min(self.study.best_trials, key=lambda t: sign * t.values[0])

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        """The best trial's (first) objective value."""
        return float(self.best_trial.values[0])

    @property
    def best_run_id(self) -> str:
        return str(self.best_trial.user_attrs.get("mlflow_run_id"))

    @property
    def best_metrics(self) -> dict[str, float]:
        """Every metric recorded for the best trial (val_*, test_*, n_params, ...)."""
        attrs = self.best_trial.user_attrs
        return {k: v for k, v in attrs.items() if isinstance(v, (int, float))}

    @functools.cached_property
    def trials(self) -> pd.DataFrame:
        frame = trials_frame(self.study, [o.metric for o in self.spec.objectives])
        # parameters in study-file order, per-layer ones by layer: hidden_units_1, _2, ...
        order = {name: i for i, name in enumerate(self.spec.search)}

        def rank(column: str) -> tuple[int, int]:
            base, _, layer = column.rpartition("_")
            if base in order and layer.isdigit():
                return order[base], int(layer)
            return order.get(column, len(order)), 0

        params = sorted((c for c in frame.columns if rank(c)[0] < len(order)), key=rank)
        head = [c for c in frame.columns if c in ("number", "state") or c.startswith("value")]
        tail = [c for c in frame.columns if c not in params and c not in head]
        return frame[head + params + tail]

    def compare(self, param: str, metric: str | None = None) -> pd.DataFrame:
        """Completed trials grouped by `param`: count, mean, std, best of the objective metric."""
        metric = metric or self.spec.metric
        direction = next(
            (o.direction for o in self.spec.objectives if o.metric == metric), "maximize"
        )
        return compare(self.trials, param, metric, direction)

    def best_model(self) -> MLP:
        """The best trial's trained network, read from its MLflow run (.npz + .json)."""
        return self.trial_model(self.best_trial.number)

    def trial_model(self, number: int) -> MLP:
        """Trial `number`'s trained network (completed trials keep theirs)."""
        import mlflow.artifacts

        trial = self.study.trials[number]
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.state != optuna.trial.TrialState.COMPLETE or not run_id:
            raise HpexpError(f"trial {number} did not complete, so it has no saved model")
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="model", tracking_uri=self.tracking_uri
        )
        return load_model(f"{local}/model")
