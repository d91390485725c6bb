"""Shared pieces for study tests: a scratch working directory and tiny study documents."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

import hpexp
from hpexp.search.proposer import PROCESS_NAME as PROPOSER
from hpexp.search.states import trial_status
from hpexp.tracking import RUN_STATUS
from hpexp.workers import WORKER_NAME

from ..conftest import empty_mlflow_store

__all__ = ["empty_mlflow_store"]  # shared with the fault tests, which import it from here

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "iris"},
    "fixed": {"optimizer": "adam", "eval_every": 5},
    "search": {
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [20, 60]},
        "hidden_layers": {"int": [1, 2]},
        "hidden_units": {"int": [2, 16], "per_layer": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "pruner": {"name": "none"},
    "budget": {"n_trials": 4},
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A copy of the tiny iris study with top-level keys replaced."""
    doc = copy.deepcopy(TINY)
    doc.update(changes)
    return doc


def run(doc: dict[str, Any], **kwargs: Any) -> hpexp.StudyResult:
    kwargs.setdefault("wait_for_mlflow", True)
    return hpexp.run_study(doc, progress=False, verbose=False, **kwargs)


def searched(doc: dict[str, Any]) -> optuna.Study:
    """The search loop of `run` alone (sampler, proposer, pruner, budget, storage in the working
    directory), without MLflow: for tests of the search that do not look at the projection."""
    from hpexp.search.factories import models_root
    from hpexp.search.objective import ModelFiles, Objective
    from hpexp.search.runner import open_study, optimize, quiet_optuna
    from hpexp.search.spec import load_spec, study_dataset

    spec = load_spec(doc)
    with quiet_optuna():
        study = open_study(spec)
        models = ModelFiles(models_root(spec.storage) / spec.name)
        objective = Objective(spec, study_dataset(spec.dataset), models)
        optimize(study, spec, objective, n_trials=spec.n_trials, timeout=spec.timeout)
    return study


def child_runs(result: hpexp.StudyResult) -> list:
    from mlflow.tracking import MlflowClient  # here: importing MLflow costs every test run 2 s

    client = MlflowClient(result.tracking_uri)
    exp = client.get_experiment_by_name(result.spec.experiment)
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )


def run_of(result: hpexp.StudyResult, number: int):
    """Trial `number`'s MLflow run (exactly one must exist)."""
    runs = [r for r in child_runs(result) if r.data.tags["hpexp.trial"] == str(number)]
    assert len(runs) == 1, f"trial {number}: {len(runs)} runs"
    return runs[0]


def assert_agree(result: hpexp.StudyResult) -> None:
    """Optuna and MLflow tell the same story: one child run per finished trial, same params
    and state, and `hpexp check` finds nothing."""
    runs = child_runs(result)
    finished = [t for t in result.study.trials if t.state.is_finished()]
    assert len(runs) == len(finished)
    for t in finished:
        run = run_of(result, t.number)
        assert run.data.tags["hpexp.state"] == t.state.name
        assert run.info.status == RUN_STATUS[trial_status(t)]
        for name, value in t.params.items():
            assert run.data.params[name] == str(value)
    assert (
        hpexp.check_study(
            result.name, storage=result.spec.storage, tracking_uri=result.tracking_uri
        )
        == []
    )


# -- real processes (test_faults.py, tests/tracking/test_sync.py) ------------------------------
# -- helpers for tests that run `python -m hpexp` in a scratch folder and look at what it
# left behind. Every wait has a limit.

HPEXP_TIMEOUT = 240  # seconds any one `hpexp` command may take on a busy 2-core machine


def write_study(where: Path, doc: dict[str, Any], name: str = "study.yaml") -> Path:
    path = where / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def hpexp_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


def hpexp_cmd(
    *args: str, cwd: Path, timeout: float = HPEXP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`python -m hpexp ARGS` in `cwd`, output captured; waits for its background writer too."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env=hpexp_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wait_for_writers(cwd)
    return proc


def start_hpexp(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env=hpexp_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _live_in(where: Path) -> list[tuple[int, list[bytes], str]]:
    """(pid, argv, name) of the live processes whose working directory is `where` (they may
    run in sessions of their own, so /proc is the way to find them); zombies are not alive."""
    where = where.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            name = (entry / "comm").read_text().strip()
        except (OSError, IndexError):  # gone, or not ours
            continue
        if cwd == where and state != "Z":
            found.append((int(entry.name), argv, name))
    return found


def pids_in(where: Path, module: bytes) -> list[int]:
    """Live processes `python -m <module>` working in `where`; proposers forked from them
    (same command line) are not counted."""
    return [pid for pid, argv, name in _live_in(where) if module in argv and name != PROPOSER]


def worker_pids(where: Path) -> list[int]:
    """Live workers of `--workers N` working in `where`: forked from the study process (named
    `hpexp-worker`) or started as `python -m hpexp.workers`."""
    return sorted(
        pid
        for pid, argv, name in _live_in(where)
        if name == WORKER_NAME or (b"hpexp.workers" in argv and name != PROPOSER)
    )


def writer_pids(where: Path) -> list[int]:
    """Live background MLflow writers (`python -m hpexp.background`) working in `where`."""
    return pids_in(where, b"hpexp.background")


def wait_for_writers(where: Path, limit: float = HPEXP_TIMEOUT) -> None:
    """Block until no background MLflow writer works in `where`; fail after `limit` s."""
    deadline = time.monotonic() + limit
    while writer_pids(where):
        if time.monotonic() > deadline:
            kill_writers(where)
            raise AssertionError(f"a background MLflow writer in {where} ran over {limit} s")
        time.sleep(0.2)


def kill_writers(where: Path) -> None:
    """SIGKILL the background writers a test left in `where` (by pid; cleanup only)."""
    for pid in writer_pids(where):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def journal_study(where: Path, name: str) -> optuna.Study:
    """Study `name` as the journal in `where` holds it now (read only: no repair)."""
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(where / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def one_line(text: str) -> str:
    """The single non-empty line of `text` (asserts there is exactly one)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]
