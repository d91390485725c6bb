"""MLflow bookkeeping for one study, on `MlflowClient` with explicit run ids.

One experiment per study; a parent run for the study; one nested child run per Optuna trial,
tagged with the study name, trial number, seed and state. Curves go up in batches (the client
splits them into requests of at most 1000 points). Optuna states map to MLflow run statuses:
COMPLETE → FINISHED, PRUNED → KILLED, FAIL → FAILED (with the reason as a tag).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

__all__ = ["STATUS_FOR_STATE", "StudyTracker", "absolute_uri", "local_artifact_root"]

STATUS_FOR_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
TAG = "hpexp."  # prefix of hpexp's own tags
MAX_PARAM_LENGTH = 6000

for _noisy in ("alembic", "mlflow.store", "mlflow.tracking", "mlflow.pyfunc", "mlflow.models"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def local_artifact_root(tracking_uri: str) -> str | None:
    """Where artifacts go for an embedded store: `mlartifacts/` beside the SQLite file."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.resolve().parent / "mlartifacts").as_uri()
    if "://" not in tracking_uri or tracking_uri.startswith("file:"):
        return None  # a file store keeps artifacts beside its runs
    return None  # a server decides


SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(tracking_uri: str, source: str = "tracking") -> None:
    """Refuse a URI MLflow cannot open, before anything is created."""
    from hpexp.errors import SpecError

    scheme = tracking_uri.split("://", 1)[0].split("+", 1)[0] if "://" in tracking_uri else ""
    if scheme and scheme not in SCHEMES:
        raise SpecError(
            f"{source}: tracking.uri: unknown scheme '{scheme}://'; use sqlite:///mlflow.db, "
            "a folder path, http(s)://host:port of a tracking server, or a database URL"
        )
    if scheme == "sqlite" and not tracking_uri.startswith("sqlite:///"):
        raise SpecError(
            f"{source}: tracking.uri: write sqlite:///relative.db or sqlite:////absolute/path.db"
        )


def absolute_uri(tracking_uri: str) -> str:
    """`sqlite:///rel/path.db` (and a bare store path) anchored at the current directory."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(tracking_uri.removeprefix("sqlite:///")).resolve())
    if "://" not in tracking_uri and not tracking_uri.startswith("file:"):
        return Path(tracking_uri).resolve().as_uri()
    return tracking_uri


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param_value(value: Any) -> str:
    return str(value)[:MAX_PARAM_LENGTH]


class StudyTracker:
    """The MLflow side of a study: `open_study`, then `start_trial` / `finish_trial` per trial,
    then `close_study`. Every call names its run explicitly; nothing uses a global active run."""

    def __init__(self, tracking_uri: str, experiment: str, study_name: str) -> None:
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        found = self.client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        if found is None:
            root = local_artifact_root(tracking_uri)
            location = f"{root}/{experiment}" if root else None
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location, tags={TAG + "study": study_name}
            )
        else:
            self.experiment_id = found.experiment_id
        self.parent_run_id = ""

    # -- the study's parent run --------------------------------------------------------------

    def open_study(
        self, parent_run_id: str | None, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """Reopen the study's parent run, or create it; return its id."""
        if parent_run_id:
            self.client.update_run(parent_run_id, status="RUNNING")
            self.parent_run_id = parent_run_id
            self._log(parent_run_id, tags=tags)
        else:  # params are immutable in MLflow: log them once, when the study starts
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study_name,
                tags={TAG + "study": self.study_name, TAG + "role": "study", **tags},
            )
            self.parent_run_id = run.info.run_id
            self._log(self.parent_run_id, params=params)
        return self.parent_run_id

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
        self._log(run_id, metrics=metrics, tags=tags)
        for path, artifact_path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path)
        self.client.set_terminated(run_id, status)

    # -- one child run per trial -------------------------------------------------------------

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Create trial `number`'s child run with its params; return the run id."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:04d}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                TAG + "study": self.study_name,
                TAG + "trial": str(number),
                TAG + "state": "RUNNING",
                **tags,
            },
        )
        run_id = run.info.run_id
        self._log(run_id, params=params)
        return run_id

    def finish_trial(
        self,
        run_id: str,
        state: str,
        metrics: Mapping[str, float] = {},
        tags: Mapping[str, str] = {},
        artifacts: Path | None = None,
        step: int = 0,
        curves: Mapping[str, tuple[Iterable[int], Iterable[float]]] = {},
    ) -> None:
        """End a trial's run: its learning curves ({name: (steps, values)}) and final metrics
        (at `step`) in one batch, the state tag, artifacts (a folder), and the MLflow status for
        `state` (an Optuna state name: COMPLETE, PRUNED or FAIL)."""
        now = _now_ms()
        points = [
            Metric(name, float(v), now, int(s))
            for name, (steps, values) in curves.items()
            for s, v in zip(steps, values, strict=True)
        ]
        self._log(
            run_id, metrics=metrics, tags={TAG + "state": state, **tags}, step=step, extra=points
        )
        if artifacts is not None:
            self.client.log_artifacts(run_id, str(artifacts))
        self.client.set_terminated(run_id, STATUS_FOR_STATE[state])

    def child_runs(self) -> list[Any]:
        """All trial runs of this study (any status)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    # -- helpers -----------------------------------------------------------------------------

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
            params=[Param(k, _param_value(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
