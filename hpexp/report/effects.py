"""Which hyperparameters matter: Optuna's importance evaluators, with bootstrap intervals.

The importances of the completed trials are computed once on all of them, then on `resamples`
bootstrap samples (the completed trials drawn with replacement, from a seeded generator): the
spread of those says how much the ranking owes to which trials happened to run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpexp.errors import HpexpError

__all__ = ["EVALUATORS", "effects"]

#: Trees in fANOVA's random forest (Optuna's default is 64): 16 rank the parameters as 64 do,
#: in a quarter of the time, which matters once per resample.
FANOVA_TREES = 16
EVALUATORS: dict[str, Callable[[int], BaseImportanceEvaluator]] = {
    "fanova": lambda seed: FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=seed),
    "ped_anova": lambda seed: PedAnovaImportanceEvaluator(),
}
Value = Callable[[FrozenTrial], float]


def effects(
    study: optuna.Study,
    value: Value,
    direction: str,
    evaluators: Sequence[str] = ("fanova", "ped_anova"),
    resamples: int = 30,
    seed: int = 0,
) -> pd.DataFrame:
    """Importance of each searched parameter for `value` (a trial's metric), per evaluator.

    Index (evaluator, param); columns `importance` (on all completed trials; each evaluator's
    sum to 1), and over the bootstrap resamples `mean`, `low` and `high` (2.5 and 97.5
    percentiles; resamples whose trials all have one value are left out; NaN with
    `resamples=0`, which computes the importances alone). Only completed
    trials with a finite value count; a parameter counts when every one of them has it
    (per-layer units of layers some networks lack do not) and it took more than one value.
    Same study and seed, same table."""
    unknown = [e for e in evaluators if e not in EVALUATORS]
    if unknown:
        raise HpexpError(f"unknown evaluator {unknown[0]!r}; choose from {', '.join(EVALUATORS)}")
    if resamples < 0:
        raise HpexpError(f"resamples must be >= 0 (0: no intervals), got {resamples}")
    sign = -1.0 if direction == "maximize" else 1.0  # PED-ANOVA looks for low values
    trials = _scored(study, lambda t: sign * value(t))
    params = _params(trials)
    if len(trials) < 3 or not params:
        raise HpexpError(
            f"importances need 3 completed trials and a parameter that varies; "
            f"the study has {len(trials)} completed trial(s) and {len(params)} such parameter(s)"
        )
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study in memory per resample
    try:
        return _table(trials, params, evaluators, resamples, seed)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _table(
    trials: list[FrozenTrial],
    params: list[str],
    evaluators: Sequence[str],
    resamples: int,
    seed: int,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, len(trials), len(trials)) for _ in range(resamples)]
    rows = []
    for name in evaluators:

        def importances(chosen: Sequence[FrozenTrial], name: str = name) -> list[float] | None:
            try:
                got = _importances(chosen, params, EVALUATORS[name](seed))
            except RuntimeError as e:  # fANOVA, when every chosen trial has the same value
                if "zero total variance" in str(e):
                    return None
                raise
            return [got[p] for p in params]

        point = importances(trials)
        if point is None:
            raise HpexpError(
                "importances need completed trials whose values differ; every one has the same"
            )
        # a resample of trials that all have one value has no variance to share out: left out
        found = [importances([trials[i] for i in s]) for s in samples]
        boot = np.array([b for b in found if b is not None] or [[np.nan] * len(params)])
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)  # NaN without resamples
        for k, p in enumerate(params):
            rows.append((name, p, point[k], boot[:, k].mean(), low[k], high[k]))
    table = pd.DataFrame(rows, columns=["evaluator", "param", "importance", "mean", "low", "high"])
    order = {name: i for i, name in enumerate(evaluators)}
    table = table.sort_values(
        ["evaluator", "importance"], key=lambda c: c.map(order) if c.name == "evaluator" else -c
    )
    return table.set_index(["evaluator", "param"])


def _scored(study: optuna.Study, score: Value) -> list[FrozenTrial]:
    """The completed trials as single-objective trials whose value is `score` (lower is
    better), those with a non-finite score left out."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        v = score(t)
        if v is not None and math.isfinite(v):
            out.append(create_trial(value=v, params=t.params, distributions=t.distributions))
    return out


def _params(trials: Sequence[FrozenTrial]) -> list[str]:
    """Parameters every trial has, that took more than one value, sorted."""
    if not trials:
        return []
    names = set.intersection(*(set(t.params) for t in trials))
    return sorted(n for n in names if len({repr(t.params[n]) for t in trials}) > 1)


def _importances(
    trials: Sequence[FrozenTrial], params: list[str], evaluator: BaseImportanceEvaluator
) -> dict[str, float]:
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        return get_param_importances(study, evaluator=evaluator, params=params)
