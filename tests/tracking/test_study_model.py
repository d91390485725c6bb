"""The study run's pyfunc model is written when its best trial changed, not at every close."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpexp
from hpexp.report.document import HTML_NAME
from hpexp.study import BEST_TRIAL_TAG

from ..search.conftest import empty_mlflow_store, run, tiny


def artifact(parent_run_id: str, path: str) -> Path:
    return next(Path("mlartifacts").glob("*")) / parent_run_id / "artifacts" / path


def model_uuid(parent_run_id: str) -> str:
    lines = artifact(parent_run_id, "model/MLmodel").read_text().splitlines()
    [uuid] = [line.split(":")[1].strip() for line in lines if line.startswith("model_uuid:")]
    return uuid


def close_again(parent_run_id: str) -> None:
    """Make the study run incomplete (its report lost), then let `hpexp sync` close it again."""
    report = artifact(parent_run_id, HTML_NAME)
    report.unlink()
    hpexp.sync_study("tiny")
    assert report.is_file()


@pytest.mark.slow
def test_the_model_is_written_again_only_for_another_best_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    empty_mlflow_store(tmp_path)
    result = run(tiny(budget={"n_trials": 3}))
    parent, best = result.parent_run_id, str(result.best_trial.number)
    written = model_uuid(parent)

    close_again(parent)  # the same best trial: its model stays
    assert model_uuid(parent) == written

    client = MlflowClient(result.tracking_uri)
    client.set_tag(parent, BEST_TRIAL_TAG, "99")  # as if the best trial had changed
    close_again(parent)
    assert client.get_run(parent).data.tags[BEST_TRIAL_TAG] == best
    rewritten = model_uuid(parent)
    assert rewritten != written

    artifact(parent, "model/MLmodel").unlink()  # a model lost from the artifact store
    close_again(parent)
    assert model_uuid(parent) not in (written, rewritten)
