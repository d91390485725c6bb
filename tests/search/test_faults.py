"""Faults a real study process meets: signals at random moments, a changed study, damaged
stores. Every test runs `python -m hpexp` in a scratch folder and checks what it left.

The Optuna journal is the truth; MLflow is a projection written behind the search by a
background process (`hpexp.background`), which these tests wait for before looking.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import hpexp
from hpexp.search.runner import finished_count
from hpexp.search.states import trial_status

from .conftest import (
    HPEXP_TIMEOUT,
    assert_agree,
    empty_mlflow_store,
    hpexp_cmd,
    hpexp_env,
    journal_study,
    kill_writers,
    one_line,
    params_key,
    start_hpexp,
    tiny,
    wait_for_writers,
    write_study,
)

RESUME = "run the same command again to resume"
RUN = ("run", "study.yaml", "--no-progress")

# -- signals at random moments ----------------------------------------------------------------

#: Six trials of 0.3-1.5 s each on a busy machine: long enough to be stopped in the middle.
FAULTS: dict[str, Any] = tiny(
    name="faults",
    fixed={"optimizer": "adam", "eval_every": 20},
    search={
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [400, 800]},
        "hidden_layers": {"int": [1, 2]},
        "hidden_units": {"int": [4, 32], "per_layer": True},
        "activation": {"choice": ["relu", "tanh"]},
    },
    pruner={"name": "median", "n_startup_trials": 2, "n_warmup_steps": 100},
    budget={"n_trials": 6},
)

FINISHED_STATES = (1, 2, 3)  # Optuna TrialState COMPLETE, PRUNED, FAIL in journal records


def journal_progress(path: Path) -> tuple[int, int]:
    """(bytes in the journal, trial-end records in it); (-1, 0) while there is no journal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return -1, 0
    ended = 0
    for line in data.splitlines():
        if b'"op_code":6' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a record being written
            continue
        ended += record.get("state") in FINISHED_STATES
    return len(data), ended


#: Where each run of a study is stopped: (signal, trials this run ends first, then seconds).
#: 0 trials means "once the run has written to the journal": while the study is being
#: created. One moment early, one in the middle, one late; the exact points such moments can
#: hit (a journal write, `study.ask()`, training, opening, the MLflow writer's end) have tests
#: of their own below. Ctrl-C and SIGTERM share a sequence: the same handler stops the run.
Stop = tuple[signal.Signals, int, float]
STOPS: dict[str, list[Stop]] = {
    "kill-9": [(signal.SIGKILL, 0, 0.3), (signal.SIGKILL, 1, 0.2), (signal.SIGKILL, 3, 0.6)],
    "sigint-sigterm": [(signal.SIGINT, 0, 0.3), (signal.SIGTERM, 1, 0.2), (signal.SIGINT, 3, 0.6)],
}


def stop_at(
    where: Path, sig: signal.Signals, ended: int, delay: float
) -> tuple[bool, subprocess.CompletedProcess[str]]:
    """Start the study, send `sig` `delay` s after it ended `ended` trials (0: after its first
    write to the journal); returns (whether the signal was sent, the finished process). Waits
    for the background writer too."""
    journal = where / "optuna.journal"
    size0, ended0 = journal_progress(journal)
    proc = start_hpexp(*RUN, cwd=where)
    try:
        deadline = time.monotonic() + HPEXP_TIMEOUT
        while proc.poll() is None:
            size, now = journal_progress(journal)
            if (size != size0) if ended == 0 else (now - ended0 >= ended):
                break
            assert time.monotonic() < deadline, "the study never got to the moment"
            time.sleep(0.02)
        time.sleep(delay)
        sent = proc.poll() is None
        if sent:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    wait_for_writers(where)
    return sent, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_no_replayed_configuration(trials: list) -> None:
    """Among trials that count (complete, pruned, failed), a configuration appears once, but
    for re-runs (`retry_of`) of interrupted trials. A re-run carries the params of the trial
    it re-runs and of that trial's own origin, if it was a re-run too (a trial interrupted
    while its configuration was being suggested has only some params: the re-run completes
    them)."""
    by_number = {t.number: t for t in trials}
    seen: dict[tuple, list[int]] = {}
    for t in trials:
        origin = t
        while "retry_of" in origin.user_attrs:
            origin = by_number[origin.user_attrs["retry_of"]]
            assert trial_status(origin) == "interrupted", (t.number, origin.number)
            cut_short = trial_status(t) == "interrupted"  # may hold only some params
            missing = {
                k: v
                for k, v in origin.params.items()
                if t.params.get(k) != v and (k in t.params or not cut_short)
            }
            assert missing == {}, f"re-run {t.number} of trial {origin.number} changed {missing}"
        if trial_status(t) in ("complete", "pruned", "failed"):
            seen.setdefault(params_key(t.params), []).append(t.number)
    for numbers in seen.values():
        fresh = [n for n in numbers if "retry_of" not in by_number[n].user_attrs]
        assert len(fresh) <= 1, f"trials {numbers} ran the same configuration"


def assert_nothing_running(result: hpexp.StudyResult) -> None:
    """No trial RUNNING in Optuna, no trial run RUNNING in MLflow."""
    assert [t.number for t in result.study.trials if t.state.name == "RUNNING"] == []
    client = MlflowClient(result.tracking_uri)
    exp = client.get_experiment_by_name(result.spec.experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`hpexp.trial` != ''")
    assert [r.data.tags["hpexp.trial"] for r in runs if r.info.status == "RUNNING"] == []


@pytest.mark.slow
@pytest.mark.parametrize("stops", STOPS.values(), ids=STOPS.keys())
def test_stopped_early_midway_and_late_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stops: list[Stop]
) -> None:
    write_study(tmp_path, FAULTS)
    if stops[0][0] != signal.SIGKILL:  # kill -9 also meets the creation of mlflow.db by the writer
        empty_mlflow_store(tmp_path)
    log = []
    try:
        for sig, ended, delay in stops:
            sent, proc = stop_at(tmp_path, sig, ended, delay)
            where = f"{sig.name} after {ended} trial(s) + {delay} s"
            log.append(f"{where}: sent={sent} rc={proc.returncode}")
            output = proc.stdout + proc.stderr
            assert "Traceback" not in output, f"{where}:\n{output}"
            if not sent:  # it finished first
                assert proc.returncode == 0, f"{where}:\n{output}"
            elif sig == signal.SIGKILL:
                assert proc.returncode == -signal.SIGKILL
            else:
                assert proc.returncode == 128 + sig, f"{where}:\n{output}"
                assert RESUME in proc.stdout, f"{where}:\n{output}"
        final = hpexp_cmd(*RUN, cwd=tmp_path)
        assert final.returncode == 0, final.stdout + final.stderr
        assert "Traceback" not in final.stdout + final.stderr
    finally:
        kill_writers(tmp_path)

    monkeypatch.chdir(tmp_path)
    result = hpexp.load_study("faults")
    trials = result.study.trials
    assert finished_count(result.study) == FAULTS["budget"]["n_trials"], log
    assert_no_replayed_configuration(trials)
    for t in trials:  # every interrupted trial was re-queued exactly once
        if trial_status(t) == "interrupted":
            retries = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
            assert len(retries) == 1, (t.number, log)
    assert_nothing_running(result)
    assert_agree(result)


# -- the same faults, at the exact moments the random ones above can hit -----------------------
# A child process runs hpexp's CLI with one function wrapped so that a real signal reaches the
# process at a chosen point: the wrapper sends it to its own process (`os.kill`), and Python
# runs the handler right there, at the next bytecode boundary.

SHORT = tiny(
    name="short",
    fixed={"optimizer": "adam", "eval_every": 20},
    search={
        "learning_rate": {"float": [0.005, 0.1], "log": True},
        "iterations": {"int": [200, 400]},
        "hidden_units": {"int": [4, 16]},
    },
    budget={"n_trials": 2},
)

#: Runs `hpexp run study.yaml --no-progress` after the patch in the same process.
PATCHED_RUN = "{patch}\nfrom hpexp.cli import main\nraise SystemExit(main({args!r}))"

#: Ctrl-C right after Optuna's journal lock was released (`os.unlink` of the renamed lock file
#: done, the `try` around it not yet left), while the first trial reports to the pruner.
SIGNAL_IN_LOCK_RELEASE = """
import os, signal
import hpexp.search.objective as objective
real_unlink, real_train, armed = os.unlink, objective.train, []
def unlink(path, *args, **kwargs):
    real_unlink(path, *args, **kwargs)
    if armed and str(path).endswith(".rename"):
        armed.clear()
        os.kill(os.getpid(), signal.SIGINT)
def train(*args, **kwargs):
    armed.append(True)
    return real_train(*args, **kwargs)
os.unlink, objective.train = unlink, train
"""

#: Ctrl-C while Optuna builds the new trial inside `study.ask()`: the trial exists (RUNNING)
#: but hpexp has not yet tagged it with its worker (host:pid).
SIGNAL_IN_ASK = """
import os, signal
import optuna
real, fired = optuna.samplers.TPESampler.before_trial, []
def before_trial(self, study, trial):
    if not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)
    return real(self, study, trial)
optuna.samplers.TPESampler.before_trial = before_trial
"""

#: Ctrl-C while the first trial trains.
SIGNAL_IN_TRAINING = """
import os, signal
import hpexp.search.objective as objective
real = objective.train
def train(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)
objective.train = train
"""

#: kill -9 while the re-run of an interrupted trial is being suggested, after `learning_rate`.
KILL_IN_SUGGEST = """
import os, signal
import optuna
real = optuna.trial.Trial.suggest_int
def suggest_int(self, name, *args, **kwargs):
    if name == "iterations" and "retry_of" in self.user_attrs:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, name, *args, **kwargs)
optuna.trial.Trial.suggest_int = suggest_int
"""

#: Opening the study takes a while (a big journal, a slow disk): 3 s in `_recover`.
SLOW_OPEN = """
import time
import hpexp.search.runner as runner
real = runner._recover
def slow(study):
    time.sleep(3)
    return real(study)
runner._recover = slow
"""


def patched_run(where: Path, patch: str, *args: str) -> subprocess.Popen[str]:
    code = PATCHED_RUN.format(patch=patch, args=["run", "study.yaml", "--no-progress", *args])
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=where,
        env=hpexp_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], where: Path) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    wait_for_writers(where)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_until(proc: subprocess.Popen[str], ready: Any, what: str) -> None:
    deadline = time.monotonic() + HPEXP_TIMEOUT
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {HPEXP_TIMEOUT} s"
        time.sleep(0.02)


def assert_stopped_cleanly(
    proc: subprocess.CompletedProcess[str], sig: int = signal.SIGINT
) -> None:
    """Exit 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), the resume hint on
    stdout, no traceback (of the study or of its writer)."""
    output = proc.stdout + proc.stderr
    problems = []
    if proc.returncode != 128 + sig:
        problems.append(f"exit code {proc.returncode}")
    if RESUME not in proc.stdout:
        problems.append("no resume hint")
    if "Traceback" in output:
        problems.append("a traceback")
    assert problems == [], output


def fresh_short_study(where: Path) -> None:
    write_study(where, SHORT)
    empty_mlflow_store(where)


@pytest.mark.slow
def test_interrupt_during_a_journal_write_stops_at_a_safe_point(tmp_path: Path) -> None:
    """Ctrl-C inside the first journal write after training began (the trial's learning curve,
    written in one append when its training ends) waits for the write: the trial is recorded
    whole, with its curve, never as "failed: error: ...", and then the study stops."""
    fresh_short_study(tmp_path)
    proc = finish(patched_run(tmp_path, SIGNAL_IN_LOCK_RELEASE), tmp_path)
    trials = journal_study(tmp_path, "short").trials
    reasons = [t.user_attrs.get("fail_reason") for t in trials]
    assert trial_status(trials[0]) == "complete", reasons
    assert trials[0].intermediate_values  # the curve that was being written
    assert finished_count(journal_study(tmp_path, "short")) == 1
    assert_stopped_cleanly(proc)


@pytest.mark.slow
def test_interrupt_inside_ask_leaves_no_running_trial(tmp_path: Path) -> None:
    fresh_short_study(tmp_path)
    stopped = finish(patched_run(tmp_path, SIGNAL_IN_ASK), tmp_path)
    assert_stopped_cleanly(stopped)
    trials = journal_study(tmp_path, "short").trials
    running = [(t.number, t.user_attrs) for t in trials if t.state.name == "RUNNING"]
    assert running == []  # closed by the run that was stopped: no later run has to guess
    assert trial_status(trials[0]) == "interrupted"


@pytest.mark.slow
def test_a_re_run_interrupted_again_keeps_its_configuration(tmp_path: Path) -> None:
    fresh_short_study(tmp_path)
    first = finish(patched_run(tmp_path, SIGNAL_IN_TRAINING), tmp_path)
    assert first.returncode == 130, first.stdout + first.stderr
    second = finish(patched_run(tmp_path, KILL_IN_SUGGEST), tmp_path)  # the re-run of 0
    assert second.returncode == -signal.SIGKILL, second.stdout + second.stderr
    third = hpexp_cmd(*RUN, cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    trials = journal_study(tmp_path, "short").trials
    origin = trials[0]
    (rerun,) = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert trial_status(origin) == "interrupted" and trial_status(rerun) == "interrupted"
    chain = [t for t in trials if t.user_attrs.get("retry_of") == rerun.number]
    assert len(chain) == 1
    assert chain[0].params == origin.params, "the re-run of the re-run ran another configuration"
    counted = [t for t in trials if trial_status(t) in ("complete", "pruned", "failed")]
    assert [t.number for t in counted if t.params == origin.params], "never run"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_while_the_study_is_opened(tmp_path: Path, sig: signal.Signals) -> None:
    fresh_short_study(tmp_path)
    journal = tmp_path / "optuna.journal"
    proc = patched_run(tmp_path, SLOW_OPEN)
    try:
        wait_until(proc, lambda: journal_progress(journal)[0] > 0, "study in the journal")
        time.sleep(1.0)  # inside the 3 s of opening
        proc.send_signal(sig)
    finally:
        stopped = finish(proc, tmp_path)
    assert_stopped_cleanly(stopped, sig)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_while_mlflow_is_written_at_the_end(tmp_path: Path, sig: signal.Signals) -> None:
    fresh_short_study(tmp_path)
    journal = tmp_path / "optuna.journal"
    n = SHORT["budget"]["n_trials"]
    proc = start_hpexp(*RUN, cwd=tmp_path)
    try:
        wait_until(proc, lambda: journal_progress(journal)[1] >= n, "end of the last trial")
        time.sleep(1.0)  # the trials are over; the study waits for its MLflow writer
        if proc.poll() is not None:
            pytest.skip("MLflow was written too fast to be interrupted")
        proc.send_signal(sig)
    finally:
        stopped = finish(proc, tmp_path)
    assert_stopped_cleanly(stopped, sig)


# -- a resumed study never replays its proposals ----------------------------------------------

REPLAY = tiny(
    name="replay", sampler={"name": "tpe", "n_startup_trials": 10}, budget={"n_trials": 4}
)


@pytest.mark.slow
def test_resume_never_replays_and_a_fresh_study_reproduces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = tmp_path / "first", tmp_path / "other"
    for where in (first, other):
        where.mkdir()
        write_study(where, REPLAY)
        empty_mlflow_store(where)
    try:
        procs = [start_hpexp(*RUN, cwd=where) for where in (first, other)]  # side by side
        for proc in procs:
            out, err = proc.communicate(timeout=HPEXP_TIMEOUT)
            assert proc.returncode == 0, out + err
        resumed = hpexp_cmd(*RUN, "--n-trials", "8", cwd=first)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        for where in (first, other):
            kill_writers(where)

    trials = journal_study(first, "replay").trials
    assert [trial_status(t) for t in trials] == ["complete"] * 8  # no duplicate proposal
    before = {params_key(t.params): t.number for t in trials[:4]}
    replayed = [(t.number, before[k]) for t in trials[4:] if (k := params_key(t.params)) in before]
    assert replayed == [], "resumed trials equal to earlier ones (new, old)"
    fresh = journal_study(other, "replay").trials
    assert [t.params for t in fresh] == [t.params for t in trials[:4]]
    monkeypatch.chdir(first)
    assert_agree(hpexp.load_study("replay"))


# -- a changed study is refused before anything is written ------------------------------------


def snapshot(where: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """(size, mtime_ns, bytes of the two stores) of every file under `where`; SQLite's own
    companions of a write-ahead-log store (-wal, -shm), which opening it makes, left out."""
    out = {}
    for path in sorted(where.rglob("*")):
        if path.name.endswith(("-wal", "-shm")):
            continue
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            data = path.read_bytes() if path.name in ("optuna.journal", "mlflow.db") else None
            out[str(path.relative_to(where))] = (st.st_size, st.st_mtime_ns, data)
    return out


@pytest.mark.slow
def test_changed_identity_is_refused_and_a_bigger_budget_is_not(tmp_path: Path) -> None:
    write_study(tmp_path, tiny(name="ident", budget={"n_trials": 1}))
    empty_mlflow_store(tmp_path)
    momentum = ("--set", "fixed.optimizer=momentum")
    created = hpexp_cmd(*RUN, *momentum, cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    before = snapshot(tmp_path)

    refused = hpexp_cmd(*RUN, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    line = one_line(refused.stderr)
    assert line.startswith("hpexp: error: ") and "fixed.optimizer" in line
    assert refused.stdout == ""
    assert snapshot(tmp_path) == before, "a refused run changed the stores"

    bigger = hpexp_cmd(*RUN, *momentum, "--n-trials", "2", cwd=tmp_path)
    assert bigger.returncode == 0, bigger.stdout + bigger.stderr
    assert finished_count(journal_study(tmp_path, "ident")) == 2


# -- a damaged journal --------------------------------------------------------------------------


@pytest.mark.slow
def test_cut_journal_is_repaired_and_damage_in_the_middle_is_refused(tmp_path: Path) -> None:
    write_study(tmp_path, tiny(name="cut", budget={"n_trials": 2}))
    empty_mlflow_store(tmp_path)
    journal = tmp_path / "optuna.journal"
    assert hpexp_cmd(*RUN, cwd=tmp_path).returncode == 0
    old = {t.number: (t.state, t.params, t.values) for t in journal_study(tmp_path, "cut").trials}

    # a crash while the last record was written: half of it is on disk, no line end
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    cut_trial = json.loads(last).get("trial_id")  # the trial that record was about, if any
    journal.write_bytes(data[: len(data) - len(last) // 2 - 1])
    repaired = hpexp_cmd(*RUN, "--n-trials", "3", cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "Traceback" not in repaired.stdout + repaired.stderr
    warnings = [line for line in repaired.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, repaired.stderr
    assert "optuna.journal" in warnings[0] and "dropped" in warnings[0]
    assert list(tmp_path.glob("optuna.journal.dropped-*")), "the dropped bytes were not kept"
    study = journal_study(tmp_path, "cut")
    assert finished_count(study) == 3
    now = {t.number: (t.state, t.params, t.values) for t in study.trials}
    for number, kept in old.items():
        if number != cut_trial:
            assert now[number] == kept, f"trial {number} changed"

    # damage followed by good records: nothing is changed, one line names the line
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:3], b"this is not a journal record\n", *lines[3:]])
    journal.write_bytes(damaged)
    refused = hpexp_cmd(*RUN, "--n-trials", "4", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    line = one_line(refused.stderr)
    assert line.startswith("hpexp: error: ") and "line 4" in line
    assert journal.read_bytes() == damaged


# -- a half-created MLflow store ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("alembic_version", [False, True], ids=["bare", "mid-migration"])
def test_half_created_mlflow_store_is_refused(tmp_path: Path, alembic_version: bool) -> None:
    write_study(tmp_path, tiny(name="half", budget={"n_trials": 1}))
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        con.execute("create table _alembic_tmp_params (key text, value text)")
        if alembic_version:
            con.execute("create table alembic_version (version_num text)")
            con.execute("insert into alembic_version values ('0584bdc529eb')")
    before = (tmp_path / "mlflow.db").read_bytes()
    proc = hpexp_cmd(*RUN, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    line = one_line(proc.stderr)
    assert "mlflow.db" in line and "move it away" in line and "hpexp sync" in line
    assert not (tmp_path / "optuna.journal").exists()
    assert (tmp_path / "mlflow.db").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["mlflow.db", "study.yaml"]
