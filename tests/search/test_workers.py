"""Many workers on one host: `--workers N`, several `hpexp run` processes at once, workers
killed mid-trial, a stopped pool resumed. Real processes on the journal storage."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

import hpexp
from hpexp.cli import main
from hpexp.search.states import counts_against_budget, retry_of, trial_status
from tests.conftest import wait_until

from .conftest import (
    HPEXP_TIMEOUT,
    empty_mlflow_store,
    hpexp_cmd,
    journal_study,
    one_line,
    params_key,
    start_hpexp,
    tiny,
    wait_for_writers,
    worker_pids,
    write_study,
)

#: Trials long enough (about a second) to be killed in the middle.
LONGER = tiny(
    name="longer",
    search={
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [1500, 3000]},
        "hidden_units": {"int": [16, 64], "per_layer": True},
        "hidden_layers": {"int": [1, 2]},
    },
)


def assert_whole(where: Path, name: str, n_trials: int) -> None:
    """Exactly `n_trials` counted, nothing RUNNING, no configuration run twice unless asked,
    every interrupted trial re-run, and MLflow agrees (`hpexp check`, in this process)."""
    study = journal_study(where, name)
    trials = study.get_trials(deepcopy=False)
    assert sum(counts_against_budget(t) for t in trials) == n_trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    counted = [params_key(t.params) for t in trials if counts_against_budget(t)]
    repeats = [k for k, c in Counter(counted).items() if c > 1]
    reruns = {params_key(t.params) for t in trials if retry_of(t) is not None}
    assert set(repeats) <= reruns, "a configuration ran twice without being asked to"
    interrupted = [t.number for t in trials if trial_status(t) == "interrupted"]
    retried = {retry_of(t) for t in trials}
    assert set(interrupted) <= retried, "an interrupted trial was not re-run"
    storage, tracking = str(where / "optuna.journal"), f"sqlite:///{where / 'mlflow.db'}"
    assert hpexp.check_study(name, storage=storage, tracking_uri=tracking) == []


@pytest.mark.slow
def test_workers_share_the_study_and_end_with_exactly_the_budget(tmp_path: Path) -> None:
    empty_mlflow_store(tmp_path)
    doc = tiny(budget={"n_trials": 6}, workers=2)
    doc["search"]["iterations"] = {"int": [1500, 2000]}  # long enough for both to start
    path = write_study(tmp_path, doc)
    done = hpexp_cmd("run", str(path), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # one summary for all: 6 trials count (a duplicate proposal, skipped, may come on top)
    counts = re.search(r"(\d+) complete, (\d+) pruned, (\d+) failed", done.stdout)
    assert counts is not None and sum(map(int, counts.groups())) == 6, done.stdout
    trials = journal_study(tmp_path, "tiny").get_trials(deepcopy=False)
    workers = Counter(t.user_attrs["worker"] for t in trials if counts_against_budget(t))
    assert len(workers) == 2, workers
    assert_whole(tmp_path, "tiny", 6)


@pytest.mark.slow
def test_processes_started_together_on_fresh_stores(tmp_path: Path) -> None:
    path = write_study(tmp_path, tiny(budget={"n_trials": 6}))
    procs = [start_hpexp("run", str(path), "--no-progress", cwd=tmp_path) for _ in range(3)]
    outputs = [p.communicate(timeout=HPEXP_TIMEOUT) for p in procs]
    wait_for_writers(tmp_path)
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    assert_whole(tmp_path, "tiny", 6)


@pytest.mark.slow
def test_two_of_four_workers_killed_mid_trial(tmp_path: Path) -> None:
    empty_mlflow_store(tmp_path)
    path = write_study(tmp_path, dict(LONGER, budget={"n_trials": 6}))
    proc = start_hpexp("run", str(path), "--workers", "4", "--no-progress", cwd=tmp_path)

    def running_by(pids: list[int]) -> list[int]:
        study = journal_study(tmp_path, "longer")
        owners = [t.user_attrs.get("worker", "") for t in study.get_trials(deepcopy=False)
                  if t.state == TrialState.RUNNING]  # fmt: skip
        return [p for p in pids if any(o.endswith(f":{p}") for o in owners)]

    wait_until(lambda: len(worker_pids(tmp_path)) == 4, what="4 workers")
    wait_until(lambda: (tmp_path / "optuna.journal").exists(), what="the journal")
    wait_until(lambda: len(running_by(worker_pids(tmp_path))) >= 2, what="2 running trials")
    victims = running_by(worker_pids(tmp_path))[:2]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
    wait_for_writers(tmp_path)
    assert proc.returncode == 0, err
    assert err.count("stopped (signal 9)") == 2, err
    study = journal_study(tmp_path, "longer")
    interrupted = [t for t in study.trials if trial_status(t) == "interrupted"]
    assert len(interrupted) == 2
    assert {t.user_attrs["worker"].split(":")[1] for t in interrupted} == set(map(str, victims))
    assert_whole(tmp_path, "longer", 6)


@pytest.mark.slow
def test_a_stopped_pool_stops_every_worker_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C, then SIGTERM on the resumed run: each stops every worker, exits 128 + its
    number with one resume hint, and leaves nothing RUNNING; the third run ends the study."""
    empty_mlflow_store(tmp_path)
    path = write_study(tmp_path, dict(LONGER, budget={"n_trials": 6}))
    for finished, sig in enumerate((signal.SIGINT, signal.SIGTERM), start=1):
        proc = start_hpexp("run", str(path), "--workers", "2", "--no-progress", cwd=tmp_path)
        wait_until(lambda: len(worker_pids(tmp_path)) == 2, what="2 workers")
        wait_until(
            lambda n=finished: (  # type: ignore[misc]
                (tmp_path / "optuna.journal").exists()
                and sum(t.state.is_finished() for t in journal_study(tmp_path, "longer").trials)
                >= n
            ),
            what=f"{finished} finished trial(s)",
        )
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
        assert proc.returncode == 128 + sig, err  # 130 for Ctrl-C, 143 for SIGTERM
        assert out.count("interrupted: run the same command again") == 1, out  # not per worker
        assert worker_pids(tmp_path) == []
        study = journal_study(tmp_path, "longer")
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
        wait_for_writers(tmp_path)
    again = hpexp_cmd("run", str(path), "--workers", "2", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_whole(tmp_path, "longer", 6)


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`hpexp ARGV` in this process: exit code 2, no journal made; its one line on stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert not Path("optuna.journal").exists()
    return one_line(err)


@pytest.mark.parametrize("value", ["0", "-1", "9999", "many"])
def test_bad_worker_counts_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = write_study(workdir, tiny())
    line = refused(capsys, "run", str(path), f"--workers={value}")
    assert "--workers" in line and "auto" in line


def test_bad_workers_in_the_study_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(workdir, tiny(workers=0))
    assert "workers" in refused(capsys, "run", str(path))


@pytest.mark.slow
def test_studies_writing_one_sqlite_store_at_once(tmp_path: Path) -> None:
    """Three studies, three processes, one `mlflow.db`: no "database is locked", no lost run."""
    empty_mlflow_store(tmp_path)
    names = ["one", "two", "three"]
    paths = [write_study(tmp_path, tiny(name=n), f"{n}.yaml") for n in names]
    procs = [start_hpexp("run", str(p), "--no-progress", cwd=tmp_path) for p in paths]
    outputs = [p.communicate(timeout=HPEXP_TIMEOUT) for p in procs]
    wait_for_writers(tmp_path)
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err and "warning" not in err, err
    for name in names:
        assert_whole(tmp_path, name, 4)
