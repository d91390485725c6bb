"""A study's MLflow runs, written from plain records: the projection of the Optuna storage.

One experiment per study; a parent run for the study; one nested child run per finished trial,
tagged with the study name and trial number, so every run can be found again by its tags
(`hpexp.study`, `hpexp.trial`) whatever happened to the process that wrote it. A trial's run is
written in one go when the trial has finished: created with its tags, model files, then params +
curves + final metrics + the tag `hpexp.synced` (a digest of the record) in one batch, then the
terminal status. A run without that tag and status was cut short and is written again.

A trial's run shows that trial only: its learning curves as `curves/<metric>` (one point per
evaluation, step = iteration: MLflow's charts put them in a section of their own) and its final
values under the metrics' own names at step 0 (the runs table's columns, bars in the charts).
Its name and status say how it ended (`hpexp.tracking.views.run_name`, `RUN_STATUS`). The
study's run holds the study's summary (`study/...` metrics), and the experiment a saved view of
the trials and a description that links to it (`hpexp.tracking.views`).

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
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from hpexp.tracking.stores import (
    RUN_STATUS,
    ensure_store,
    local_artifact_root,
    quiet_mlflow,
)
from hpexp.tracking.views import GREY, RUN_NOTE, run_name

__all__ = ["CURVES", "Projection", "TrialRecord", "log_files"]

TAG = "hpexp."  # prefix of hpexp's own tags
CURVES = "curves/"  # prefix of a learning curve's metric name
LAYOUT = 2  # how a trial's run looks; a run written with another layout is written again
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000
STATUS_OF_STATE = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


@dataclass(frozen=True)
class TrialRecord:
    """Everything one trial's run shows. `state` is Optuna's (COMPLETE, PRUNED or FAIL),
    `status` hpexp's (complete, pruned, failed, interrupted, duplicate; from `state` when
    empty); `pruned_at` the iteration a pruned trial stopped at; `curves` maps a metric name to
    (steps, values); `metrics` are final values; `model` is a folder logged as the run's
    `model/` artifacts."""

    number: int
    state: str
    params: dict[str, str]
    status: str = ""
    pruned_at: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    model: Path | None = None

    @property
    def outcome(self) -> str:
        """How the trial ended, in hpexp's words (`hpexp.search.states`)."""
        return self.status or STATUS_OF_STATE[self.state]

    @property
    def run_status(self) -> str:
        return RUN_STATUS[self.outcome]

    @property
    def run_name(self) -> str:
        return run_name(self.number, self.outcome, self.pruned_at)

    def digest(self) -> str:
        """A hash of what the run must show (not of the model files' location)."""
        doc = [LAYOUT, self.number, self.state, self.outcome, self.pruned_at, self.params]
        doc += [self.tags, self.metrics, self.curves]
        text = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def all_tags(self) -> dict[str, str]:
        """The tags `check` compares: hpexp's, and the run's name."""
        tags = {TAG + "role": "trial", TAG + "state": self.state, TAG + "status": self.outcome}
        if self.pruned_at is not None:
            tags[TAG + "pruned_at"] = str(self.pruned_at)
        tags |= {**self.tags, "mlflow.runName": self.run_name}
        return {k: str(v)[:MAX_TAG_LENGTH] for k, v in tags.items()}

    def display_tags(self) -> dict[str, str]:
        """Tags set once, when the run is written, and left to the user afterwards: a grey
        colour for a trial that did not complete (the UI's colour picker changes it)."""
        return {} if self.outcome == "complete" else {"mlflow.runColor": GREY}

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


def _envelope(value: str | None) -> dict[str, Any] | None:
    """A saved view's envelope (name, state, createdAt), or None if `value` is not one."""
    try:
        doc = json.loads(value or "")
    except ValueError:
        return None
    ok = isinstance(doc, dict) and {"name", "state", "createdAt"} <= doc.keys()
    return doc if ok else None


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
        """Log the study's artifacts (file or folder, artifact path), then its summary metrics
        and `tags` (so a tag says its artifacts are all there), and end the parent run with
        `status` (FINISHED, KILLED or FAILED)."""
        run_id = self.parent_run_id
        for path, artifact_path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path)
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self._log(run_id, metrics=finite, tags=tags)
        self.client.set_terminated(run_id, status)

    def study_tag_with(self, tag: str, artifact: str) -> str | None:
        """The study run's `tag` (logged after its artifacts: see `close_study`), when the run
        also has `artifact` (a path in it); else None."""
        run = self._get(self.parent_run_id)
        value = run.data.tags.get(tag) if run is not None else None
        if value is None or not self.has_artifact(self.parent_run_id, artifact):
            return None
        return value

    # -- what the UI opens on ---------------------------------------------------------------

    def show(self, view: tuple[str, Mapping[str, Any]], note: str) -> None:
        """Save the study's view of its trials (`views.trials_view`) unless it is there as is,
        and, in the study's own experiment, make `note` the experiment's description unless
        someone wrote another one there (hpexp replaces only what it wrote itself)."""
        tags = self.client.get_experiment(self.experiment_id).tags
        key, envelope = view
        old = _envelope(tags.get(key))
        if old is None or (old["name"], old["state"]) != (envelope["name"], envelope["state"]):
            now = _now_ms()
            created = old["createdAt"] if old else now
            value = json.dumps({**envelope, "createdAt": created, "updatedAt": now})
            self.client.set_experiment_tag(self.experiment_id, key, value)
        if tags.get(TAG + "study") != self.study_name:
            return  # an experiment shared with other studies keeps its description
        current, mine = tags.get(RUN_NOTE), tags.get(TAG + "note")
        if current in (None, "", mine) or current == note:
            if current != note:
                self.client.set_experiment_tag(self.experiment_id, RUN_NOTE, note)
            if mine != note:  # after the note: an interruption between the two is harmless
                self.client.set_experiment_tag(self.experiment_id, TAG + "note", note)

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
        # every tag but `hpexp.synced` goes in with the run (its name among them: as a later tag
        # it would cost MLflow a second update of the run)
        run = self.client.create_run(
            self.experiment_id,
            run_name=record.run_name,
            tags={
                **record.all_tags(),
                "mlflow.parentRunId": self.parent_run_id,
                TAG + "study": self.study_name,
                TAG + "trial": str(record.number),
                **record.display_tags(),
            },
        )
        run_id = run.info.run_id
        if record.model is not None and record.model.is_dir():  # the run's store, no lookup
            repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.tracking_uri)
            repo.log_artifacts(str(record.model), "model")
        now = _now_ms()
        points = [
            Metric(CURVES + name, float(v), now, int(s))
            for name, (steps, values) in record.curves.items()
            for s, v in zip(steps, values, strict=True)
        ]
        self._log(  # last but the status: the "synced" tag says everything else is there
            run_id,
            params=record.params,
            metrics=record.logged_metrics(),
            tags={TAG + "synced": digest},
            extra=points,
        )
        self.client.set_terminated(run_id, record.run_status)
        return str(run_id)

    @staticmethod
    def _complete(run: Run, record: TrialRecord, digest: str) -> bool:
        return (
            run.data.tags.get(TAG + "synced") == digest
            and run.info.status == record.run_status
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
        if run.info.status != record.run_status:
            out.append(f"run status {run.info.status}, expected {record.run_status}")
        expected = {k: _param(v) for k, v in record.params.items()}
        out += _mismatches("param", run.data.params, expected)
        out += _mismatches("tag", run.data.tags, record.all_tags())
        finals = record.logged_metrics()
        for k, value in finals.items():
            got = run.data.metrics.get(k)
            if got is None or not _close(got, value):
                out.append(f"metric {k} = {got}, expected {value}")
        curves = {CURVES + name: points for name, points in record.curves.items()}
        for name in sorted(set(run.data.metrics) - set(finals) - set(curves)):
            out.append(f"metric {name}: not one of this trial's metrics")
        for name, (steps, values) in curves.items():
            history = self.client.get_metric_history(run.info.run_id, name)
            have = sorted((m.step, m.value) for m in history)
            want = sorted(zip(steps, values, strict=True))
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
        extra: Iterable[Metric] = (),
    ) -> None:
        now = _now_ms()
        self.client.log_batch(
            run_id,
            metrics=[*extra, *(Metric(k, float(v), now, 0) for k, v in metrics.items())],
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
