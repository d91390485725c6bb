"""Run a study: data -> search (Optuna) -> tracking (MLflow, behind the search) -> report.

The one module that composes the stages; each stage knows only those to its left.

    open      validate the study file, load the data, check the stores, open the Optuna study
              (its identity checked), start the MLflow writer
    optimize  ask, train, tell until the study's budget is reached; each finished trial is
              handed to the writer
    close     the writer adds the study's artifacts (trials table, plots, report, best model)
              and ends its run; the summary is printed
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd

from hpexp.background import BackgroundSync
from hpexp.data import Dataset
from hpexp.errors import DataError, HpexpError, SpecError
from hpexp.nn._memory import keep_freed_memory
from hpexp.result import MODEL_ARTIFACT, StudyResult
from hpexp.search.around import (
    DEFAULT_SEEDS,
    around_spec,
    check_around,
    check_seeds,
    searched_param,
)
from hpexp.search.factories import models_root, redact_url, scrub, unmask_url
from hpexp.search.identity import check_identity
from hpexp.search.objective import ModelFiles, Objective, worker_id
from hpexp.search.places import check_places
from hpexp.search.runner import (
    finished_count,
    open_storage,
    open_study,
    optimize,
    quiet_optuna,
    reopen_study,
)
from hpexp.search.spec import StudySpec, check_workers, load_spec, study_dataset
from hpexp.search.states import STATUSES, trial_status
from hpexp.search.stop import Stop, StopRequest, signals_request
from hpexp.tracking.stores import (
    absolute_uri,
    check_reachable,
    check_tracking_uri,
    ensure_store_readable,
)

if TYPE_CHECKING:  # MLflow is imported by the writer, not by the process that trains
    from hpexp.report.document import ReportFiles
    from hpexp.sync import Syncer, SyncReport
    from hpexp.tracking.views import Summary

__all__ = ["check_study", "load_study", "report_study", "run_study", "sync_study", "work_study"]

#: The study run's artifacts: [(file or folder, artifact path)], metrics, tags, and what the
#: notes on the experiment and the study's run say.
Artifacts = tuple[list[tuple[Path, str | None]], dict[str, float], dict[str, str], "Summary"]
#: The study run's tag naming its best trial, logged after the artifacts (the best model's).
BEST_TRIAL_TAG = "hpexp.best_trial"


def run_study(
    study: str | Path | Mapping[str, Any] | StudySpec,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    overrides: Iterable[str] = (),
    storage: str | None = None,
    tracking_uri: str | None = None,
    workers: int | str | None = None,
    heartbeat: int | None = None,
    progress: bool = True,
    verbose: bool = True,
    wait_for_mlflow: bool = False,
    around_best: str | None = None,
    seeds: int | None = None,
    around_name: str | None = None,
) -> StudyResult:
    """Run (or resume) a study until it has `n_trials` finished trials or `timeout` seconds
    pass; both default to the study file's budget. Returns the StudyResult once every trial's
    MLflow run is written; the study run's artifacts (trials table, plots, best model) follow
    from the background writer within seconds, unless `wait_for_mlflow` waits for them too
    (`hpexp check` always waits for them).

    `study` is a YAML path, a study name under studies/, a dict or a StudySpec; `overrides`
    are "key=value" edits of the file (e.g. "fixed.optimizer=adam"). `workers` processes train
    at once (default: the file's `workers`, else 1; "auto": one per core). `heartbeat`: seconds
    between workers' heartbeats on a database storage (see `make_storage`). Bad input, a
    changed study identity or an unreachable store raise SpecError before anything is written.

    `around_best="learning_rate"` runs (or resumes) instead the study `<name>-around-<param>`
    (or `around_name`) in the same storage: the study's best configuration, fixed, with that
    one hyperparameter over a grid of values around its best one (`hpexp.search.around`),
    `seeds` seeds per value (default 5; from 2 to 100), trained batched; one trial per value,
    none pruned. It returns that study's result and, with `verbose`, prints
    `result.compare(param)` with the best value marked. The study itself must have a
    completed trial; it is not run further.
    """
    spec = _with_places(load_spec(study, overrides), storage, tracking_uri)
    if workers is not None:
        spec = dataclasses.replace(spec, workers=_workers(workers))
    if around_best is not None:
        if n_trials is not None:
            raise SpecError(
                "--n-trials: a study around the best trains one trial per value of its grid; "
                "leave --n-trials out (--timeout stops it early, a second run resumes it)"
            )
        seeds = DEFAULT_SEEDS if seeds is None else seeds
        spec = _around(spec, around_best, seeds, around_name)
        if verbose:
            print(f"{spec.name}: {spec.description}")
    elif seeds is not None or around_name is not None:
        raise SpecError("--seeds and --around-name go with --around-best PARAM")
    result = _run(spec, (n_trials, timeout), heartbeat, progress, verbose, wait_for_mlflow)
    if around_best is not None and verbose:
        from hpexp.report.summary import around_table

        print("\n" + around_table(result))
    return result


def _around(spec: StudySpec, param: str, seeds: int, name: str | None) -> StudySpec:
    """The study around the best of study `spec` (which must exist, as `spec` describes it,
    with a completed trial), checked against the one of that name if it exists already."""
    searched_param(spec, param)
    check_seeds(seeds)
    run_first = "run it first" + (f": hpexp run {spec.source}" if spec.source != "<dict>" else "")
    try:
        storage = open_storage(spec.storage)
    except SpecError:  # no storage file yet
        names: list[str] = []
    else:
        names = optuna.get_all_study_names(storage)
    if spec.name not in names:
        raise SpecError(
            f"--around-best: no study '{spec.name}' in {redact_url(spec.storage)} yet; {run_first}"
        )
    base = optuna.load_study(study_name=spec.name, storage=storage)
    check_identity(spec, base.user_attrs.get("identity"))
    result = StudyResult(spec, base, ModelFiles(models_root(spec.storage) / spec.name))
    if not result._has_best():
        raise SpecError(
            f"--around-best: study '{spec.name}' has no completed trial yet; {run_first}"
        )
    derived = around_spec(
        spec,
        param,
        result.best_trial,
        seeds=seeds,
        name=name,
        base_fingerprint=str(base.user_attrs.get("fingerprint", "")),
    )
    if derived.name in names:
        existing = optuna.load_study(study_name=derived.name, storage=storage)
        check_around(derived, existing.user_attrs.get("identity"))
    return derived


def work_study(
    study: str | Path | Mapping[str, Any] | StudySpec,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    overrides: Iterable[str] = (),
    storage: str | None = None,
    tracking_uri: str | None = None,
    heartbeat: int | None = None,
    verbose: bool = True,
) -> str:
    """Join a study as one more worker (`hpexp worker`, from any host that reaches its
    storage): create it if nobody has yet, then train trials until the study's budget is
    reached. Prints a line per trial; writes the MLflow runs of its own trials, and ends the
    study's run if it finds the study done. Returns why it stopped."""
    spec = _with_places(load_spec(study, overrides), storage, tracking_uri)
    spec = dataclasses.replace(spec, workers=1)
    return _run(spec, (n_trials, timeout), heartbeat, False, verbose, False, joining=True)


def _workers(value: int | str) -> int:
    try:
        return check_workers(value)
    except SpecError as e:
        raise SpecError(f"--workers: {e}") from None


def _run(
    spec: StudySpec,
    limits: tuple[int | None, float | None],
    heartbeat: int | None,
    progress: bool,
    verbose: bool,
    wait_for_mlflow: bool,
    joining: bool = False,
) -> Any:
    writer = BackgroundSync(spec.tracking_uri)  # imports MLflow while the study is opened
    try:
        return _run_with(
            writer, spec, limits, heartbeat, progress, verbose, wait_for_mlflow, joining
        )
    finally:
        writer.discard()  # one never started (bad input, a refused study): stopped unused


def _run_with(
    writer: BackgroundSync,
    spec: StudySpec,
    limits: tuple[int | None, float | None],
    heartbeat: int | None,
    progress: bool,
    verbose: bool,
    wait_for_mlflow: bool,
    joining: bool,
) -> Any:
    budget, timeout = _budget(spec, *limits)
    dataset = _dataset(spec)
    check_reachable(spec.tracking_uri, spec.source)
    check_places(spec)  # the Optuna storage file and the models folder can be created
    ensure_store_readable(spec.tracking_uri)
    say = print if verbose else (lambda *a, **k: None)
    stop = StopRequest()
    with quiet_optuna(), signals_request(stop):
        study_obj = open_study(
            spec, worker=1 if joining else 0, heartbeat=heartbeat, dataset=dataset
        )
        if study_obj.user_attrs.get("tracking_uri") != redact_url(spec.tracking_uri):
            study_obj.set_user_attr("tracking_uri", redact_url(spec.tracking_uri))
        models = ModelFiles(models_root(spec.storage) / spec.name)
        config = _writer_config(spec, dataset, models)
        if joining:
            config |= {"worker": worker_id(), "n_trials": budget}
        writer.start(config)
        if not joining:
            say(_header(spec, dataset, study_obj, budget, timeout))
        run = _Trials(spec, study_obj, writer, (budget, timeout), heartbeat)
        per_trial = _trial_line(spec, say) if joining else None
        status, stopped = run.optimize(dataset, models, stop, progress, (say, per_trial))
        signum = stop.signum  # the stop's signal: _close_writer forgets a stop it handled
        reply = _close_writer(writer, (status, wait_for_mlflow), stop, spec.name, say)
    if not reply.get("ok"):
        say(f"MLflow is not up to date; write it with: hpexp sync {spec.name}", file=sys.stderr)
    if joining:
        say(f"worker {worker_id()} stopped: {_why(stopped, study_obj, budget)}")
    if status == "KILLED" or reply.get("abandoned"):
        say(f"interrupted: run the same command again to resume study '{spec.name}'")
        raise Stop(signum or stop.signum or signal.SIGINT)
    if joining:
        return stopped
    return _finished(spec, study_obj, models, reply, stopped, verbose)


def _finished(
    spec: StudySpec,
    study: optuna.Study,
    models: ModelFiles,
    reply: dict[str, Any],
    stopped: str,
    verbose: bool,
) -> StudyResult:
    """The result of a study this process ran to its end (`stopped`: why its trials ended;
    `reply`: the MLflow writer's last word), and, `verbose`, its summary and what ended it."""
    say = print if verbose else (lambda *a, **k: None)
    ids = reply.get("run_ids") if reply.get("ok") else None
    run_ids = {int(k): v for k, v in ids.items()} if ids is not None else None
    result = StudyResult(spec, study, models, run_ids)
    if verbose and not reply.get("abandoned"):
        from hpexp.report.summary import summary

        print(summary(result))
        if result._has_best() and reply.get("ok"):
            from hpexp.report.document import HTML_NAME

            print(
                f"report: {models.root / HTML_NAME}  (written with the study run's artifacts; "
                f"again, coloured by PARAM: hpexp report {spec.name} --color-by PARAM)"
            )
    if stopped == "exhausted":
        say(
            f"stopped early: the sampler kept proposing configurations study '{spec.name}' "
            "already ran; its search space looks exhausted"
        )
    if stopped == "failed":
        say(f"every worker of study '{spec.name}' stopped with an error (see above)")
    return result


def _why(stopped: str, study: optuna.Study, budget: int | None) -> str:
    done = finished_count(study)
    return {
        "budget": f"the study has {done} of {budget} finished trials",
        "timeout": "time limit reached",
        "exhausted": "the search space looks exhausted",
    }.get(stopped, stopped)


def _trial_line(spec: StudySpec, say: Any) -> Any:
    """For a worker's log: one line per trial it finished."""

    def line(trial: optuna.trial.FrozenTrial) -> None:
        value = ""
        if trial.values:
            value = " " + ", ".join(
                f"{o.metric}={v:.4g}" for o, v in zip(spec.objectives, trial.values, strict=False)
            )
        say(f"worker {worker_id()}: trial {trial.number} {trial_status(trial)}{value}")

    return line


def _close_writer(
    writer: BackgroundSync, end: tuple[str, bool], stop: StopRequest, name: str, say: Any
) -> dict[str, Any]:
    """Wait for the writer to write every trial's run (`end` = (status, also the study's
    artifacts?)); a signal while waiting stops the wait (the writer goes on by itself)."""
    status, artifacts = end
    if status == "KILLED":  # that stop was handled: a new one stops the wait
        stop.signum, stop.count = None, 0
    try:
        with stop.interruptible():
            return writer.close(status, artifacts=artifacts)
    except KeyboardInterrupt:
        say(f"MLflow is being finished in the background; if it is not, run: hpexp sync {name}")
        return {"ok": False, "abandoned": True}


def load_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> StudyResult:
    """Reopen a study from its storage (default: the embedded journal) as a StudyResult."""
    spec, study = reopen_study(name, storage)
    spec = _with_places(spec, None, tracking_uri or study.user_attrs.get("tracking_uri"))
    return StudyResult(spec, study, ModelFiles(models_root(spec.storage) / spec.name))


def sync_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> SyncReport:
    """Rebuild whatever MLflow is missing or has wrong for study `name` from its Optuna storage
    and model files (runs, params, curves, metrics, states, models, the study's artifacts,
    stored re-evaluations).
    Idempotent: a second call writes nothing."""
    result = load_study(name, storage=storage, tracking_uri=tracking_uri)
    check_reachable(result.tracking_uri, "--tracking-uri")
    syncer, artifacts = _syncer(result.spec, result.study, result.models)
    syncer.open()
    report = syncer.catch_up(deep=True)
    from hpexp.reevaluation import write_reevaluations

    with syncer.lock():
        write_reevaluations(result, syncer)  # stored re-evaluations: their runs and tables
    running = any(not t.state.is_finished() for t in result.study.get_trials(deepcopy=False))
    if report.written or report.removed or _parent_incomplete(syncer):
        syncer.close("RUNNING" if running else "FINISHED", artifacts)
    return report


def report_study(
    name: str,
    *,
    out: str | Path | None = None,
    color_by: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
) -> ReportFiles:
    """Write study `name`'s report.html and report.md into `out` (default: beside its trained
    networks, `hpexp-models/<study>/`) and log both to the study's MLflow run. `color_by`
    colours the learning curves (default: the most important parameter). An unknown study or
    parameter, or a study without a completed trial, raises HpexpError; an MLflow that lacks
    the study's run or does not answer leaves the files unlogged (`not_logged` says why)."""
    from hpexp.report.document import write_report

    result = load_study(name, storage=storage, tracking_uri=tracking_uri)
    files = write_report(result, out, color_by=color_by)
    files.mlflow_run, files.not_logged = _log_report(result, files.paths)
    return files


def _log_report(result: StudyResult, paths: list[Path]) -> tuple[str | None, str | None]:
    """(the study's MLflow run the report was logged to, None) or (None, why not)."""
    run_id = result.parent_run_id
    fix = f"hpexp sync {result.name} writes the study's run, report included"
    if not run_id:
        return None, f"study '{result.name}' has no MLflow run yet; {fix}"
    try:
        check_reachable(result.tracking_uri, "--tracking-uri")
        from hpexp.tracking.projection import log_files

        log_files(result.tracking_uri, run_id, paths)
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = redact_url(result.tracking_uri)
        return None, f"MLflow at {where}: {scrub(text, result.tracking_uri)}; {fix}"
    return run_id, None


def check_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> list[str]:
    """One line per way MLflow disagrees with the Optuna storage of study `name` ([] when they
    agree), and per trial model missing beside the storage."""
    result = load_study(name, storage=storage, tracking_uri=tracking_uri)
    check_reachable(result.tracking_uri, "--tracking-uri")
    syncer, _ = _syncer(result.spec, result.study, result.models)
    problems = syncer.check()
    parent = result.parent_run_id
    if not parent or syncer.projection._get(parent) is None:
        problems.insert(0, f"study '{name}': no MLflow study run")
    else:
        from hpexp.reevaluation import check_reevaluations

        with syncer.lock():
            problems += check_reevaluations(result, syncer)
    return problems


# -- open ---------------------------------------------------------------------------------------


def _with_places(spec: StudySpec, storage: str | None, tracking_uri: str | None) -> StudySpec:
    """The spec with storage/tracking overrides, and the MLflow URI made absolute (MLflow keeps
    one store per URI string per process, so a relative path must not follow the cwd)."""
    uri = unmask_url(tracking_uri or spec.tracking_uri)  # a stored URL has its password masked
    check_tracking_uri(uri, spec.source)
    changes: dict[str, Any] = {"tracking_uri": absolute_uri(uri)}
    if storage:
        changes["storage"] = storage
    return dataclasses.replace(spec, **changes)


def _budget(
    spec: StudySpec, n_trials: int | None, timeout: float | None
) -> tuple[int | None, float | None]:
    budget = n_trials if n_trials is not None else spec.n_trials
    if budget is not None and (type(budget) is not int or budget < 1):
        raise SpecError(f"n_trials must be an integer >= 1, got {budget!r}")
    timeout = timeout if timeout is not None else spec.timeout
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise SpecError(f"timeout must be > 0 seconds (a finite number), got {timeout!r}")
    return budget, timeout


def _dataset(spec: StudySpec) -> Dataset:
    try:
        return study_dataset(spec.dataset)
    except DataError as e:
        raise SpecError(f"{spec.source}: dataset: {e}") from None


def input_example(ds: Dataset, rows: int = 5) -> pd.DataFrame:
    """A few test (or validation) samples as raw, row-per-sample feature values."""
    X = ds.X_test if ds.X_test.shape[1] else ds.X_val
    raw = X[:, :rows] * ds.x_std + ds.x_mean  # undo the standardization: (n_x, rows)
    return pd.DataFrame(raw.T, columns=list(ds.feature_names))


def _writer_config(spec: StudySpec, ds: Dataset, models: ModelFiles) -> dict[str, Any]:
    return {
        "study": spec.name,
        "storage": spec.storage,
        "tracking_uri": spec.tracking_uri,
        "tracking_uri_shown": redact_url(spec.tracking_uri),
        "experiment": spec.experiment,
        "models": str(models.root),
        "dataset_name": ds.name,
        "input_example": input_example(ds).to_dict(orient="split"),
    }


def _header(
    spec: StudySpec, ds: Dataset, study: optuna.Study, budget: int | None, timeout: float | None
) -> str:
    done = finished_count(study)
    todo = None if budget is None else max(budget - done, 0)
    statuses = [trial_status(t) for t in study.get_trials(deepcopy=False)]
    requeued = statuses.count("waiting")
    return (
        f"study '{spec.name}': {ds.summary()}\n"
        f"  {spec.sampler['name']} sampler, {spec.pruner['name']} pruner, objective "
        + ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives)
        + f"; {done} trials done"
        + (f", {todo} to go" if todo is not None else "")
        + (f", {timeout:g} s limit" if timeout else "")
        + (f"; {requeued} queued (the next proposal, baselines, re-runs)" if requeued else "")
        + f"\n  Optuna: {redact_url(spec.storage)}   MLflow: {redact_url(spec.tracking_uri)}"
    )


# -- optimize -----------------------------------------------------------------------------------


class _Trials:
    """The optimize stage: trials trained here, or by a pool of worker processes."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        writer: BackgroundSync,
        limits: tuple[int | None, float | None],
        heartbeat: int | None,
    ) -> None:
        self.spec, self.study, self.writer = spec, study, writer
        self.budget, self.timeout = limits
        self.heartbeat = heartbeat

    def optimize(
        self,
        ds: Dataset,
        models: ModelFiles,
        stop: StopRequest,
        progress: bool,
        say: tuple[Any, Any],
    ) -> tuple[str, str]:
        """Run trials until the limits; returns (MLflow status of the study run, why the
        search stopped). `say` is (print or nothing, a per-trial line printer or None for a
        progress bar)."""
        say_line, per_trial = say
        done = finished_count(self.study)
        todo = None if self.budget is None else max(self.budget - done, 0)
        if todo == 0 and per_trial is None:
            more = "raise n_trials (--n-trials) to run more"
            if self.spec.around_best:
                more = "every value of its grid has run"
            say_line(f"study '{self.spec.name}' already has {done} of {self.budget} trials; {more}")
        bar = _Progress(todo, self.spec) if progress and todo != 0 else None

        def on_trial(trial: optuna.trial.FrozenTrial) -> None:
            self.writer.trial_finished(trial.number)
            if bar is not None:
                bar.update(self.study, trial_status(trial))
            if per_trial is not None:
                per_trial(trial)

        try:
            if self.spec.workers > 1:
                stopped = self._pool(on_trial, stop, ds, models)
            else:
                with keep_freed_memory(), _blas_threads_beside_the_writer():
                    stopped = optimize(
                        self.study,
                        self.spec,
                        Objective(self.spec, ds, models, stop),
                        n_trials=self.budget,
                        timeout=self.timeout,
                        on_trial=on_trial,
                    )
            return ("KILLED" if stopped == "interrupted" else "FINISHED"), stopped
        except KeyboardInterrupt:
            return "KILLED", "interrupted"
        finally:
            if bar is not None:
                bar.close()

    def _pool(self, on_trial: Any, stop: StopRequest, ds: Dataset, models: ModelFiles) -> str:
        from hpexp.search.factories import storage_kind
        from hpexp.search.runner import recover_dead
        from hpexp.workers import Work, WorkerPool

        config = {
            "study": self.spec.name,
            "storage": self.spec.storage,
            "n_trials": self.budget,
            "timeout": self.timeout,
            "heartbeat": self.heartbeat,
        }
        work = None  # forked workers share what this process loaded; not through the proxy
        if storage_kind(self.spec.storage) != "grpc":
            work = Work(self.spec, ds, models, config)
        pool = WorkerPool(config, self.spec.workers, work, self.writer.fds())

        storage, study_id = self.study._storage, self.study._study_id

        def finished(number: int, status: str) -> None:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
            on_trial(storage.get_trial(trial_id))

        def lost() -> None:
            number, code = pool.lost[-1]
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            print(
                f"hpexp: warning: worker {number} stopped ({how}); its trial is re-run",
                file=sys.stderr,
            )
            recover_dead(self.study, self.spec)

        stopped = pool.run(finished, stop, lost)
        recover_dead(self.study, self.spec)
        return stopped


def _blas_threads_beside_the_writer() -> Any:
    """Leave a core to the MLflow writer: a BLAS thread that has to share its core makes every
    matrix product wait for it (small networks train as fast on one thread)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, (os.cpu_count() or 1) - 1), user_api="blas")


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

    def update(self, study: optuna.Study, status: str) -> None:
        counts = dict.fromkeys(STATUSES, 0)
        for t in study.get_trials(deepcopy=False):
            counts[trial_status(t)] += 1
        postfix: dict[str, object] = {"pruned": counts["pruned"], "failed": counts["failed"]}
        if counts["complete"] and not self.spec.multi_objective:
            postfix[f"best {self.spec.metric}"] = f"{study.best_value:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        if status in ("complete", "pruned", "failed"):
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# -- close: the MLflow side ---------------------------------------------------------------------


def syncer_for(config: dict[str, Any]) -> tuple[Syncer, Any]:
    """The background writer's Syncer, from `_writer_config`."""
    spec, study = reopen_study(config["study"], config["storage"])
    spec = dataclasses.replace(
        spec, tracking_uri=config["tracking_uri"], experiment=config["experiment"]
    )
    example = config.get("input_example")
    frame = pd.DataFrame(**example) if example else None
    return _syncer(spec, study, ModelFiles(Path(config["models"])), frame, config["dataset_name"])


def _syncer(
    spec: StudySpec,
    study: optuna.Study,
    models: ModelFiles,
    example: pd.DataFrame | None = None,
    dataset_name: str | None = None,
) -> tuple[Syncer, Any]:
    if example is None or dataset_name is None:
        ds = _dataset(spec)
        example, dataset_name = input_example(ds), ds.name
    from hpexp.sync import Syncer

    syncer = Syncer(spec, study, models, dataset_name)
    frame = example

    def artifacts(out: Path) -> Artifacts:
        runs = syncer.projection.trial_runs()
        ids = {n: found[0].info.run_id for n, found in runs.items()}
        held = syncer.projection.study_tag_with(BEST_TRIAL_TAG, f"{MODEL_ARTIFACT}/MLmodel")
        result = StudyResult(spec, study, models, ids)
        return study_artifacts(result, frame, out, ids, model_of=held)

    return syncer, artifacts


def _parent_incomplete(syncer: Syncer) -> bool:
    """Whether the study's run lacks its end: a status, the best trial, the report."""
    from hpexp.report.document import HTML_NAME

    run = syncer.projection._get(syncer.projection.parent_run_id)
    if run is None or run.info.status == "RUNNING" or BEST_TRIAL_TAG not in run.data.tags:
        return True
    return not syncer.projection.has_artifact(run.info.run_id, HTML_NAME)


def study_artifacts(
    result: StudyResult,
    example: pd.DataFrame | None,
    out: Path,
    run_ids: dict[int, str],
    model_of: str | None = None,
) -> Artifacts:
    """Write the study run's artifacts under `out` (trials table, plots, the report beside the
    study's networks, best model as .npz and as a pyfunc model); return [(path, artifact
    folder)], metrics (the study's summary, as `study/...`: a section of their own in MLflow's
    charts), tags and the notes' summary. `model_of`: the trial whose pyfunc model the study's
    run already holds (its best trial tag), which is not written again (about 2 s)."""
    from hpexp.nn import save_model
    from hpexp.report.plots import save_study_plots
    from hpexp.sync import study_summary

    artifacts: list[tuple[Path, str | None]] = []
    trials_csv = out / "trials.csv"
    result.trials.to_csv(trials_csv, index=False)
    artifacts.append((trials_csv, None))
    jobs = min(4, os.cpu_count() or 1)  # the study process waits meanwhile: use every core
    if save_study_plots(result.study, out / "plots", target_name=result.spec.metric, jobs=jobs):
        artifacts.append((out / "plots", "plots"))
    artifacts += [(path, None) for path in _report(result, out)]
    statuses = [trial_status(t) for t in result.study.get_trials(deepcopy=False)]
    metrics = {f"study/trials_{s}": float(statuses.count(s)) for s in STATUSES[:5]}
    tags: dict[str, str] = {}
    best, best_metrics = None, {}
    if result._has_best():
        best = result.best_trial
        model = result.best_model()
        save_model(model, out / "best_model" / "model")
        artifacts.append((out / "best_model", "best_model"))
        if example is not None and str(best.number) != model_of:
            from hpexp.tracking.pyfunc import save_pyfunc_model

            save_pyfunc_model(model, out / MODEL_ARTIFACT, example)
            artifacts.append((out / MODEL_ARTIFACT, MODEL_ARTIFACT))
        best_metrics = {
            k: float(v)
            for k, v in result.best_metrics.items()
            if np.isfinite(v) and (k.startswith(("val_", "test_")) or k == "n_params")
        }
        metrics |= {f"study/best_{k}": v for k, v in best_metrics.items()}
        tags = {BEST_TRIAL_TAG: str(best.number)}
        if best.number in run_ids:
            tags["hpexp.best_run_id"] = run_ids[best.number]
    run_id = run_ids.get(best.number) if best is not None else None
    summary = study_summary(
        result.spec, result.study, result.experiment_id or "", best, run_id, best_metrics
    )
    return artifacts, metrics, tags, summary


def _report(result: StudyResult, out: Path) -> list[Path]:
    """The study report (report.html, report.md) for the study's run, written beside its
    networks (into `out` when that folder cannot be written). [] before a trial completed, or
    with a warning when the report fails: the study's run closes all the same."""
    if not result._has_best():
        return []
    from hpexp.report.document import build_report

    try:
        report = build_report(result)
        try:
            return list(report.write(result.models.root))
        except HpexpError:
            return list(report.write(out))
    except Exception as e:
        print(f"hpexp: warning: no study report ({type(e).__name__}: {e})", file=sys.stderr)
        return []
