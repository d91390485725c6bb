"""Re-evaluation: a study's best configurations and its baselines trained again with fresh seeds.

The search scores each configuration once (the mean over its `repeats` seeds); the best of many
noisy scores is biased upwards, the winner's curse. `reevaluate` retrains the top-K completed
configurations (ranked by the study's validation objective, each configuration once) and every
baseline the study enqueued itself (`enqueue:` in its file, e.g. the lecture's network) with S
fresh seeds each, and reports for each configuration:

- the validation and test metric over its seeds: mean, std (ddof 1), standard error and 95% t
  interval (`hpexp.search.repeats.summary`);
- against the best configuration (the best re-evaluated validation mean): Welch's t test of the
  validation values (two-sided p-value) and Hedges' g (see `hpexp.report.reevaluation`);
- the winner's curse: the search's validation score minus the re-evaluated validation mean
  (positive: the search was optimistic, for a metric to maximize).

Fresh seeds: seed i of trial n's configuration is drawn from (study seed, n, i) by a SeedSequence
under a spawn key of its own, skipping any seed the search used; the same study gives the same
seeds, so the same numbers, every time. The seeds of one configuration train together
(`hpexp.nn.batched`, each seed exactly as alone), as many at once as the model-size limit allows.
A seed whose training diverges is counted (`diverged`) and left out of the statistics.

The result is stored in the Optuna storage, the study's record (study user attribute
`reevaluation:top3-seeds10`, JSON), and written to MLflow from there (see
`hpexp.tracking.reevaluation`); `hpexp sync` writes it again when MLflow lost it.
"""

from __future__ import annotations

import datetime
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from hpexp.data import Dataset
from hpexp.errors import ConfigError, HpexpError
from hpexp.nn import MLP, History, evaluate, train
from hpexp.nn.batched import train_batched
from hpexp.nn.checks import is_integer
from hpexp.nn.limits import count_parameters, max_model_bytes, training_copies
from hpexp.report.reevaluation import rows, table
from hpexp.reproduction import _diverged, checked_dataset
from hpexp.result import StudyResult, trial_metrics
from hpexp.search.objective import trial_seed
from hpexp.search.space import TrialSetup, resolve
from hpexp.search.spec import StudySpec
from hpexp.search.states import retry_of, trial_status

if TYPE_CHECKING:
    from hpexp.sync import Syncer

__all__ = [
    "ATTR",
    "check_reevaluations",
    "fresh_seeds",
    "reevaluate",
    "search_seeds",
    "seeds_at_once",
    "stored_reevaluation",
    "train_seeds",
    "write_reevaluations",
]

ATTR = "reevaluation:"  # study user attribute prefix: reevaluation:top3-seeds10
SEED_STREAM = 0x5EED  # the SeedSequence spawn key of re-evaluation seeds (the search uses none)
MAX_SEEDS_AT_ONCE = 16  # seeds of one batched run (their activations are held at once)
VERSION = 1  # of the stored record
SPLITS = ("X_train", "Y_train", "X_val", "Y_val", "X_test", "Y_test")


@dataclass(frozen=True)
class Candidate:
    """A configuration to re-evaluate: the trial that ran it, its rank among the completed
    trials (1 = best; None for a baseline that did not complete) and whether it is a baseline."""

    trial: FrozenTrial
    rank: int | None
    baseline: bool
    top: bool = True  # one of the top K (else a baseline added to them)


# -- the whole re-evaluation ----------------------------------------------------------------------


def reevaluate(
    study: str | StudyResult,
    *,
    top: int = 3,
    seeds: int = 10,
    storage: str | None = None,
    tracking_uri: str | None = None,
    progress: Callable[[str], object] | None = None,
    warn: Callable[[str], object] | None = None,
) -> pd.DataFrame:
    """Retrain the `top` best configurations of `study` (a name or a StudyResult) and its
    baselines with `seeds` fresh seeds each; store the result in the study, log it to MLflow
    and return it as a table (see `table`). `progress` receives a line per configuration.
    A failed MLflow write goes to `warn` (default: a RuntimeWarning); the result is stored all
    the same, and `hpexp sync` writes it.
    Raises ConfigError for top < 1 or seeds < 2, HpexpError for a study with no completed
    trial, DataError when the data no longer matches the study's fingerprint; all before
    anything is trained."""
    check_sizes(top, seeds)
    result = _result(study, storage, tracking_uri)
    metric, direction = reevaluated_metric(result)
    chosen = candidates(result, top, metric, direction)
    ds, warning = checked_dataset(result)
    from hpexp.tracking.stores import check_reachable

    check_reachable(result.tracking_uri, "--tracking-uri")
    used = search_seeds(result)
    runs = []
    for c in chosen:
        numbers = fresh_seeds(result.spec.seed, c.trial.number, seeds, used)
        used.update(numbers)
        start = time.perf_counter()
        per_seed, diverged = train_seeds(result.spec, ds, c.trial.params, numbers)
        if progress is not None:
            what = "baseline" if c.baseline else f"rank {c.rank}"
            progress(
                f"trial {c.trial.number} ({what}): {seeds} seeds trained in "
                f"{time.perf_counter() - start:.1f} s"
            )
        runs.append(_run_entry(c, metric, numbers, per_seed, diverged))
    record = _record(result, (top, seeds), (metric, direction), runs, [warning] if warning else [])
    key = reevaluation_key(top, seeds)
    result.study.set_user_attr(ATTR + key, record)
    problem = _log(result, key, ds.name)
    if problem and warn is not None:
        warn(problem)
    elif problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    return table(record)


def check_sizes(top: object, seeds: object) -> None:
    """top ≥ 1 configurations and seeds ≥ 2 (an interval needs two values), integers."""
    if not is_integer(top) or int(top) < 1:  # type: ignore[call-overload]
        raise ConfigError(f"top must be an integer >= 1 (configurations to retrain), got {top!r}")
    if not is_integer(seeds) or int(seeds) < 2:  # type: ignore[call-overload]
        raise ConfigError(
            f"seeds must be an integer >= 2 (a mean ± interval needs two values), got {seeds!r}"
        )


def reevaluation_key(top: int, seeds: int) -> str:
    return f"top{int(top)}-seeds{int(seeds)}"


def _result(study: str | StudyResult, storage: str | None, tracking_uri: str | None) -> StudyResult:
    if isinstance(study, StudyResult):
        return study
    from hpexp.study import load_study

    return load_study(study, storage=storage, tracking_uri=tracking_uri)


def reevaluated_metric(result: StudyResult) -> tuple[str, str]:
    """The study's first validation objective and its direction."""
    for objective in result.spec.objectives:
        if objective.metric.startswith("val_"):
            return objective.metric, objective.direction
    names = ", ".join(o.metric for o in result.spec.objectives)
    raise HpexpError(
        f"study '{result.name}' has no validation objective ({names}): re-evaluation compares "
        "validation scores; re-evaluate a study that searches a val_ metric"
    )


# -- which configurations -------------------------------------------------------------------------


def candidates(result: StudyResult, top: int, metric: str, direction: str) -> list[Candidate]:
    """The `top` best distinct completed configurations by `metric` (ties: lower trial number
    first), then the study's baselines not among them, by trial number."""
    trials = result.study.get_trials(deepcopy=False)
    index = [o.metric for o in result.spec.objectives].index(metric)
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[index])
    ]
    if not complete:
        raise HpexpError(
            f"study '{result.name}' has no completed trial to re-evaluate; run more trials "
            f"(hpexp show {result.name} --all lists them)"
        )
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted(complete, key=lambda t: (sign * t.values[index], t.number))
    rank = {t.number: i for i, t in enumerate(ranked, start=1)}
    baselines = {t.number for t in baseline_trials(trials)}
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for t in ranked:
        if len(chosen) == top:
            break
        if _key(t.params) not in seen:
            seen.add(_key(t.params))
            chosen.append(Candidate(t, rank[t.number], t.number in baselines))
    for t in baseline_trials(trials):
        if _key(t.params) not in seen:
            seen.add(_key(t.params))
            chosen.append(Candidate(t, rank.get(t.number), True, top=False))
    return chosen


def baseline_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials of the baselines the study enqueued (a baseline interrupted and
    re-run: its re-run), that have a configuration to retrain: complete, pruned or diverged."""
    marked = {t.number for t in trials if t.user_attrs.get("baseline")}
    for t in trials:  # in number order: a re-run comes after what it re-runs
        if retry_of(t) in marked:
            marked.add(t.number)
    return [
        t
        for t in trials
        if t.number in marked and (trial_status(t) in ("complete", "pruned") or _diverged(t))
    ]


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


# -- seeds and training ---------------------------------------------------------------------------


def search_seeds(result: StudyResult) -> set[int]:
    """Every seed the search used or would use for its trials: the seeds recorded on each trial
    and those of (study seed, trial number, repeat) for every trial and repeat."""
    spec, used = result.spec, set[int]()
    for t in result.study.get_trials(deepcopy=False):
        record = t.user_attrs.get("record") or {}
        used.update(int(s) for s in record.get("seeds", []))
        used.update(trial_seed(spec.seed, t.number, r) for r in range(spec.repeats))
    return used


def fresh_seeds(study_seed: int, number: int, count: int, used: set[int]) -> list[int]:
    """`count` distinct 32-bit seeds for re-evaluating trial `number`'s configuration: from
    (study seed, number, i), i = 0, 1, ..., under the re-evaluation spawn key, skipping any in
    `used`. The first seeds of a longer list are those of a shorter one."""
    out: list[int] = []
    i = 0
    while len(out) < count:
        sequence = np.random.SeedSequence([study_seed, number, i], spawn_key=(SEED_STREAM,))
        seed = int(sequence.generate_state(1)[0])
        if seed not in used and seed not in out:
            out.append(seed)
        i += 1
    return out


def train_seeds(
    spec: StudySpec, ds: Dataset, params: dict[str, Any], seeds: Sequence[int]
) -> tuple[dict[str, list[float]], list[int]]:
    """Train configuration `params` of `spec` once per seed, for all its iterations (no
    pruning). Returns every seed's final validation and test metrics in seed order
    ({"val_accuracy": [S values], "test_accuracy": ...}; NaN for a seed that diverged) and the
    indices of the seeds that diverged."""
    dtype = spec.setting("dtype")
    data = {split: np.ascontiguousarray(getattr(ds, split), dtype=dtype) for split in SPLITS}
    setups = [resolve(spec, params, ds.task, ds.n_x, ds.n_y, seed) for seed in seeds]
    at_once = seeds_at_once(setups[0])
    finals: list[dict[str, float]] = []
    diverged: list[int] = []
    for start in range(0, len(setups), at_once):
        group = setups[start : start + at_once]
        for i, (model, history) in enumerate(zip(*_train(group, data), strict=True)):
            finals.append(_metrics(model, data))
            if history.stop_reason == "diverged":
                diverged.append(start + i)
                finals[-1] = dict.fromkeys(finals[-1], math.nan)
    return {name: [final[name] for final in finals] for name in finals[0]}, diverged


def seeds_at_once(setup: TrialSetup) -> int:
    """How many seeds of this configuration train in one batched run: as many as the
    model-size limit allows (their parameters and training state at once), at most
    MAX_SEEDS_AT_ONCE; 1 when even two do not fit (they train one by one)."""
    one = (
        count_parameters(setup.model["layer_dims"])
        * np.dtype(setup.model["dtype"]).itemsize
        * training_copies(setup.train.optimizer)
    )
    return int(max(1, min(MAX_SEEDS_AT_ONCE, max_model_bytes() // max(one, 1))))


def _train(group: Sequence[TrialSetup], data: dict[str, np.ndarray]) -> tuple[list[MLP], list]:
    """Models trained with each setup of `group` (one seed each): batched when several."""
    models = [MLP(**setup.model) for setup in group]
    X, Y = data["X_train"], data["Y_train"]
    histories: list[History]
    if len(models) == 1:
        histories = [train(models[0], X, Y, config=group[0].train)]
    else:
        histories = train_batched(models, X, Y, configs=[setup.train for setup in group])
    return models, histories


def _metrics(model: MLP, data: dict[str, np.ndarray]) -> dict[str, float]:
    """val_* and test_* metrics of a trained model (test_* only when there is a test split)."""
    out = {f"val_{k}": v for k, v in evaluate(model, data["X_val"], data["Y_val"]).items()}
    if data["X_test"].shape[1]:
        out |= {f"test_{k}": v for k, v in evaluate(model, data["X_test"], data["Y_test"]).items()}
    return out


# -- the stored record and the table --------------------------------------------------------------


def _run_entry(
    c: Candidate,
    metric: str,
    seeds: list[int],
    per_seed: dict[str, list[float]],
    diverged: list[int],
) -> dict[str, Any]:
    """One configuration's part of the record (before statistics)."""
    complete = c.trial.state == TrialState.COMPLETE
    search = trial_metrics(c.trial).get(metric, math.nan) if complete else math.nan
    return {
        "trial": c.trial.number,
        "baseline": c.baseline,
        "rank": c.rank,
        "top": c.top,
        "search_value": float(search),
        "params": dict(c.trial.params),
        "seeds": seeds,
        "per_seed": per_seed,
        "diverged": diverged,
    }


def _record(
    result: StudyResult,
    sizes: tuple[int, int],
    objective: tuple[str, str],
    runs: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    """The JSON-safe record stored in the study (non-finite numbers as null)."""
    (top, seeds), (metric, direction) = sizes, objective
    found, best = rows(runs, metric, direction)
    completed = sum(t.state == TrialState.COMPLETE for t in result.study.get_trials(deepcopy=False))
    return _json_safe(
        {
            "version": VERSION,
            "study": result.name,
            "top": top,
            "top_configurations": sum(bool(run["top"]) for run in runs),
            "seeds": seeds,
            "metric": metric,
            "test_metric": "test_" + metric.removeprefix("val_"),
            "direction": direction,
            "completed": completed,
            "best": best,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "warnings": notes,
            "rows": found,
            "runs": runs,
        }
    )


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float as None and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def stored_reevaluation(
    result: StudyResult, top: int | None = None, seeds: int | None = None
) -> pd.DataFrame | None:
    """The re-evaluation stored in the study for (top, seeds), or the latest one when neither
    is given; None when there is none."""
    records = stored_records(result)
    if top is not None or seeds is not None:
        found = [
            r
            for r in records.values()
            if (top is None or r["top"] == top) and (seeds is None or r["seeds"] == seeds)
        ]
    else:
        found = list(records.values())
    if not found:
        return None
    return table(max(found, key=lambda r: str(r.get("created", ""))))


def stored_records(result: StudyResult) -> dict[str, dict[str, Any]]:
    """{key: record} of every re-evaluation stored in the study (this version's only)."""
    out = {}
    for name, value in result.study.user_attrs.items():
        if name.startswith(ATTR) and isinstance(value, dict) and value.get("version") == VERSION:
            out[name.removeprefix(ATTR)] = value
    return out


# -- MLflow ---------------------------------------------------------------------------------------


def _log(result: StudyResult, key: str, dataset_name: str) -> str | None:
    """Write re-evaluation `key` to MLflow; None, or a warning when MLflow could not be written
    (the result is in the Optuna storage: `hpexp sync` writes it later)."""
    try:
        from hpexp.sync import Syncer

        syncer = Syncer(result.spec, result.study, result.models, dataset_name)
        parent = result.parent_run_id
        if not parent or syncer.projection._get(parent) is None:  # no study run: build it all
            from hpexp.study import sync_study

            sync_study(result.name, storage=result.spec.storage, tracking_uri=result.tracking_uri)
            return None
        with syncer.lock():
            syncer.projection.parent_run_id = parent
            write_reevaluations(result, syncer, keys=[key])
        return None
    except Exception as e:  # MLflow is a view: the result is stored
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        return (
            f"MLflow is not up to date ({detail}); the re-evaluation is stored in the Optuna "
            f"storage: write it with hpexp sync {result.name}"
        )


def write_reevaluations(
    result: StudyResult, syncer: Syncer, keys: Sequence[str] | None = None
) -> dict[str, dict[int, str]]:
    """Write the stored re-evaluations (those of `keys`, else all) under the study's run
    (`syncer.projection.parent_run_id`, opened by the caller, who holds the syncer's lock).
    Idempotent. Returns {key: {trial: run id}}."""
    from hpexp.tracking.reevaluation import write_reevaluation

    projection = syncer.projection
    parent = projection.parent_run_id or result.parent_run_id
    if not parent:
        return {}
    out = {}
    for key, record in stored_records(result).items():
        if keys is None or key in keys:
            out[key] = write_reevaluation(projection, parent, key, *_projected(record))
    return out


def check_reevaluations(result: StudyResult, syncer: Syncer) -> list[str]:
    """One line per way MLflow differs from the stored re-evaluations (see
    `tracking.reevaluation.check_reevaluation`); [] when they agree."""
    from hpexp.tracking.reevaluation import check_reevaluation

    parent = syncer.projection.parent_run_id or result.parent_run_id
    if not parent:
        return []
    problems = []
    for key, record in stored_records(result).items():
        problems += check_reevaluation(syncer.projection, parent, key, *_projected(record))
    return problems


def _projected(record: dict[str, Any]) -> tuple[list[Any], str]:
    """What MLflow shows of a stored re-evaluation: its runs, and its table as CSV text."""
    return mlflow_runs(record), table(record).to_csv(index=False)


def mlflow_runs(record: dict[str, Any]) -> list[Any]:
    """The MLflow runs of a stored re-evaluation, one per configuration."""
    from hpexp.tracking.reevaluation import ReevaluationRun

    frame = table(record)
    runs = {run["trial"]: run for run in record["runs"]}
    out = []
    for row in frame.to_dict(orient="records"):
        run = runs[int(row["trial"])]
        metrics = {
            k: float(v)
            for k, v in row.items()
            if k not in ("trial", "baseline", "rank") and v is not pd.NA
        }
        if row["rank"] is not pd.NA:
            metrics["rank"] = float(row["rank"])
        tags = {
            "hpexp.baseline": str(bool(row["baseline"])),
            "hpexp.best": str(run["trial"] == record["best"]),
            "hpexp.metric": record["metric"],
            "hpexp.seeds": ",".join(map(str, run["seeds"])),
            "mlflow.note.content": (
                f"Trial {run['trial']}'s configuration retrained with {len(run['seeds'])} fresh "
                f"seeds (re-evaluation {reevaluation_key(record['top'], record['seeds'])})"
            ),
        }
        per_seed = {
            name: [math.nan if v is None else float(v) for v in values]
            for name, values in run["per_seed"].items()
        }
        params = {k: str(v) for k, v in run["params"].items()} | {"seeds": str(record["seeds"])}
        out.append(ReevaluationRun(int(run["trial"]), params, tags, metrics, per_seed))
    return out
