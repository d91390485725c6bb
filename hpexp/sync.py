"""MLflow as a projection of the Optuna storage: build it, bring it up to date, compare.

The Optuna storage holds everything a study did (params, states, metrics, learning curves, how
each trial ended) and the trained networks sit beside it (`hpexp-models/<study>/`). MLflow
shows the same for browsing, and `Syncer` writes it from there: after each trial (in the
background, see `hpexp.background`), at the end of a study, or from scratch with
`hpexp sync STUDY` after `mlflow.db` was lost. `hpexp check STUDY` says whether the two agree.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpexp.search.factories import redact_url
from hpexp.search.objective import ModelFiles
from hpexp.search.spec import StudySpec
from hpexp.search.states import STATUSES, retry_of, trial_status
from hpexp.tracking.projection import Projection, TrialRecord
from hpexp.tracking.views import RUN_NOTE, Summary, notes, trials_view

__all__ = ["SyncReport", "Syncer", "study_params", "study_summary", "trial_record"]


def trial_record(spec: StudySpec, trial: FrozenTrial, models: ModelFiles) -> TrialRecord:
    """What trial `trial`'s MLflow run shows, from the storage alone."""
    attrs = trial.user_attrs
    record = attrs.get("record") or {}
    values = dict(record.get("values") or {})
    params = {**values, **trial.params}
    if "layer_dims" in record:
        params["layer_dims"] = record["layer_dims"]
    curves = {k: (list(map(int, v[0])), list(v[1])) for k, v in (attrs.get("curves") or {}).items()}
    metrics = {k: float(v) for k, v in (attrs.get("metrics") or {}).items()}
    tags = {"hpexp.repeats": str(spec.repeats)}
    if record.get("seeds"):
        tags["hpexp.seed"] = str(record["seeds"][0])
    for key in ("fail_reason", "baseline"):
        if key in attrs:
            tags[f"hpexp.{key}"] = str(attrs[key])
    status = trial_status(trial)
    if status == "interrupted" and "fail_reason" not in attrs:
        tags["hpexp.fail_reason"] = "interrupted: its worker stopped sending heartbeats"
    if retry_of(trial) is not None:
        tags["hpexp.retry_of"] = str(retry_of(trial))
    if "worker" in attrs:
        tags["hpexp.worker"] = str(attrs["worker"])
    pruned_at = record.get("pruned_at")
    model = models.folder(trial.number) if record.get("model") else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params={k: str(v) for k, v in params.items()},
        status=status,
        pruned_at=int(pruned_at) if pruned_at is not None else None,
        tags=tags,
        metrics=metrics,
        curves=curves,
        model=model,
    )


def study_params(spec: StudySpec, dataset_name: str) -> dict[str, Any]:
    """The study run's params: what the study is (they never change: see identity)."""
    params: dict[str, Any] = {
        "dataset": dataset_name,
        "objective": ",".join(f"{o.direction}:{o.metric}" for o in spec.objectives),
        "sampler": spec.sampler["name"],
        "pruner": spec.pruner["name"],
        "repeats": spec.repeats,
        "seed": spec.seed,
        "search_space": ",".join(spec.search),
    }
    params.update({f"fixed.{k}": v for k, v in spec.fixed.items()})
    return params


def study_summary(
    spec: StudySpec,
    study: optuna.Study,
    experiment_id: str,
    best: FrozenTrial | None = None,
    best_run_id: str | None = None,
    best_metrics: Mapping[str, float] | None = None,
) -> Summary:
    """What the notes on the experiment and the study's run say: counts by status, and the
    best trial when given."""
    counts = Counter(
        trial_status(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished()
    )
    return Summary(
        study=spec.name,
        description=spec.description,
        experiment_id=experiment_id,
        objectives=tuple((o.metric, o.direction) for o in spec.objectives),
        counts={s: counts[s] for s in STATUSES if counts[s]},
        best=best.number if best is not None else None,
        best_run_id=best_run_id,
        best_metrics=dict(best_metrics or {}),
        best_params=dict(best.params) if best is not None else {},
    )


@dataclass
class SyncReport:
    """What one sync did: runs written, runs removed, models missing beside the storage."""

    written: list[int]
    removed: list[int]
    missing_models: list[int]
    run_ids: dict[int, str] = field(default_factory=dict, repr=False)  # every finished trial's

    def __str__(self) -> str:
        parts = [f"{len(self.written)} run(s) written", f"{len(self.removed)} stray removed"]
        if self.missing_models:
            shown = ", ".join(map(str, self.missing_models[:10]))
            parts.append(f"model files missing for trial(s) {shown}")
        return "; ".join(parts)


class Syncer:
    """Writes one study's MLflow runs from its Optuna storage. Every write happens under a lock
    file (see `lock`), so several writers on one host never duplicate a run."""

    def __init__(
        self, spec: StudySpec, study: optuna.Study, models: ModelFiles, dataset_name: str
    ) -> None:
        self.spec, self.study, self.models = spec, study, models
        self.dataset_name = dataset_name
        self.projection = Projection(spec.tracking_uri, spec.experiment, spec.name)
        self._lock_file: Any = None
        self._lock_depth = 0
        # The lock file counts its uses: the count this syncer left when it last used the lock
        # without an error (None: never, or it failed), and whether the lock is still as it
        # left it, nobody else having taken it since.
        self._count_left: int | None = None
        self._alone = False
        self._lock_failed = False  # an error inside the lock, even one caught inside it

    def open(self) -> str:
        """Reopen or create the study's run; remember its id in the study; save the view of
        its trials and describe the study on the experiment and its run (counts so far,
        links to the view). Returns the run's id."""
        attrs = self.study.user_attrs
        banner, note = notes(study_summary(self.spec, self.study, self.projection.experiment_id))
        tags = {
            "hpexp.storage": redact_url(self.spec.storage),
            "hpexp.fingerprint": str(attrs.get("fingerprint", "")),
            RUN_NOTE: note,
        }
        with self.lock():
            parent = self.projection.open_study(
                attrs.get("mlflow_parent_run_id"), study_params(self.spec, self.dataset_name), tags
            )
            self.projection.show(self.view(), banner)
        for key, value in (
            ("mlflow_parent_run_id", parent),
            ("mlflow_experiment_id", self.projection.experiment_id),
        ):
            if attrs.get(key) != value:
                self.study.set_user_attr(key, value)
        return parent

    def view(self) -> tuple[str, dict[str, object]]:
        """The study's saved view of its trials: best first, objectives and searched
        hyperparameters as columns."""
        objectives = [(o.metric, o.direction) for o in self.spec.objectives]
        return trials_view(self.spec.name, objectives, list(self.spec.search))

    def records(self, numbers: set[int] | None = None) -> list[TrialRecord]:
        """Records of the finished trials (those in `numbers`, if given)."""
        return [
            trial_record(self.spec, t, self.models)
            for t in self.study.get_trials(deepcopy=False)
            if t.state.is_finished() and (numbers is None or t.number in numbers)
        ]

    def finished(self) -> set[int]:
        """The numbers of the study's finished trials."""
        return {t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()}

    def trials(self, numbers: set[int], unwritten: bool = False) -> dict[int, str]:
        """Write the runs of these finished trials; returns {number: run id}. `unwritten`:
        the caller finished these trials and has not written them, so they have no run unless
        another process took the lock since this syncer last used it (a `hpexp sync`, say);
        then MLflow is not searched for their runs."""
        if not numbers:
            return {}
        with self.lock():
            known: dict[int, list] | None = None
            if unwritten and self._alone:
                known = {n: [] for n in numbers}
            return self.projection.write(self.records(numbers), known=known)

    def catch_up(self, deep: bool = False) -> SyncReport:
        """Bring every finished trial's run up to date, remove runs no finished trial owns.
        `deep` also compares runs that look complete, value by value, and rewrites those that
        differ (a metric edited by hand)."""
        with self.lock():
            records = self.records()
            runs = self.projection.trial_runs()
            if deep:
                for record in records:
                    found = runs.get(record.number, [])
                    if found and self.projection._differences(record, found[0]):
                        for run in found:
                            self.projection.client.delete_run(run.info.run_id)
                        runs[record.number] = []
            before = {n: {r.info.run_id for r in runs.get(n, [])} for n in runs}
            ids = self.projection.write(records, known=runs)
            written = [n for n, i in ids.items() if i not in before.get(n, set())]
            running = {
                t.number for t in self.study.get_trials(deepcopy=False) if not t.state.is_finished()
            }
            removed = self.projection.remove_strays({*ids, *running}, runs)
        missing = [
            r.number for r in records if r.model is not None and not self.models.exists(r.number)
        ]
        return SyncReport(written, removed, missing, ids)

    def check(self) -> list[str]:
        """One line per disagreement between MLflow and the storage (and per missing model).
        Waits for a writer that is still at work on this study."""
        with self.lock():
            records = self.records()
            problems = self.projection.check(records)
        for r in records:
            if r.model is not None and not self.models.exists(r.number):
                problems.append(f"trial {r.number}: model files missing from {r.model}")
        return problems

    def close(self, status: str, artifacts: Any = None) -> None:
        """End the study's run with `status`, after logging `artifacts(tmp) -> (files, metrics,
        tags, summary)` when given, and describe the study on the experiment and its run
        (`summary`, else counts only)."""
        with self.lock(), tempfile.TemporaryDirectory(prefix="hpexp-study-") as tmp:
            files, metrics, tags, summary = (
                artifacts(Path(tmp)) if artifacts else ([], {}, {}, None)
            )
            if summary is None:
                summary = study_summary(self.spec, self.study, self.projection.experiment_id)
            banner, note = notes(summary)
            tags = {**tags, RUN_NOTE: note}
            self.projection.close_study(status, metrics=metrics, tags=tags, artifacts=files)
            self.projection.show(self.view(), banner)

    def _lock_path(self) -> Path:
        """One lock per SQLite store (beside it: SQLite takes one writer at a time, and
        queued writers must not time out with "database is locked"); else one per study."""
        uri = self.spec.tracking_uri
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            return db.parent / f".{db.name}.lock"
        return self.models.root / ".mlflow.lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The study's MLflow lock (an flock on the SQLite store's lock file, or on
        `hpexp-models/<study>/.mlflow.lock`); it may be taken again inside itself. The file
        holds how often the lock was taken: each use counts one more when it ends."""
        if self._lock_depth == 0:
            path = self._lock_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                count = _lock_count(fd)
            except BaseException:
                os.close(fd)
                raise
            self._lock_file, self._alone = fd, count == self._count_left
        self._lock_depth += 1
        try:
            yield
        except BaseException:
            self._lock_failed = True
            raise
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                fd, self._lock_file = self._lock_file, None
                try:
                    count = _lock_count(fd) + 1
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, str(count).encode(), 0)
                    # after an error (a write cut short?) the next write looks again
                    self._count_left = None if self._lock_failed else count
                    self._lock_failed = False
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)


def _lock_count(fd: int) -> int:
    """How often the lock file `fd` was taken (0 for an empty file or one of another kind)."""
    text = os.pread(fd, 32, 0).strip()
    return int(text) if text.isdigit() else 0


def finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if math.isfinite(v)}
