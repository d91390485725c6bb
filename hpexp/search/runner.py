"""Run, resume and reopen studies: the spec -> Optuna study -> MLflow-tracked trials.

Running a study that already exists in its storage resumes it: finished trials are kept,
trials left behind by an interrupted or killed process are closed in both Optuna and MLflow
and re-queued with the same parameters, and the study runs until it has `n_trials` finished
trials (completed, pruned, or failed for a reason of their own such as divergence).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from hpexp.data import Dataset
from hpexp.errors import DataError, SpecError
from hpexp.search.factories import make_pruner, make_sampler, make_storage, redact_url
from hpexp.search.objective import Objective, worker_id
from hpexp.search.result import StudyResult
from hpexp.search.space import flatten, grid_space
from hpexp.search.spec import DEFAULT_STORAGE, StudySpec, load_spec, study_dataset
from hpexp.tracking.tracker import (
    STATUS_FOR_STATE,
    StudyTracker,
    absolute_uri,
    check_tracking_uri,
)

__all__ = ["finished_count", "list_studies", "load_study", "run_study"]

INTERRUPTED = "interrupted"


def run_study(
    study: str | Path | Mapping[str, Any] | StudySpec,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    overrides: Iterable[str] = (),
    storage: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> StudyResult:
    """Run (or resume) a study until it has `n_trials` finished trials or `timeout` seconds
    pass; both default to the study file's budget. Returns the StudyResult.

    `study` is a YAML path, a study name under studies/, a dict or a StudySpec; `overrides`
    are "key=value" edits of the file (e.g. "fixed.optimizer=adam"). Bad input raises
    SpecError/DataError before anything is created.
    """
    spec = _with_places(load_spec(study, overrides), storage, tracking_uri)
    budget = n_trials if n_trials is not None else spec.n_trials
    if budget is not None and (type(budget) is not int or budget < 1):
        raise SpecError(f"n_trials must be an integer >= 1, got {budget!r}")
    timeout = timeout if timeout is not None else spec.timeout
    if timeout is not None and timeout <= 0:
        raise SpecError(f"timeout must be > 0 seconds, got {timeout!r}")
    dataset = _dataset(spec)
    say = print if verbose else (lambda *a, **k: None)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage_obj = make_storage(spec.storage)
    tracker = StudyTracker(spec.tracking_uri, spec.experiment, spec.name)
    study_obj = _create_or_load(spec, storage_obj)
    parent = tracker.open_study(
        study_obj.user_attrs.get("mlflow_parent_run_id"),
        params=_study_params(spec, dataset),
        tags={"hpexp.storage": redact_url(spec.storage), "mlflow.note.content": spec.description},
    )
    if "mlflow_parent_run_id" not in study_obj.user_attrs:
        study_obj.set_user_attr("mlflow_parent_run_id", parent)
    recovered = _recover(study_obj, storage_obj, tracker)
    _enqueue_baselines(spec, study_obj)

    done = finished_count(study_obj)
    todo = None if budget is None else max(budget - done, 0)
    say(
        f"study '{spec.name}': {dataset.summary()}\n"
        f"  {spec.sampler['name']} sampler, {spec.pruner['name']} pruner, objective "
        + ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives)
        + f"; {done} trials done"
        + (f", {todo} to go" if todo is not None else "")
        + (f", {timeout:g} s limit" if timeout else "")
        + (f"; {recovered} interrupted trial(s) re-queued" if recovered else "")
        + f"\n  Optuna: {redact_url(spec.storage)}   MLflow: {redact_url(spec.tracking_uri)}"
    )
    status = "FINISHED"
    interrupted = False
    if todo == 0:
        say(
            f"study '{spec.name}' already has {done} of {budget} trials; "
            "raise n_trials (--n-trials) to run more"
        )
    else:
        objective = Objective(spec, dataset, tracker)
        bar = _Progress(todo, spec) if progress else None
        try:
            with _stop_signals_interrupt():
                study_obj.optimize(
                    objective,
                    n_trials=todo,
                    timeout=timeout,
                    catch=(Exception,),
                    callbacks=[bar.update] if bar else [],
                    gc_after_trial=False,
                )
        except KeyboardInterrupt:
            status, interrupted = "KILLED", True
        finally:
            if bar:
                bar.close()
    result = StudyResult(spec, study_obj, spec.tracking_uri)
    _close(result, tracker, dataset, status)
    if verbose:
        from hpexp.report.summary import summary

        print(summary(result))
    if interrupted:
        say(f"interrupted: run the same command again to resume study '{spec.name}'")
        raise KeyboardInterrupt
    return result


def load_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> StudyResult:
    """Reopen a study from its storage (default: the embedded journal) as a StudyResult."""
    storage = storage or DEFAULT_STORAGE
    if "://" not in storage and not Path(storage.removeprefix("journal:")).is_file():
        raise SpecError(f"no study storage at '{storage}'; run a study first (hpexp run ...)")
    storage_obj = make_storage(storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        names = optuna.get_all_study_names(storage_obj)
        raise SpecError(
            f"no study named '{name}' in {redact_url(storage)}; "
            f"studies: {', '.join(names) or 'none'}"
        ) from None
    raw = study.user_attrs.get("spec")
    if not isinstance(raw, dict):
        raise SpecError(f"study '{name}' in {redact_url(storage)} was not created by hpexp")
    spec = load_spec(raw)
    spec = _with_places(spec, storage, tracking_uri or study.user_attrs.get("tracking_uri"))
    return StudyResult(spec, study, spec.tracking_uri)


def list_studies(storage: str | None = None) -> pd.DataFrame:
    """One row per study in the storage: name, trials by state, best value, direction."""
    storage = storage or DEFAULT_STORAGE
    columns = ["study", "trials", "complete", "pruned", "failed", "best_value", "direction"]
    if "://" not in storage and not Path(storage.removeprefix("journal:")).is_file():
        return pd.DataFrame(columns=columns)
    rows = []
    storage_obj = make_storage(storage)
    for s in optuna.get_all_study_summaries(storage_obj, include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=storage_obj)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        best = s.best_trial.values[0] if s.best_trial is not None else None
        rows.append(
            {
                "study": s.study_name,
                "trials": len(states),
                "complete": states.count(TrialState.COMPLETE),
                "pruned": states.count(TrialState.PRUNED),
                "failed": states.count(TrialState.FAIL),
                "best_value": best,
                "direction": ",".join(d.name.lower() for d in s.directions),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: complete, pruned, or failed for a reason of their
    own (diverged, error) rather than because the process was stopped."""
    count = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") != INTERRUPTED
        ):
            count += 1
    return count


# -- steps ----------------------------------------------------------------------------------


def _with_places(spec: StudySpec, storage: str | None, tracking_uri: str | None) -> StudySpec:
    """The spec with storage/tracking overrides, and the MLflow URI made absolute (MLflow keeps
    one store per URI string per process, so a relative path must not follow the cwd)."""
    uri = tracking_uri or spec.tracking_uri
    check_tracking_uri(uri, spec.source)
    changes: dict[str, Any] = {"tracking_uri": absolute_uri(uri)}
    if storage:
        changes["storage"] = storage
    return dataclasses.replace(spec, **changes)


def _dataset(spec: StudySpec) -> Dataset:
    try:
        return study_dataset(spec.dataset)
    except DataError as e:
        raise SpecError(f"{spec.source}: dataset: {e}") from None


def _create_or_load(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    grid = grid_space(spec) if spec.sampler["name"] == "grid" else None
    existing = spec.name in optuna.get_all_study_names(storage)
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec.sampler, spec.seed, grid),
        pruner=make_pruner(spec.pruner),
        directions=spec.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    stored = [d.name.lower() for d in study.directions]
    if existing and stored != spec.directions:
        raise SpecError(
            f"{spec.source}: objective: study '{spec.name}' already exists with direction(s) "
            f"{', '.join(stored)}; rename the study (name:) or keep its objective"
        )
    if not existing:
        raw = dict(spec.raw)
        raw["dataset"] = dict(spec.dataset)  # file paths resolved
        study.set_user_attr("spec", raw)
        study.set_user_attr("tracking_uri", spec.tracking_uri)
    return study


def _study_params(spec: StudySpec, ds: Dataset) -> dict[str, Any]:
    params: dict[str, Any] = {
        "dataset": ds.name,
        "objective": ",".join(f"{o.direction}:{o.metric}" for o in spec.objectives),
        "sampler": spec.sampler["name"],
        "pruner": spec.pruner["name"],
        "repeats": spec.repeats,
        "seed": spec.seed,
        "search_space": ",".join(spec.search),
    }
    params.update({f"fixed.{k}": v for k, v in spec.fixed.items()})
    return params


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(
    study: optuna.Study, storage: optuna.storages.BaseStorage, tracker: StudyTracker
) -> int:
    """Close trials a dead process on this machine left RUNNING, end stray MLflow runs, and
    re-queue interrupted trials with their parameters. Returns how many were re-queued."""
    me_host = worker_id().split(":")[0]
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = str(t.user_attrs.get("worker", "")).partition(":")
        if host == me_host and pid.isdigit() and not _pid_alive(int(pid)):
            storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    # Every MLflow run must end in the state of its Optuna trial; a run that no trial owns (the
    # process died between creating it and recording its id) is removed.
    for run in tracker.child_runs():
        owner = trials.get(int(run.data.tags.get("hpexp.trial", -1)))
        if owner is None or owner.user_attrs.get("mlflow_run_id") != run.info.run_id:
            if owner is None or owner.state.is_finished():
                tracker.client.delete_run(run.info.run_id)
            continue
        state = owner.state.name
        if owner.state.is_finished() and run.info.status != STATUS_FOR_STATE.get(state):
            reason = owner.user_attrs.get("fail_reason", INTERRUPTED)
            tags = {"hpexp.fail_reason": reason} if state == "FAIL" else {}
            tracker.finish_trial(
                run.info.run_id, state if state in STATUS_FOR_STATE else "FAIL", tags=tags
            )
    retried = set(study.user_attrs.get("retried_trials", []))
    requeue = [
        t
        for t in trials.values()
        if t.state == TrialState.FAIL
        and t.user_attrs.get("fail_reason") == INTERRUPTED
        and t.number not in retried
    ]
    for t in requeue:
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    if requeue:
        study.set_user_attr("retried_trials", sorted(retried | {t.number for t in requeue}))
    return len(requeue)


def _enqueue_baselines(spec: StudySpec, study: optuna.Study) -> None:
    if not spec.enqueue or study.user_attrs.get("baselines_enqueued"):
        return
    for values in spec.enqueue:
        study.enqueue_trial(flatten(values), user_attrs={"baseline": True})
    study.set_user_attr("baselines_enqueued", True)


class _Progress:
    """A tqdm bar over trials, with counts of pruned and failed ones and the best value."""

    def __init__(self, total: int | None, spec: StudySpec) -> None:
        from tqdm.auto import tqdm

        self.spec = spec
        self.bar = tqdm(
            total=total,
            desc=spec.name,
            unit="trial",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def update(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        postfix: dict[str, object] = {
            "pruned": counts.get("PRUNED", 0),
            "failed": counts.get("FAIL", 0),
        }
        if counts.get("COMPLETE") and not self.spec.multi_objective:
            postfix[f"best {self.spec.metric}"] = f"{study.best_value:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While trials run, SIGINT and SIGTERM raise KeyboardInterrupt (even where the parent
    process started us with SIGINT ignored), so Ctrl-C and `kill` leave a resumable study."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _close(result: StudyResult, tracker: StudyTracker, ds: Dataset, status: str) -> None:
    """Study-level artifacts on the parent run (trials table, plots, best model) and its end."""
    from hpexp.tracking.artifacts import study_artifacts

    with tempfile.TemporaryDirectory(prefix="hpexp-study-") as tmp:
        artifacts, metrics, tags = study_artifacts(result, ds, Path(tmp))
        tracker.close_study(status, metrics=metrics, tags=tags, artifacts=artifacts)
