"""A trial's MLflow run shows that trial only and says how it ended: its name, status, tags and
metrics for each way a trial ends; what `hpexp check` compares and `hpexp sync` rebuilds; the
saved view and the notes that the UI opens on (`hpexp.tracking.views`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.entities import Metric
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpexp.search.objective import ModelFiles
from hpexp.search.spec import load_spec
from hpexp.sync import trial_record
from hpexp.tracking.projection import CURVES, Projection, TrialRecord
from hpexp.tracking.views import (
    GREY,
    Summary,
    notes,
    run_name,
    studies_with_views,
    trials_view,
    view_path,
)

from ..conftest import empty_mlflow_store

CURVE = ([25, 50, 75], [0.5, 0.8, 0.9])
FINALS = {"val_accuracy": 0.91, "test_accuracy": 0.88, "n_params": 120.0, "train_seconds": 0.2}
PARAMS = {"learning_rate": "0.01", "activation": "relu"}

#: kind: (Optuna state, hpexp status, pruned at, run name, MLflow status, grey?)
KINDS: dict[str, tuple[str, str, int | None, str, str, bool]] = {
    "complete": ("COMPLETE", "complete", None, "trial-0007", "FINISHED", False),
    "pruned": ("PRUNED", "pruned", 50, "trial-0007 · pruned@50", "FINISHED", True),
    "failed": ("FAIL", "failed", None, "trial-0007 · failed", "FAILED", True),
    "interrupted": ("FAIL", "interrupted", None, "trial-0007 · interrupted", "KILLED", True),
    "duplicate": ("FAIL", "duplicate", None, "trial-0007 · duplicate", "KILLED", True),
}


def record(kind: str, number: int = 7) -> TrialRecord:
    state, status, pruned_at, *_ = KINDS[kind]
    finished = kind in ("complete", "pruned")
    return TrialRecord(
        number=number,
        state=state,
        params=PARAMS,
        status=status,
        pruned_at=pruned_at,
        tags={"hpexp.repeats": "1"},
        metrics=FINALS if finished else {},
        curves={"val_accuracy": CURVE, "train_cost": ([25, 50], [1.0, 0.7])},
    )


@pytest.fixture
def projection(tmp_path: Path) -> Iterator[Projection]:
    empty_mlflow_store(tmp_path)
    projection = Projection(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp", "study")
    projection.open_study(None, {"dataset": "iris"}, {})
    yield projection


def the_run(projection: Projection, number: int = 7) -> Any:
    [run] = projection.trial_runs(number)[number]
    return run


# -- one trial's run ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_run_says_how_its_trial_ended(projection: Projection, kind: str) -> None:
    _, status, pruned_at, name, mlflow_status, grey = KINDS[kind]
    projection.write([record(kind)])
    run = the_run(projection)
    assert run.info.run_name == name
    assert run.info.status == mlflow_status
    tags = run.data.tags
    assert tags["hpexp.status"] == status and tags["hpexp.role"] == "trial"
    assert tags.get("hpexp.pruned_at") == (str(pruned_at) if pruned_at else None)
    assert tags.get("mlflow.runColor") == (GREY if grey else None)
    assert tags["mlflow.parentRunId"] == projection.parent_run_id
    assert projection.check([record(kind)]) == []


def test_pruned_and_failed_trials_look_different_in_the_runs_table(
    projection: Projection,
) -> None:
    projection.write([record("pruned", 1), record("failed", 2), record("complete", 3)])
    runs = {n: r[0] for n, r in projection.trial_runs().items()}
    looks = {n: (r.info.run_name, r.info.status) for n, r in runs.items()}
    assert looks == {
        1: ("trial-0001 · pruned@50", "FINISHED"),  # a tick: the pruner's decision
        2: ("trial-0002 · failed", "FAILED"),  # a red cross
        3: ("trial-0003", "FINISHED"),
    }


def test_a_trial_run_carries_only_its_own_metrics(projection: Projection) -> None:
    projection.write([record("complete")])
    projection.close_study("FINISHED", metrics={"study/best_val_accuracy": 0.91})
    run = the_run(projection)
    client = projection.client
    curves = {CURVES + "val_accuracy", CURVES + "train_cost"}
    assert set(run.data.metrics) == set(FINALS) | curves
    # final values: one point each at step 0 (bars in MLflow's charts, the table's columns)
    for name, value in FINALS.items():
        [point] = client.get_metric_history(run.info.run_id, name)
        assert (point.step, point.value) == (0, value)
    # learning curves: one point per evaluation, step = iteration
    history = client.get_metric_history(run.info.run_id, CURVES + "val_accuracy")
    assert sorted((m.step, m.value) for m in history) == list(zip(*CURVE, strict=True))
    parent = client.get_run(projection.parent_run_id)
    assert set(parent.data.metrics) == {"study/best_val_accuracy"}


def test_a_failed_trial_shows_its_curves_without_final_values(projection: Projection) -> None:
    projection.write([record("failed")])
    assert set(the_run(projection).data.metrics) == {CURVES + "val_accuracy", CURVES + "train_cost"}


def test_check_finds_extra_metrics_and_a_renamed_run(projection: Projection) -> None:
    projection.write([record("pruned")])
    run_id = the_run(projection).info.run_id
    projection.client.log_metric(run_id, "study/best_val_accuracy", 0.99)
    projection.client.set_tag(run_id, "mlflow.runName", "trial-0007")
    problems = projection.check([record("pruned")])
    assert any("study/best_val_accuracy" in p and "not one of" in p for p in problems), problems
    assert any("mlflow.runName" in p and "pruned@50" in p for p in problems), problems


def test_a_run_of_the_previous_layout_is_found_and_written_again(projection: Projection) -> None:
    """Runs written before names, statuses and curves/ existed: `check` lists what differs,
    `write` (what `hpexp sync` runs) replaces them, after which they agree."""
    client = projection.client
    old = client.create_run(
        projection.experiment_id,
        run_name="trial-0007",
        tags={
            "mlflow.parentRunId": projection.parent_run_id,
            "hpexp.study": "study",
            "hpexp.trial": "7",
            "hpexp.state": "PRUNED",
            "hpexp.status": "pruned",
            "hpexp.synced": "0123456789abcdef",
        },
    )
    points = [Metric("val_accuracy", v, 0, s) for s, v in zip(*CURVE, strict=True)]
    client.log_batch(old.info.run_id, metrics=points)
    client.set_terminated(old.info.run_id, "KILLED")
    pruned = record("pruned")
    problems = projection.check([pruned])
    assert any("run status KILLED, expected FINISHED" in p for p in problems), problems
    assert any("learning curve curves/val_accuracy" in p for p in problems), problems

    projection.write([pruned])
    assert projection.check([pruned]) == []
    assert the_run(projection).info.run_id != old.info.run_id
    assert client.get_run(old.info.run_id).info.lifecycle_stage == "deleted"


def test_writing_again_keeps_complete_runs(projection: Projection) -> None:
    records = [record(k, n) for n, k in enumerate(KINDS)]
    first = projection.write(records)
    assert projection.write(records) == first
    assert projection.check(records) == []


# -- from the Optuna storage: what `hpexp sync` writes ----------------------------------------

SPEC = {
    "name": "study",
    "dataset": {"name": "iris"},
    "search": {"learning_rate": {"float": [0.001, 0.1], "log": True}},
}


def frozen(state: TrialState, number: int, **attrs: Any) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state,
        value=0.9 if state == TrialState.COMPLETE else None,
        params={"learning_rate": 0.01},
        distributions={"learning_rate": FloatDistribution(0.001, 0.1, log=True)},
        user_attrs={"curves": {"val_accuracy": [[5, 10], [0.5, 0.9]]}, **attrs},
    )
    trial.number = number
    return trial


@pytest.mark.parametrize(
    "trial, name, status",
    [
        (frozen(TrialState.COMPLETE, 1, metrics={"val_accuracy": 0.9}), "trial-0001", "FINISHED"),
        (
            frozen(TrialState.PRUNED, 2, record={"pruned_at": 10}, metrics={"val_accuracy": 0.5}),
            "trial-0002 · pruned@10",
            "FINISHED",
        ),
        (
            frozen(TrialState.FAIL, 3, fail_reason="diverged: non-finite cost at iteration 4"),
            "trial-0003 · failed",
            "FAILED",
        ),
        (
            frozen(TrialState.FAIL, 4, fail_reason="interrupted"),
            "trial-0004 · interrupted",
            "KILLED",
        ),
        (frozen(TrialState.FAIL, 5), "trial-0005 · interrupted", "KILLED"),  # lost heartbeat
        (
            frozen(TrialState.FAIL, 6, fail_reason="duplicate of trial 1"),
            "trial-0006 · duplicate",
            "KILLED",
        ),
    ],
    ids=["complete", "pruned", "failed", "interrupted", "heartbeat", "duplicate"],
)
def test_records_from_the_storage(
    trial: optuna.trial.FrozenTrial, name: str, status: str, tmp_path: Path
) -> None:
    rec = trial_record(load_spec(SPEC), trial, ModelFiles(tmp_path))
    assert (rec.run_name, rec.run_status) == (name, status)
    assert rec.curves == {"val_accuracy": ([5, 10], [0.5, 0.9])}
    assert rec.metrics == trial.user_attrs.get("metrics", {})  # finals, curves or not
    assert "hpexp.status" not in rec.tags  # a field: all_tags() writes it
    assert rec.all_tags()["hpexp.status"] == rec.outcome


# -- what the UI opens on -----------------------------------------------------------------------


def test_run_names() -> None:
    assert run_name(7, "complete") == "trial-0007"
    assert run_name(12345, "pruned", 400) == "trial-12345 · pruned@400"
    assert run_name(3, "pruned") == "trial-0003 · pruned"


@pytest.mark.parametrize("direction, ascending", [("maximize", False), ("minimize", True)])
def test_the_view_sorts_by_the_objective(direction: str, ascending: bool) -> None:
    key, envelope = trials_view("digits", [("val_accuracy", direction)], ["learning_rate"])
    assert key == "mlflow.sharedViewState.hpexp-digits"
    assert envelope["name"] == "digits: trials, best first"
    state = json.loads(str(envelope["state"]))
    assert state["orderByKey"] == "metrics.`val_accuracy`"
    assert state["orderByAsc"] is ascending
    assert state["searchFilter"] == (
        "tags.`hpexp.study` = 'digits' AND tags.`hpexp.role` = 'trial'"
    )
    columns = ["metrics.`val_accuracy`", "metrics.`test_accuracy`", "params.`learning_rate`"]
    assert state["selectedColumns"] == state["columnOrder"] == columns


def test_notes_lead_with_the_best_trial_and_the_links() -> None:
    summary = Summary(
        study="digits",
        description="Which *α* works?",
        experiment_id="3",
        objectives=(("val_accuracy", "maximize"),),
        counts={"complete": 9, "pruned": 3},
        best=2,
        best_run_id="abc",
        best_metrics={"val_accuracy": 0.97037, "test_accuracy": 0.9582, "n_params": 5686.0},
        best_params={"learning_rate": 0.008579567, "activation": "relu"},
    )
    banner, note = notes(summary)
    first = banner.splitlines()[0]  # the UI shows the banner's first line until unfolded
    assert first.startswith("**digits**: best [trial 2](#/experiments/3/runs/abc)")
    assert "val_accuracy 0.9704, test_accuracy 0.9582" in first
    assert f"[trials, best first]({view_path('3', 'digits')})" in first
    assert "12 trials: 9 complete, 3 pruned" in first
    assert "Which \\*α\\* works?" in banner  # the description, as text
    assert "| learning\\_rate | activation |" in note and "| 0.008580 |" not in note
    assert "| 0.00858 | relu |" in note
    early, _ = notes(Summary("digits", "", "3", (("val_loss", "minimize"),)))
    assert early.startswith("**digits**: no finished trial yet · [trials, best first]")


def test_show_saves_the_view_once_and_keeps_a_description_someone_wrote(
    projection: Projection,
) -> None:
    client = projection.client
    eid = projection.experiment_id
    client.set_experiment_tag(eid, "hpexp.study", "study")  # the study's own experiment
    view = trials_view("study", [("val_accuracy", "maximize")], ["learning_rate"])
    projection.show(view, "first")
    tags = client.get_experiment(eid).tags
    assert tags["mlflow.note.content"] == "first"
    saved = tags[view[0]]
    assert studies_with_views(tags) == ["study"]

    projection.show(view, "second")  # the same view: left as it was
    tags = client.get_experiment(eid).tags
    assert tags[view[0]] == saved and tags["mlflow.note.content"] == "second"

    client.set_experiment_tag(eid, "mlflow.note.content", "my own words")
    projection.show(view, "third")
    assert client.get_experiment(eid).tags["mlflow.note.content"] == "my own words"
