"""pandas tables of a study's trials, and comparisons across one hyperparameter."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from hpexp.errors import HpexpError
from hpexp.search.states import trial_status

__all__ = ["compare", "trials_frame"]

# user attributes that are bookkeeping, shown under their own column names
_META = {"mlflow_run_id": "run_id", "stop_reason": "stop_reason", "fail_reason": "fail_reason"}
_SKIP = {"worker", "retry_of"}
_RECORDED = ("stop_reason", "iterations_run")  # shown from a trial's `record` attribute


def trials_frame(study: optuna.Study, metrics: list[str]) -> pd.DataFrame:
    """One row per trial: number, state (Optuna's name), status (`trial_status`: complete,
    pruned, failed, interrupted, duplicate, ...), the objective value(s) (`value`, or
    `value_<metric>` for several objectives), every searched parameter, the recorded metrics
    (val_*, test_*, n_params, train_seconds, ...), duration in seconds and the MLflow run id."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, object] = {
            "number": t.number,
            "state": t.state.name,
            "status": trial_status(t),
        }
        values = t.values or [np.nan] * len(metrics)
        if len(metrics) == 1:
            row["value"] = values[0]
        else:
            row.update({f"value_{m}": v for m, v in zip(metrics, values, strict=True)})
        row.update(t.params)
        attrs = _flat_attrs(t)
        row.update({k: v for k, v in attrs.items() if k not in _META and k not in _SKIP})
        end = t.datetime_complete
        start = t.datetime_start
        row["duration_s"] = (end - start).total_seconds() if start and end else np.nan
        for key, column in _META.items():
            row[column] = attrs.get(key)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", "status", "value", "duration_s", "run_id"])
    return frame.set_index("number", drop=False).rename_axis(None)


def _flat_attrs(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """A trial's scalar user attributes, with its final `metrics` and `record` fields lifted to
    the top (older studies stored them there)."""
    attrs = dict(trial.user_attrs)
    record = attrs.get("record")
    if isinstance(record, dict):
        attrs |= {k: record[k] for k in _RECORDED if k in record}
    if isinstance(attrs.get("metrics"), dict):
        attrs |= attrs["metrics"]
    return {k: v for k, v in attrs.items() if not isinstance(v, (dict, list))}


def compare(trials: pd.DataFrame, param: str, metric: str, direction: str) -> pd.DataFrame:
    """Completed trials grouped by `param`: count, mean, std and best of `metric`, best group
    first. Numeric parameters with many distinct values are split into quartile bins."""
    if param not in trials.columns:
        per_layer = sorted(c for c in trials.columns if c.startswith(f"{param}_"))
        hint = f" (searched per layer: compare {', '.join(per_layer)})" if per_layer else ""
        known = [c for c in trials.columns if c not in ("number", "state", "status", "run_id")]
        raise HpexpError(f"no column {param!r}{hint}; columns: {', '.join(known)}")
    if metric not in trials.columns:
        raise HpexpError(f"no metric {metric!r} recorded yet; run some trials first")
    done = trials[trials["state"] == "COMPLETE"]
    key = done[param]
    if pd.api.types.is_numeric_dtype(key) and key.nunique() > 6:
        key = pd.qcut(key, q=4, duplicates="drop")
    best = "max" if direction == "maximize" else "min"
    table = done.groupby(key, observed=True)[metric].agg(
        count="count", mean="mean", std="std", best=best
    )
    return table.sort_values("mean", ascending=direction != "maximize")
