"""pandas tables of a study's trials, and comparisons across one hyperparameter with their
uncertainty."""

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
LEVEL = 0.95  # of the intervals in `compare`


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
        if isinstance(record.get("seeds"), list):
            attrs["repeats_run"] = len(record["seeds"])  # networks trained: one per seed
    if isinstance(attrs.get("metrics"), dict):
        attrs |= attrs["metrics"]
    return {k: v for k, v in attrs.items() if not isinstance(v, (dict, list))}


def compare(
    trials: pd.DataFrame, param: str, metric: str, direction: str, bins: int = 4
) -> pd.DataFrame:
    """`metric` per value of `param`, best group first. Numeric parameters with more than 6
    (and more than `bins`) distinct values are split into `bins` quantile bins.

    Columns: `count` completed trials (the sample), `pruned` trials (counted only: a network
    stopped early has no final metric comparable with the others, so they are left out of
    every statistic), `mean`, `std` (sample std), `se` = std/√count, `ci_low`/`ci_high` (the
    95% t interval mean ± t(count-1)·se) and `best`. Failed and running trials are left out.

    With `repeats`, a trial's metric is the mean over its seeds and trials stay the sample. A
    group of one trial takes std and se from its seeds instead (`<metric>_std`, their sample
    std, over `repeats_run` networks, t with repeats-1 degrees of freedom): the seed noise of
    that one configuration. Without repeats a single trial has no interval (NaN)."""
    if param not in trials.columns:
        per_layer = sorted(c for c in trials.columns if c.startswith(f"{param}_"))
        hint = f" (searched per layer: compare {', '.join(per_layer)})" if per_layer else ""
        known = [c for c in trials.columns if c not in ("number", "state", "status", "run_id")]
        raise HpexpError(f"no column {param!r}{hint}; columns: {', '.join(known)}")
    if metric not in trials.columns:
        raise HpexpError(f"no metric {metric!r} recorded yet; run some trials first")
    counted = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    key = counted[param]
    if pd.api.types.is_numeric_dtype(key) and key.nunique() > max(6, bins):
        key = pd.qcut(key, q=bins, duplicates="drop")
    rows = {
        value: _group(group, metric, direction)
        for value, group in counted.groupby(key, observed=True, sort=True)
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(_COLUMNS))
    table = table.astype(_COLUMNS).rename_axis(param)
    if isinstance(key.dtype, pd.CategoricalDtype):
        table.index = pd.CategoricalIndex(table.index, dtype=key.dtype, name=param)
    return table.sort_values("mean", ascending=direction != "maximize", na_position="last")


_COLUMNS = {
    "count": "int64",
    "pruned": "int64",
    "mean": "float64",
    "std": "float64",
    "se": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "best": "float64",
}


def _group(group: pd.DataFrame, metric: str, direction: str) -> list[float]:
    """One row of `compare`: the statistics of one group of trials."""
    done = group[group["state"] == "COMPLETE"]
    values = done[metric].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    n, pruned = len(values), int((group["state"] == "PRUNED").sum())
    mean = float(values.mean()) if n else np.nan
    std, df = (float(values.std(ddof=1)), n - 1) if n > 1 else (np.nan, 0)
    se = std / np.sqrt(n) if n > 1 else np.nan
    if n == 1:
        std, se, df = _seed_spread(done, metric)
    half = _t_quantile(df) * se if df > 0 else np.nan
    best = (values.max() if direction == "maximize" else values.min()) if n else np.nan
    return [n, pruned, mean, std, se, mean - half, mean + half, float(best)]


def _seed_spread(done: pd.DataFrame, metric: str) -> tuple[float, float, int]:
    """(std, se, degrees of freedom) over the seeds of the one completed trial in `done`, from
    the sample std over its `repeats_run` networks that the objective records (`<metric>_std`,
    see `hpexp.search.repeats`); NaNs when it trained one network."""
    row = done[np.isfinite(done[metric].to_numpy(dtype=float))].iloc[0]
    r = row.get("repeats_run")
    std = row.get(f"{metric}_std")
    if pd.isna(r) or pd.isna(std) or int(r) < 2:
        return np.nan, np.nan, 0
    r = int(r)
    return float(std), float(std) / np.sqrt(r), r - 1


def _t_quantile(df: int) -> float:
    """The two-sided `LEVEL` quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + LEVEL / 2, df))
