"""A study stopped by Ctrl-C, SIGTERM or SIGKILL resumes: nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from hpexp.search.factories import make_storage
from hpexp.search.runner import finished_count

from ..conftest import empty_mlflow_store
from .conftest import assert_agree, run, wait_for_writers

pytestmark = pytest.mark.slow

SLOW_TRIALS = {
    "name": "stoppable",
    "dataset": {"name": "digits"},
    "fixed": {"optimizer": "adam", "eval_every": 10, "hidden_layers": 1, "hidden_units": 64},
    "search": {
        "learning_rate": {"float": [0.001, 0.01], "log": True},
        "iterations": {"int": [1500, 2000]},
    },
    "pruner": {"name": "none"},
    "budget": {"n_trials": 2},
}


def start_study(where: Path) -> subprocess.Popen:
    (where / "study.yaml").write_text(yaml.safe_dump(SLOW_TRIALS))
    empty_mlflow_store(where)
    return subprocess.Popen(
        [sys.executable, "-m", "hpexp", "run", "study.yaml", "--no-progress"],
        cwd=where,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_running_trial(where: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    """Block until trial 0 is RUNNING (or fail after `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        journal = where / "optuna.journal"
        if journal.exists():
            storage = make_storage(str(journal))
            if "stoppable" in optuna.get_all_study_names(storage):
                trials = optuna.load_study(study_name="stoppable", storage=storage).trials
                if trials and "worker" in trials[0].user_attrs:
                    time.sleep(0.5)  # let it train a little
                    return
        time.sleep(0.3)
    pytest.fail("the study never started a trial")


def trial_run_status(client: MlflowClient, number: int) -> str | None:
    exp = client.get_experiment_by_name("stoppable")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`hpexp.trial` = '{number}'")
    assert len(runs) <= 1
    return runs[0].info.status if runs else None


def check_resumed(where: Path, killed: bool) -> None:
    """Before resuming, the stopped trial is FAIL/interrupted in both stores (after SIGKILL:
    still RUNNING in Optuna, and not in MLflow, which only shows finished trials); after
    resuming, it is closed in both stores and re-run with the same params."""
    os.chdir(where)
    wait_for_writers(where)  # the study run is ended by the writer, after the process exits
    stopped = optuna.load_study(study_name="stoppable", storage=make_storage("optuna.journal"))
    first = stopped.trials[0]
    client = MlflowClient(f"sqlite:///{where}/mlflow.db")
    if killed:  # MLflow shows finished trials only; the writer may not have started yet
        assert first.state.name == "RUNNING"
    else:
        parent = client.get_run(stopped.user_attrs["mlflow_parent_run_id"]).info.status
        assert (first.state.name, trial_run_status(client, 0), parent) == (
            "FAIL",
            "KILLED",  # an interrupted trial, like the stopped study
            "KILLED",
        )
        assert first.user_attrs["fail_reason"] == "interrupted"
    assert finished_count(stopped) == 0

    result = run(SLOW_TRIALS)
    trials = result.study.trials
    assert finished_count(result.study) == 2
    first = trials[0]
    assert (first.state.name, first.user_attrs["fail_reason"]) == ("FAIL", "interrupted")
    assert trial_run_status(client, 0) == "KILLED"
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == 0]  # after one queued
    assert retry.params == first.params
    assert_agree(result)
    assert client.get_run(result.parent_run_id).info.status == ("FINISHED")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_study_resumes(tmp_path, monkeypatch, sig):
    monkeypatch.chdir(tmp_path)
    proc = start_study(tmp_path)
    try:
        wait_for_running_trial(tmp_path, proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, out  # 130 for Ctrl-C, 143 for SIGTERM
    assert "run the same command again to resume" in out
    assert "Traceback" not in out
    check_resumed(tmp_path, killed=False)


def test_killed_study_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = start_study(tmp_path)
    try:
        wait_for_running_trial(tmp_path, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    # The dead process left its trial RUNNING in Optuna and its run RUNNING in MLflow; the next
    # run closes both as interrupted before it re-queues the trial.
    check_resumed(tmp_path, killed=True)
