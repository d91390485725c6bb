"""A study's re-evaluations in MLflow: one child run per re-evaluated configuration, a table.

Each run sits under the study's run and is found again by its tags, never by its id:
`hpexp.role` = `reevaluation`, `hpexp.reevaluation` = the re-evaluation's key (`top3-seeds10`)
and `hpexp.reevaluated_trial` = the trial whose configuration was retrained. Runs of
re-evaluations carry no `hpexp.trial` tag, so the study's trial runs (`Projection.trial_runs`)
never include them. Writing is idempotent: a run whose `hpexp.synced` tag holds the digest of
what it must show is kept, any other run of the same key and trial is deleted and written again,
and runs of trials no longer in the re-evaluation are deleted. The table is logged on the study's
run as `reevaluation/<key>.csv` when the study run's tag `hpexp.reevaluation.<key>` does not
hold its digest yet.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Run

from hpexp.tracking.projection import (
    MAX_TAG_LENGTH,
    TAG,
    Projection,
    _close,
    _mismatches,
    _now_ms,
    _param,
)

__all__ = [
    "ARTIFACT_FOLDER",
    "ROLE",
    "ReevaluationRun",
    "check_reevaluation",
    "reevaluation_runs",
    "write_reevaluation",
]

ROLE = "reevaluation"  # the value of the tag hpexp.role
ARTIFACT_FOLDER = "reevaluation"  # where the study's run keeps the tables


@dataclass(frozen=True)
class ReevaluationRun:
    """What the run of one re-evaluated configuration shows: `params` (the configuration),
    `tags`, final `metrics` (means, intervals, test against the best, winner's curse) and
    `per_seed` values, each logged as a metric with one step per seed (0, 1, ...)."""

    trial: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    per_seed: dict[str, list[float]]

    def digest(self) -> str:
        doc = [self.trial, self.params, self.tags, self.metrics, self.per_seed]
        text = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def reevaluation_runs(projection: Projection, key: str) -> dict[int, list[Run]]:
    """The runs of re-evaluation `key` of the projection's study, by re-evaluated trial."""
    query = (
        f"tags.`{TAG}role` = '{ROLE}' and tags.`{TAG}study` = '{projection._q()}' "
        f"and tags.`{TAG}reevaluation` = '{_quoted(key)}'"
    )
    out: dict[int, list[Run]] = {}
    for run in projection._search(query):
        trial = run.data.tags.get(TAG + "reevaluated_trial", "")
        if trial.isdigit():
            out.setdefault(int(trial), []).append(run)
    return out


def write_reevaluation(
    projection: Projection,
    parent_run_id: str,
    key: str,
    runs: Sequence[ReevaluationRun],
    table: str,
) -> dict[int, str]:
    """Write re-evaluation `key` under the study's run `parent_run_id`: one run per entry of
    `runs` (kept when already complete), none for other trials, and `table` (CSV text) as
    `reevaluation/<key>.csv` on the study's run. Returns {trial: run id}."""
    found = reevaluation_runs(projection, key)
    ids = {run.trial: _write_one(projection, parent_run_id, key, run, found) for run in runs}
    for trial, stale in found.items():
        for run in stale:
            if ids.get(trial) != run.info.run_id:
                projection.client.delete_run(run.info.run_id)
    _log_table(projection, parent_run_id, key, table)
    return ids


def _write_one(
    projection: Projection,
    parent_run_id: str,
    key: str,
    record: ReevaluationRun,
    found: dict[int, list[Run]],
) -> str:
    digest = record.digest()
    keep = next(
        (
            r
            for r in found.get(record.trial, [])
            if r.data.tags.get(TAG + "synced") == digest
            and r.info.status == "FINISHED"
            and r.data.tags.get("mlflow.parentRunId") == parent_run_id
        ),
        None,
    )
    if keep is not None:
        return str(keep.info.run_id)
    client = projection.client
    run = client.create_run(
        projection.experiment_id,
        run_name=f"reevaluation-{key}-trial-{record.trial:04d}",
        tags={
            "mlflow.parentRunId": parent_run_id,
            TAG + "study": projection.study_name,
            TAG + "role": ROLE,
            TAG + "reevaluation": key,
            TAG + "reevaluated_trial": str(record.trial),
        },
    )
    run_id = run.info.run_id
    now = _now_ms()
    points = [
        Metric(f"{name}_per_seed", float(v), now, step)
        for name, values in record.per_seed.items()
        for step, v in enumerate(values)
        if math.isfinite(v)
    ]
    tags = {k: str(v)[:MAX_TAG_LENGTH] for k, v in record.tags.items()}
    projection._log(  # last but the status: the "synced" tag says everything else is there
        run_id,
        params=record.params,
        metrics={k: v for k, v in record.metrics.items() if math.isfinite(v)},
        tags={**tags, TAG + "synced": digest},
        extra=points,
    )
    client.set_terminated(run_id, "FINISHED")
    return str(run_id)


def check_reevaluation(
    projection: Projection,
    parent_run_id: str,
    key: str,
    runs: Sequence[ReevaluationRun],
    table: str,
) -> list[str]:
    """One line per way MLflow differs from re-evaluation `key` as stored ([] when it agrees):
    a configuration's run missing, doubled, or showing other values; a run of a trial the
    re-evaluation does not hold; the table on the study's run missing or stale."""
    where = f"re-evaluation {key}"
    found = reevaluation_runs(projection, key)
    problems = []
    for record in runs:
        have = found.get(record.trial, [])
        if len(have) != 1:
            problems.append(f"{where}: trial {record.trial}: {len(have)} MLflow runs, expected 1")
        for run in have:
            for difference in _differences(record, run, parent_run_id):
                problems.append(f"{where}: trial {record.trial}: {difference}")
    for trial in sorted(set(found) - {r.trial for r in runs}):
        problems.append(f"{where}: trial {trial}: an MLflow run, but no such re-evaluated trial")
    parent = projection._get(parent_run_id)
    if parent is None or parent.data.tags.get(_table_tag(key)) != _table_digest(table):
        problems.append(f"{where}: table {ARTIFACT_FOLDER}/{key}.csv missing or out of date")
    return problems


def _differences(record: ReevaluationRun, run: Run, parent_run_id: str) -> list[str]:
    """How `run` differs from what it must show (one phrase each)."""
    out = []
    if run.info.status != "FINISHED":
        out.append(f"run status {run.info.status}, expected FINISHED")
    if run.data.tags.get("mlflow.parentRunId") != parent_run_id:
        out.append("not a child run of the study's run")
    out += _mismatches("param", run.data.params, {k: _param(v) for k, v in record.params.items()})
    tags = {k: str(v)[:MAX_TAG_LENGTH] for k, v in record.tags.items()}
    out += _mismatches("tag", run.data.tags, tags)
    want = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
    for name, values in record.per_seed.items():  # the run's value of a metric is its last step
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            want[f"{name}_per_seed"] = finite[-1]
    for k, value in want.items():
        got = run.data.metrics.get(k)
        if got is None or not _close(got, value):
            out.append(f"metric {k} = {got}, expected {value}")
    return out


def _log_table(projection: Projection, parent_run_id: str, key: str, table: str) -> None:
    """Log `table` as reevaluation/<key>.csv on the study's run, unless it is there already."""
    digest, tag = _table_digest(table), _table_tag(key)
    if projection.client.get_run(parent_run_id).data.tags.get(tag) == digest:
        return
    with tempfile.TemporaryDirectory(prefix="hpexp-reevaluation-") as tmp:
        path = Path(tmp) / f"{key}.csv"
        path.write_text(table)
        projection.client.log_artifact(parent_run_id, str(path), ARTIFACT_FOLDER)
    projection._log(parent_run_id, tags={tag: digest})


def _table_tag(key: str) -> str:
    """The study run's tag that holds the digest of re-evaluation `key`'s logged table."""
    return f"{TAG}reevaluation.{key}"


def _table_digest(table: str) -> str:
    return hashlib.sha256(table.encode()).hexdigest()[:16]


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
