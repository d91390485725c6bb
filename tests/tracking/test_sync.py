"""MLflow is a projection of the Optuna storage: `hpexp sync` rebuilds it, `hpexp check` says
whether it agrees, and a tracking server that goes away does not stop a study.

Each test runs `python -m hpexp` in a scratch folder. MLflow is read in this process with
SQLAlchemy's NullPool, so a store that a test deletes and `hpexp sync` rebuilds is read afresh
(MLflow otherwise keeps pooled connections to the deleted file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import hpexp
from hpexp.search.runner import finished_count
from tests.search.conftest import (
    HPEXP_TIMEOUT,
    empty_mlflow_store,
    hpexp_cmd,
    journal_study,
    kill_writers,
    one_line,
    start_hpexp,
    wait_for_writers,
    write_study,
)

RUN = ("run", "study.yaml", "--no-progress")

#: Four trials that end three ways, in this order: failed (diverged: nothing to prune it
#: against yet), complete, complete, pruned.
SYNCED: dict[str, Any] = {
    "name": "synced",
    "dataset": {"name": "diabetes"},
    "fixed": {"optimizer": "gd", "eval_every": 5, "hidden_layers": 1, "hidden_units": 8},
    "search": {
        "learning_rate": {"float": [1e-6, 1e3], "log": True},
        "iterations": {"int": [30, 40]},
    },
    "enqueue": [
        {"learning_rate": 1e3, "iterations": 40},
        {"learning_rate": 0.01, "iterations": 40},
        {"learning_rate": 0.02, "iterations": 40},
        {"learning_rate": 1e-6, "iterations": 40},
    ],
    "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
    "budget": {"n_trials": 4},
}
METRIC = "test_rmse"  # a final metric (no learning curve)


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")


def finished_study(where: Path) -> str:
    """Run SYNCED to its end in `where`; returns its MLflow URI."""
    write_study(where, SYNCED)
    empty_mlflow_store(where)
    proc = hpexp_cmd(*RUN, cwd=where)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return f"sqlite:///{where / 'mlflow.db'}"


def trial_runs(uri: str, experiment: str = "synced") -> dict[int, dict[str, Any]]:
    """What MLflow shows of each trial: name, status, params, final metrics, curves, hpexp tags
    and colour, model files; one run per trial number (asserted)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {uri}"
    out: dict[int, dict[str, Any]] = {}
    for run in client.search_runs([exp.experiment_id], "tags.`hpexp.trial` != ''"):
        number = int(run.data.tags["hpexp.trial"])
        assert number not in out, f"trial {number}: two runs"
        run_id = run.info.run_id
        out[number] = {
            "name": run.info.run_name,
            "status": run.info.status,
            "color": run.data.tags.get("mlflow.runColor"),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "tags": {k: v for k, v in run.data.tags.items() if k.startswith("hpexp.")},
            "curves": {
                name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
                for name in run.data.metrics
            },
            "model": sorted(a.path for a in client.list_artifacts(run_id, "model")),
        }
    return out


def study_run(uri: str, experiment: str = "synced") -> tuple[Any, set[str]]:
    """The study's parent run and its top-level artifact paths."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`hpexp.role` = 'study'")
    assert len(runs) == 1, f"{len(runs)} study runs"
    return runs[0], {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def check(where: Path, name: str, uri: str) -> list[str]:
    """`hpexp check NAME` in this process: its lines ([]: exit 0)."""
    return hpexp.check_study(name, storage=str(where / "optuna.journal"), tracking_uri=uri)


def run_id_of(uri: str, number: int, experiment: str = "synced") -> str:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`hpexp.trial` = '{number}'")
    assert len(runs) == 1
    return runs[0].info.run_id


# -- rebuilding a lost store ------------------------------------------------------------------


@pytest.mark.slow
def test_sync_rebuilds_a_deleted_store_as_it_was(tmp_path: Path) -> None:
    uri = finished_study(tmp_path)
    before = trial_runs(uri)
    statuses = [before[n]["tags"]["hpexp.status"] for n in sorted(before)]
    assert statuses == ["failed", "complete", "complete", "pruned"]
    names = [(before[n]["name"], before[n]["status"]) for n in sorted(before)]
    pruned_at = before[3]["tags"]["hpexp.pruned_at"]
    assert names == [
        ("trial-0000 · failed", "FAILED"),
        ("trial-0001", "FINISHED"),
        ("trial-0002", "FINISHED"),
        (f"trial-0003 · pruned@{pruned_at}", "FINISHED"),  # not a red cross like a failure
    ]
    for number, run in before.items():  # the trial's own metrics: no study summary
        assert not [m for m in run["metrics"] if m.startswith(("study/", "best_", "trials_"))]
        assert {m for m in run["curves"] if len(run["curves"][m]) > 1} <= {
            m for m in run["metrics"] if m.startswith("curves/")
        }, number
    parent_before, artifacts_before = study_run(uri)
    assert {"trials.csv", "plots", "best_model", "model"} <= artifacts_before

    (tmp_path / "mlflow.db").unlink()
    shutil.rmtree(tmp_path / "mlartifacts")
    synced = hpexp_cmd("sync", "synced", cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Traceback" not in synced.stdout + synced.stderr
    assert one_line(synced.stdout) == "study 'synced': 4 run(s) written; 0 stray removed"

    after = trial_runs(uri)
    assert sorted(after) == sorted(before) == [0, 1, 2, 3]
    for number, was in before.items():
        now = after[number]
        for what in ("name", "status", "color", "params", "tags", "curves", "model"):
            assert now[what] == was[what], f"trial {number}: {what}"
        assert now["metrics"] == pytest.approx(was["metrics"], rel=1e-12), f"trial {number}"
    complete = [n for n, v in after.items() if v["tags"]["hpexp.status"] == "complete"]
    assert all(any(p.endswith(".npz") for p in after[n]["model"]) for n in complete)

    parent, artifacts = study_run(uri)
    assert artifacts == artifacts_before
    assert parent.info.status == "FINISHED"
    assert parent.data.params == parent_before.data.params
    assert parent.data.tags["hpexp.best_trial"] == parent_before.data.tags["hpexp.best_trial"]
    assert parent.data.metrics == parent_before.data.metrics  # the study/... summary
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synced")
    best_trial = parent.data.tags["hpexp.best_trial"]
    best_link = f"[trial {best_trial}](#/experiments/{experiment.experiment_id}/runs/"
    best_link += run_id_of(uri, int(best_trial)) + ")"
    assert f"**Best: {best_link}**" in parent.data.tags["mlflow.note.content"]
    assert f"best {best_link}" in experiment.tags["mlflow.note.content"]
    assert "mlflow.sharedViewState.hpexp-synced" in experiment.tags
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots
    best = {a.path for a in client.list_artifacts(parent.info.run_id, "best_model")}
    assert any(p.endswith(".npz") for p in best), best

    checked = hpexp_cmd("check", "synced", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "agrees" in checked.stdout

    again = hpexp.sync_study("synced", storage=str(tmp_path / "optuna.journal"), tracking_uri=uri)
    assert (again.written, again.removed, again.missing_models) == ([], [], [])


# -- hand edits: check catches them, sync repairs them ------------------------------------------


@pytest.mark.slow
def test_check_catches_hand_edits_and_sync_repairs_them(tmp_path: Path) -> None:
    uri = finished_study(tmp_path)
    client = MlflowClient(uri)
    before = trial_runs(uri)
    complete = sorted(n for n, v in before.items() if v["tags"]["hpexp.status"] == "complete")
    assert complete == [1, 2]
    edited, deleted = complete

    # a final metric overwritten: a later value at the final step becomes the latest one
    edited_id = run_id_of(uri, edited)
    [(step, value)] = before[edited]["curves"][METRIC]
    wrong = value + 0.25
    client.log_metric(edited_id, METRIC, wrong, step=step)
    assert client.get_run(edited_id).data.metrics[METRIC] == wrong
    client.delete_run(run_id_of(uri, deleted))

    checked = hpexp_cmd("check", "synced", cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert any(line.startswith(f"trial {deleted}:") and "no MLflow run" in line for line in lines)
    assert any(line.startswith(f"trial {edited}:") and METRIC in line for line in lines), lines
    assert all(line.startswith((f"trial {edited}:", f"trial {deleted}:")) for line in lines)
    assert "hpexp sync synced" in checked.stderr

    synced = hpexp_cmd("sync", "synced", cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "2 run(s) written" in synced.stdout
    after = trial_runs(uri)
    for number in (edited, deleted):
        assert after[number]["metrics"] == pytest.approx(before[number]["metrics"], rel=1e-12)
        assert after[number]["curves"] == before[number]["curves"]
    assert check(tmp_path, "synced", uri) == []  # `hpexp check` exits 0 on [] (as above)

    # a model file lost beside the storage: check names it, sync cannot bring it back
    model = tmp_path / "hpexp-models" / "synced" / f"trial-{edited:05d}" / "model.npz"
    model.unlink()
    [line] = check(tmp_path, "synced", uri)
    assert line.startswith(f"trial {edited}: model files missing") and "trial-" in line
    report = hpexp.sync_study("synced", storage=str(tmp_path / "optuna.journal"), tracking_uri=uri)
    assert report.missing_models == [edited]


# -- a tracking server that goes away --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


class Server:
    """`mlflow server` on 127.0.0.1:port over one SQLite file; start, kill, start again."""

    def __init__(self, where: Path, port: int) -> None:
        self.where, self.port = where, port
        self.url = f"http://127.0.0.1:{port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        empty_mlflow_store(where / "srv")  # an empty, migrated store: no migration at start

    def start(self, limit: float = 180) -> None:
        cmd = [
            sys.executable,
            *("-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--backend-store-uri", f"sqlite:///{self.where / 'srv' / 'mlflow.db'}"),
            *("--default-artifact-root", str(self.where / "srvart"), "--workers", "1"),
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.where / f"server-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + limit
        while not healthy(self.url):
            assert proc.poll() is None, (
                self.where / f"server-{len(self.procs) - 1}.log"
            ).read_text()
            assert time.monotonic() < deadline, "the MLflow server never answered"
            time.sleep(0.3)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers
                proc.wait(timeout=30)


SERVED: dict[str, Any] = {
    "name": "served",
    "dataset": {"name": "iris"},
    "fixed": {"optimizer": "adam", "eval_every": 20},
    "search": {
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [800, 1600]},
        "hidden_units": {"int": [4, 32]},
    },
    "pruner": {"name": "none"},
    "budget": {"n_trials": 8},
}


def wait_for(proc: subprocess.Popen[str], ready: Any, what: str) -> None:
    deadline = time.monotonic() + HPEXP_TIMEOUT
    while not ready():
        assert proc.poll() is None, f"the study ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {HPEXP_TIMEOUT} s"
        time.sleep(0.05)


def served_study(
    where: Path, server: Server, stop_when: bytes, restart_after: float | None
) -> subprocess.CompletedProcess[str]:
    """Run SERVED against `server`; kill the server once the journal holds `stop_when`, start
    it again `restart_after` s later (None: once the study has ended)."""
    write_study(where, SERVED)
    journal = where / "optuna.journal"
    proc = start_hpexp(*RUN, "--tracking-uri", server.url, cwd=where)
    try:
        wait_for(proc, lambda: journal.exists() and stop_when in journal.read_bytes(), "moment")
        server.kill()
        if restart_after is not None:
            time.sleep(restart_after)
            server.start()
        out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    wait_for_writers(where)
    if restart_after is None:
        server.start()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_study_done_and_synced(where: Path, server: Server) -> None:
    study = journal_study(where, "served")
    assert finished_count(study) == len(study.trials) == SERVED["budget"]["n_trials"]
    synced = hpexp_cmd("sync", "served", "--tracking-uri", server.url, cwd=where)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert check(where, "served", server.url) == []
    runs = trial_runs(server.url, "served")
    assert sorted(runs) == list(range(SERVED["budget"]["n_trials"]))
    assert {v["status"] for v in runs.values()} == {"FINISHED"}


@pytest.mark.slow
def test_a_server_that_stops_mid_study_does_not_stop_it(tmp_path: Path) -> None:
    server = Server(tmp_path, free_port())
    try:
        server.start()
        # killed once the background writer has reached it (it stored the experiment id)
        proc = served_study(tmp_path, server, b'"mlflow_experiment_id"', restart_after=2.0)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert_study_done_and_synced(tmp_path, server)
    finally:
        server.kill()
        kill_writers(tmp_path)


@pytest.mark.slow
def test_a_server_gone_before_the_writer_reached_it(tmp_path: Path) -> None:
    server = Server(tmp_path, free_port())
    try:
        server.start()
        # killed as soon as the study is in the journal: the writer has not started yet
        proc = served_study(tmp_path, server, b'"op_code":0', restart_after=None)
        output = proc.stdout + proc.stderr
        assert "Traceback" not in output, output
        assert proc.returncode == 0, output
        assert "hpexp sync served" in proc.stderr
        assert_study_done_and_synced(tmp_path, server)
    finally:
        server.kill()
        kill_writers(tmp_path)


@pytest.mark.slow
def test_an_unreachable_server_is_refused_at_once(tmp_path: Path) -> None:
    write_study(tmp_path, SERVED)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", *RUN, "--tracking-uri", "http://127.0.0.1:9"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - start
    start = time.monotonic()  # hpexp's own start-up, refused before it loads anything
    bad = hpexp_cmd(*RUN, "--tracking-uri", "bogus://x", cwd=tmp_path, timeout=60)
    startup = time.monotonic() - start
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("hpexp: error: ") and "127.0.0.1:9" in line
    # 10 s on an idle machine; on a loaded one, at most 5 s more than hpexp takes to start
    assert took < 10 or took - startup < 5, f"{took:.1f} s to refuse ({startup:.1f} s start-up)"
    assert sorted(os.listdir(tmp_path)) == ["study.yaml"]  # no optuna.journal, nothing else
