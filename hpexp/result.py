"""`StudyResult`: a study as tables, the best trial and its model, and where MLflow shows it."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from hpexp.errors import HpexpError
from hpexp.nn import MLP, load_model
from hpexp.report.tables import compare, trials_frame
from hpexp.search.around import DEFAULT_SEEDS
from hpexp.search.objective import ModelFiles
from hpexp.search.space import fold
from hpexp.search.spec import METRICS, StudySpec

__all__ = ["MODEL_ARTIFACT", "StudyResult"]

#: Where the study's run keeps the best network as an MLflow (pyfunc) model.
MODEL_ARTIFACT = "model"


class StudyResult:
    """What a study found. `trials` is a DataFrame (one row per trial); `best_*` describe the
    best completed trial (for several objectives: the Pareto-optimal trial that is best on the
    first objective). Trained networks are read from beside the Optuna storage."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        models: ModelFiles,
        run_ids: dict[int, str] | None = None,
    ) -> None:
        self.spec, self.study, self.models = spec, study, models
        self._run_ids = dict(run_ids or {})
        self._all_ids = run_ids is not None

    def __repr__(self) -> str:
        n = len(self.study.trials)
        best = f", best {self.spec.metric}={self.best_value:.4g}" if self._has_best() else ""
        return f"StudyResult({self.spec.name!r}, {n} trials{best})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tracking_uri(self) -> str:
        return self.spec.tracking_uri

    @property
    def parent_run_id(self) -> str | None:
        """The MLflow run of the study (its summary, plots, and the best model as `model/`)."""
        return self.study.user_attrs.get("mlflow_parent_run_id")

    @property
    def model_uri(self) -> str | None:
        """The best trial's network as an MLflow model, for `mlflow.pyfunc.load_model` and
        `mlflow models serve -m` (None before the study has an MLflow run and a completed
        trial). The writer logs it seconds after `run_study` returns; `hpexp sync` rewrites it."""
        if not self.parent_run_id or not self._has_best():
            return None
        return f"runs:/{self.parent_run_id}/{MODEL_ARTIFACT}"

    @functools.cached_property
    def experiment_id(self) -> str | None:
        """The study's MLflow experiment id (None if it has none yet)."""
        known = self.study.user_attrs.get("mlflow_experiment_id")
        if known:
            return str(known)
        try:
            from mlflow.tracking import MlflowClient

            found = MlflowClient(self.tracking_uri).get_experiment_by_name(self.spec.experiment)
        except Exception:  # MLflow is a view: a study is readable without it
            return None
        return found.experiment_id if found else None

    def ui_url(self, host: str = "127.0.0.1", port: int = 5000, charts: bool = False) -> str:
        """Where the MLflow UI (`make ui` / `hpexp ui`) shows this study's trials, best first
        (`charts`: their learning curves); see `hpexp.tracking.views`."""
        from hpexp.tracking.views import view_url

        base = f"http://{host}:{port}"
        if self.experiment_id is None:
            return base
        return view_url(base, self.experiment_id, self.name, charts)

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
    def best_run_id(self) -> str | None:
        """The best trial's MLflow run (None until MLflow has it); its `model/` folder holds
        the network's .npz/.json files. The MLflow model to load or serve is `model_uri`."""
        return self.run_id(self.best_trial.number)

    def run_id(self, number: int) -> str | None:
        """Trial `number`'s MLflow run, found by its tags (None when MLflow has none)."""
        return self.run_ids().get(number)

    def run_ids(self) -> dict[int, str]:
        """{trial number: MLflow run id} for the trials MLflow has ({} when it cannot be read)."""
        if not self._all_ids:
            try:
                from hpexp.tracking.projection import Projection

                projection = Projection(self.tracking_uri, self.spec.experiment, self.name)
                runs = projection.trial_runs()
            except Exception:  # MLflow is a view: tables work without it
                return {}
            self._run_ids = {n: r[0].info.run_id for n, r in runs.items()}
            self._all_ids = True
        return self._run_ids

    @property
    def best_metrics(self) -> dict[str, float]:
        """Every metric recorded for the best trial (val_*, test_*, n_params, ...)."""
        return trial_metrics(self.best_trial)

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

        if len(frame):
            ids = self.run_ids()
            frame["run_id"] = [ids.get(int(n)) for n in frame["number"]]
        params = sorted((c for c in frame.columns if rank(c)[0] < len(order)), key=rank)
        head = [
            c for c in frame.columns if c in ("number", "state", "status") or c.startswith("value")
        ]
        tail = [c for c in frame.columns if c not in params and c not in head]
        return frame[head + params + tail]

    def best_config(self) -> dict[str, Any]:
        """The best trial's configuration as a study file's `fixed:` mapping (per-layer values
        as lists); `hpexp best STUDY --yaml` prints it."""
        return fold(self.spec, self.best_trial.params)

    def around_best(self, param: str, seeds: int = DEFAULT_SEEDS, **run: Any) -> StudyResult:
        """Train `param` over a grid of values around the best configuration's, everything else
        fixed at it, `seeds` seeds per value: the study `<name>-around-<param>` in the same
        storage, run (or resumed) by `hpexp.run_study(..., around_best=param)`, which takes
        `run`'s other arguments (`around_name`, `timeout`, `workers`, `verbose`, ...). Its
        `compare(param)` says whether the best value stands out from its neighbours."""
        from hpexp.study import run_study

        return run_study(self.spec, around_best=param, seeds=seeds, **run)

    def _direction(self, metric: str) -> str:
        known = {o.metric: o.direction for o in self.spec.objectives}
        return known.get(metric) or METRICS.get(metric, "maximize")

    def compare(self, param: str, metric: str | None = None, bins: int = 4) -> pd.DataFrame:
        """`metric` (default: the objective) per value of `param`, best group first: counts of
        completed and pruned trials, mean, std, standard error, 95% t interval and best.
        See `hpexp.report.tables.compare` for how pruned trials and repeats count."""
        metric = metric or self.spec.metric
        return compare(self.trials, param, metric, self._direction(metric), bins=bins)

    def effects(
        self,
        metric: str | None = None,
        evaluators: Sequence[str] = ("fanova", "ped_anova"),
        resamples: int = 30,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Importance of each searched parameter for `metric` (default: the objective) by
        fANOVA and PED-ANOVA, with 95% bootstrap intervals over `resamples` resamples of the
        completed trials; see `hpexp.report.effects.effects`."""
        from hpexp.report.effects import effects

        metric = metric or self.spec.metric
        return effects(
            self.study,
            lambda t: trial_metrics(t).get(metric, math.nan),
            self._direction(metric),
            evaluators=evaluators,
            resamples=resamples,
            seed=seed,
        )

    def report(self, out: str | Path | None = None, color_by: str | None = None) -> Any:
        """Write the study report, report.html (interactive figures, opens offline) and
        report.md, into `out` (default: beside the study's networks); `color_by` colours the
        learning curves (default: the most important parameter). Returns a
        `hpexp.report.document.ReportFiles`; `hpexp.report_study` also logs them to MLflow."""
        from hpexp.report.document import write_report

        return write_report(self, out, color_by=color_by)

    def reproduce(self, trial: int | str) -> Any:
        """Train trial `trial` (number or MLflow run id) again and compare it with its record,
        bit for bit: a `hpexp.Reproduction` (see `hpexp.reproduction.reproduce`)."""
        from hpexp.reproduction import reproduce

        return reproduce(self, trial)

    def reevaluate(self, top: int = 3, seeds: int = 10) -> pd.DataFrame:
        """Retrain the `top` best configurations and the study's baselines with `seeds` fresh
        seeds each: one row per configuration with its validation and test mean ± 95%
        interval, Welch's t test and Hedges' g against the best, and the winner's curse.
        Stored in the study and logged to MLflow; see `hpexp.reevaluation.reevaluate`."""
        from hpexp.reevaluation import reevaluate

        return reevaluate(self, top=top, seeds=seeds)

    def reevaluation(self, top: int | None = None, seeds: int | None = None) -> pd.DataFrame | None:
        """The re-evaluation stored in the study (for `top` and `seeds`, else the latest), as
        `reevaluate` returned it; None when the study has none."""
        from hpexp.reevaluation import stored_reevaluation

        return stored_reevaluation(self, top, seeds)

    def best_model(self) -> MLP:
        """The best trial's trained network."""
        return self.trial_model(self.best_trial.number)

    def trial_model(self, number: int) -> MLP:
        """Trial `number`'s trained network (completed trials keep theirs), read from beside
        the Optuna storage, or from its MLflow run when that copy was lost."""
        trials = self.study.get_trials(deepcopy=False)
        if not 0 <= number < len(trials) or trials[number].state.name != "COMPLETE":
            raise HpexpError(f"trial {number} did not complete, so it has no saved model")
        if self.models.exists(number):
            return load_model(self.models.path(number))
        run_id = self.run_id(number)
        if run_id is None:
            raise HpexpError(
                f"trial {number}'s model is missing from {self.models.root} and from MLflow"
            )
        import mlflow.artifacts

        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="model", tracking_uri=self.tracking_uri
        )
        return load_model(f"{local}/model")


def trial_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's final metrics: `metrics` attribute (flat number attributes in older studies)."""
    attrs = trial.user_attrs
    flat = {
        k: v for k, v in attrs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return {**flat, **(attrs.get("metrics") or {})}
