"""A study's MLflow runs, written from plain records: the projection of the Optuna storage.

One experiment per study; a parent run for the study; one nested child run per finished trial,
tagged with the study name and trial number, so every run can be found again by its tags
(`hpexp.study`, `hpexp.trial`) whatever happened to the process that wrote it. A trial's run is
written in one go when the trial has finished: created, model files, then params + curves +
final metrics + the tag `hpexp.synced` (a digest of the record) in one batch, then the terminal
status. A run without that tag and status was cut short and is written again.

    projection = Projection(tracking_uri, experiment, study)
    projection.open_study(parent_run_id, params, tags)
    projection.write(records)               # idempotent: runs already complete are kept
    problems = projection.check(records)    # [] when MLflow agrees with the records
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpexp.tracking.stores import (
    STATUS_FOR_STATE,
    ensure_store,
    local_artifact_root,
    quiet_mlflow,
)

__all__ = ["Projection", "TrialRecord", "log_files"]

TAG = "hpexp."  # prefix of hpexp's own tags
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000


@dataclass(frozen=True)
class TrialRecord:
    """Everything one trial's run shows. `state` is COMPLETE, PRUNED or FAIL; `curves` maps a
    metric name to (steps, values); `metrics` are final values, logged at `step`; `model` is a
    folder logged as the run's `model/` artifacts."""

    number: int
    state: str
    params: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    step: int = 0
    model: Path | None = None

    @property
    def status(self) -> str:
        return STATUS_FOR_STATE[self.state]

    def digest(self) -> str:
        """A hash of what the run must show (not of the model files' location)."""
        doc = [self.number, self.state, self.params, self.tags, self.metrics, self.curves]
        text = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def all_tags(self) -> dict[str, str]:
        tags = {TAG + "state": self.state, **self.tags}
        return {k: str(v)[:MAX_TAG_LENGTH] for k, v in tags.items()}

    def logged_metrics(self) -> dict[str, float]:
        return {k: v for k, v in self.metrics.items() if math.isfinite(v)}


def _param(value: Any) -> str:
    return str(value)[:MAX_PARAM_LENGTH]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _mismatches(kind: str, have: Mapping[str, str], want: Mapping[str, str]) -> list[str]:
    return [
        f"{kind} {k} = {have.get(k)!r}, expected {v!r}" for k, v in want.items() if have.get(k) != v
    ]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Projection:
    """The MLflow side of one study, on one `MlflowClient` with explicit run ids."""

    def __init__(self, tracking_uri: str, experiment: str, study_name: str) -> None:
        quiet_mlflow()
        ensure_store(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri, self.study_name = tracking_uri, study_name
        self.experiment_id = self._experiment(experiment)
        self.parent_run_id = ""

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        if found is not None:
            return str(found.experiment_id)
        root = local_artifact_root(self.tracking_uri)
        try:
            return str(
                self.client.create_experiment(
                    name,
                    artifact_location=f"{root}/{name}" if root else None,
                    tags={TAG + "study": self.study_name},
                )
            )
        except MlflowException:  # another process created it first
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    # -- the study's parent run --------------------------------------------------------------

    def open_study(
        self, parent_run_id: str | None, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """Reopen the study's parent run (by id, else by its tags) or create it; return its id.
        Params are logged once, when the run is created (MLflow params are immutable)."""
        run = self._get(parent_run_id) if parent_run_id else None
        if run is None:
            run = self._find_parent()
        created = run is None
        if run is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study_name,
                tags={TAG + "study": self.study_name, TAG + "role": "study", **tags},
            )
            self._log(run.info.run_id, params=params)
            first = self._find_parent()  # workers on other hosts may have created one too:
            if first is not None and first.info.run_id != run.info.run_id:  # all keep the first
                self.client.delete_run(run.info.run_id)
                run, created = first, False
        if not created:
            self._log(run.info.run_id, tags=tags)
            if run.info.status != "RUNNING":
                self.client.update_run(run.info.run_id, status="RUNNING")
        self.parent_run_id = run.info.run_id
        return self.parent_run_id

    def _get(self, run_id: str) -> Run | None:
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        return run if run.info.lifecycle_stage == "active" else None

    def has_artifact(self, run_id: str, path: str) -> bool:
        """Whether run `run_id` has an artifact at `path` (a file at its top, or in a folder)."""
        folder = path.rpartition("/")[0] or None
        return any(a.path == path for a in self.client.list_artifacts(run_id, folder))

    def _find_parent(self) -> Run | None:
        runs = self._search(f"tags.`{TAG}role` = 'study' and tags.`{TAG}study` = '{self._q()}'")
        runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
        return runs[0] if runs else None

    def close_study(
        self,
        status: str,
        metrics: Mapping[str, float] = {},
        tags: Mapping[str, str] = {},
        artifacts: Iterable[tuple[Path, str | None]] = (),
    ) -> None:
        """Log the study's summary metrics and artifacts (file or folder, artifact path) and end
        the parent run with `status` (FINISHED, KILLED or FAILED)."""
        run_id = self.parent_run_id
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self._log(run_id, metrics=finite, tags=tags)
        for path, artifact_path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path)
        self.client.set_terminated(run_id, status)

    # -- one child run per finished trial ----------------------------------------------------

    def trial_runs(self, number: int | None = None) -> dict[int, list[Run]]:
        """The study's trial runs by trial number (one trial's, given `number`)."""
        query = f"tags.`{TAG}study` = '{self._q()}' and tags.`{TAG}trial` != ''"
        if number is not None:
            query = f"tags.`{TAG}study` = '{self._q()}' and tags.`{TAG}trial` = '{number}'"
        out: dict[int, list[Run]] = {}
        for run in self._search(query):
            if run.data.tags.get(TAG + "role") == "study":
                continue
            trial = run.data.tags.get(TAG + "trial", "")
            if trial.isdigit():
                out.setdefault(int(trial), []).append(run)
        return out

    def write(self, records: Iterable[TrialRecord], known: dict[int, list[Run]] | None = None):
        """Write each record's run unless a complete one exists; remove runs cut short and
        duplicates. `known` is `trial_runs()` when the caller has it (else looked up per
        record). Returns {trial number: run id}."""
        ids = {}
        for record in records:
            runs = (
                known.get(record.number, [])
                if known is not None
                else self.trial_runs(record.number).get(record.number, [])
            )
            ids[record.number] = self._write_one(record, runs)
        return ids

    def _write_one(self, record: TrialRecord, runs: list[Run]) -> str:
        digest = record.digest()
        keep = next((r for r in runs if self._complete(r, record, digest)), None)
        for run in runs:
            if run is not keep:
                self.client.delete_run(run.info.run_id)
        if keep is not None:
            return str(keep.info.run_id)
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{record.number:04d}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                TAG + "study": self.study_name,
                TAG + "trial": str(record.number),
            },
        )
        run_id = run.info.run_id
        if record.model is not None and record.model.is_dir():
            self.client.log_artifacts(run_id, str(record.model), "model")
        now = _now_ms()
        points = [
            Metric(name, float(v), now, int(s))
            for name, (steps, values) in record.curves.items()
            for s, v in zip(steps, values, strict=True)
        ]
        self._log(  # last but the status: the "synced" tag says everything else is there
            run_id,
            params=record.params,
            metrics=record.logged_metrics(),
            tags={**record.all_tags(), TAG + "synced": digest},
            step=record.step,
            extra=points,
        )
        self.client.set_terminated(run_id, record.status)
        return str(run_id)

    @staticmethod
    def _complete(run: Run, record: TrialRecord, digest: str) -> bool:
        return (
            run.data.tags.get(TAG + "synced") == digest
            and run.info.status == record.status
            and run.data.tags.get("mlflow.parentRunId") is not None
        )

    def remove_strays(self, numbers: set[int], runs: dict[int, list[Run]]) -> list[int]:
        """Delete runs of trials that are not finished in the study (`numbers`); returns their
        trial numbers."""
        stray = [n for n in runs if n not in numbers]
        for n in stray:
            for run in runs[n]:
                self.client.delete_run(run.info.run_id)
        return stray

    # -- comparing ---------------------------------------------------------------------------

    def check(self, records: Iterable[TrialRecord]) -> list[str]:
        """One line per way MLflow differs from the records (missing, duplicated or extra runs,
        params, tags, status, final metrics, learning curves, model files); [] if it agrees."""
        records = list(records)
        runs = self.trial_runs()
        problems = []
        for record in records:
            found = runs.get(record.number, [])
            if not found:
                problems.append(f"trial {record.number}: no MLflow run")
                continue
            if len(found) > 1:
                problems.append(f"trial {record.number}: {len(found)} MLflow runs, expected one")
            problems += [f"trial {record.number}: {p}" for p in self._differences(record, found[0])]
        wanted = {r.number for r in records}
        problems += [
            f"trial {n}: an MLflow run but no finished trial" for n in runs if n not in wanted
        ]
        return problems

    def _differences(self, record: TrialRecord, run: Run) -> list[str]:
        """How `run` differs from `record` (one phrase each; [] when it shows the record)."""
        out = []
        if run.info.status != record.status:
            out.append(f"run status {run.info.status}, expected {record.status}")
        expected = {k: _param(v) for k, v in record.params.items()}
        out += _mismatches("param", run.data.params, expected)
        out += _mismatches("tag", run.data.tags, record.all_tags())
        finals = record.logged_metrics()
        for k, value in finals.items():
            got = run.data.metrics.get(k)
            if k not in record.curves and (got is None or not _close(got, value)):
                out.append(f"metric {k} = {got}, expected {value}")
        for name, (steps, values) in record.curves.items():
            history = self.client.get_metric_history(run.info.run_id, name)
            # A final value (a mean over repeats) equal to the curve's last point is one point
            # or two, as MLflow's timestamps fall: compare distinct (step, value) pairs.
            have = sorted({(m.step, m.value) for m in history})
            want = list(zip(steps, values, strict=True))
            if name in finals:
                want.append((record.step, finals[name]))
            want = sorted(set(want))
            if len(have) != len(want) or any(
                a[0] != b[0] or not _close(a[1], b[1]) for a, b in zip(have, want, strict=True)
            ):
                out.append(f"learning curve {name} differs ({len(have)} points, {len(want)} kept)")
        if record.model is not None:
            names = {a.path for a in self.client.list_artifacts(run.info.run_id, "model")}
            if not any(n.endswith(".npz") for n in names):
                out.append("model files missing from the run's artifacts")
        return out

    # -- helpers -----------------------------------------------------------------------------

    def _q(self) -> str:
        return self.study_name.replace("'", "\\'")

    def _search(self, query: str) -> list[Run]:
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=query, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _log(
        self,
        run_id: str,
        params: Mapping[str, Any] = {},
        metrics: Mapping[str, float] = {},
        tags: Mapping[str, str] = {},
        step: int = 0,
        extra: Iterable[Metric] = (),
    ) -> None:
        now = _now_ms()
        self.client.log_batch(
            run_id,
            metrics=[*extra, *(Metric(k, float(v), now, step) for k, v in metrics.items())],
            params=[Param(k, _param(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )


def log_files(tracking_uri: str, run_id: str, files: Iterable[Path]) -> None:
    """Log `files` at the top of run `run_id`'s artifacts, replacing files of the same names.
    Raises LookupError when the store or the run (not deleted) does not exist: nothing is
    created, an embedded store included."""
    quiet_mlflow()
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise LookupError(f"no MLflow store at {db}")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise LookupError(f"no MLflow run {run_id}") from None
    if run.info.lifecycle_stage != "active":
        raise LookupError(f"MLflow run {run_id} was deleted")
    for path in files:
        client.log_artifact(run_id, str(path))
