"""`hpexp reproduce`: a trial trained again from its record matches it bit for bit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import hpexp
import hpexp.search.objective
from hpexp.cli import main
from hpexp.search.identity import identity

from .conftest import empty_mlflow_store
from .search.conftest import one_line, run, tiny

PRUNING = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 5}


def _numbers(result: hpexp.StudyResult, state: str) -> list[int]:
    return [t.number for t in result.study.trials if t.state.name == state]


#: One xdist worker runs this module, so the study its tests share is run once.
pytestmark = pytest.mark.xdist_group("test_reproduce")


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hpexp.StudyResult]:
    """A tiny study with completed and pruned trials (the median pruner prunes most), run once
    for the module in its own folder (the working directory while the tests that read it run;
    they only read it)."""
    where = tmp_path_factory.mktemp("reproduce")
    empty_mlflow_store(where)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        result = run(tiny(pruner=PRUNING, budget={"n_trials": 6}))
        assert _numbers(result, "COMPLETE") and _numbers(result, "PRUNED")
        yield result


@pytest.mark.slow
def test_completed_and_pruned_trials_match(
    pruned_study: hpexp.StudyResult, capsys: pytest.CaptureFixture[str]
) -> None:
    fingerprint = pruned_study.study.user_attrs["dataset_fingerprint"]
    assert fingerprint["name"] == "iris" and len(fingerprint["sha256"]) == 64
    for number in (_numbers(pruned_study, "COMPLETE")[0], _numbers(pruned_study, "PRUNED")[0]):
        outcome = pruned_study.reproduce(number)
        assert outcome.matches, outcome.differences
        assert outcome.warnings == ()
        assert main(["reproduce", "tiny", str(number)]) == 0
        out = capsys.readouterr()
        assert "reproduced bit for bit" in out.out and out.err == ""
    # the pruned trial stopped where it did, with the same learning curve
    pruned = pruned_study.study.trials[_numbers(pruned_study, "PRUNED")[0]]
    assert pruned.user_attrs["record"]["pruned_at"] == max(pruned.intermediate_values)
    # a trial named by its MLflow run
    number = _numbers(pruned_study, "COMPLETE")[-1]
    run_id = pruned_study.run_id(number)
    assert run_id is not None
    outcome = hpexp.reproduce("tiny", run_id)
    assert outcome.trial == number and outcome.matches
    # an unknown trial: one line, exit 2
    for trial in ("99", "-1", "not-a-run-id"):
        assert main(["reproduce", "tiny", trial]) == 2
        err = one_line(capsys.readouterr().err)
        assert err.startswith("hpexp: error: trial") and "0 to 5" in err


@pytest.mark.slow
def test_repeats_match(studydir: Path) -> None:
    result = run(tiny(repeats=2, budget={"n_trials": 2}))
    outcome = hpexp.reproduce(result, 1)
    assert outcome.matches, outcome.differences


@pytest.mark.slow
def test_other_seeds_differ_and_exit_1(
    pruned_study: hpexp.StudyResult,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Trained with other seeds, the trial differs: exit 1, naming what."""
    seed = hpexp.search.objective.trial_seed
    monkeypatch.setattr(hpexp.search.objective, "trial_seed", lambda s, n, r: seed(s + 1, n, r))
    number = _numbers(pruned_study, "COMPLETE")[0]
    assert main(["reproduce", "tiny", str(number)]) == 1
    out = capsys.readouterr().out
    assert "record.seeds" in out and "metrics.val_cost" in out and "weights" in out


def _csv_study(where: Path) -> dict:
    rows = 60
    frame = pd.DataFrame(
        {
            "a": [float(i % 7) for i in range(rows)],
            "b": [float((3 * i) % 11) for i in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    )
    frame.to_csv(where / "data.csv", index=False)
    return tiny(name="csv", dataset={"name": str(where / "data.csv")}, budget={"n_trials": 2})


@pytest.mark.slow
def test_edited_data_file_is_refused(studydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(_csv_study(studydir))
    assert main(["reproduce", "csv", "0"]) == 0
    capsys.readouterr()
    path = studydir / "data.csv"
    lines = path.read_text().splitlines()
    lines[1] = "6.0,10.0,1"  # one value changed
    path.write_text("\n".join(lines) + "\n")
    assert main(["reproduce", "csv", "0"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "dataset" in err and "fingerprint" in err and "restore" in err


@pytest.mark.slow
def test_study_without_fingerprint_warns_and_reproduces(
    studydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study created before fingerprints were recorded: its data cannot be verified."""
    result = run(tiny(budget={"n_trials": 1}))
    # as an older hpexp left it: a study that never had the attribute
    storage = result.study._storage
    study_id = result.study._study_id
    attrs = storage.get_study_user_attrs(study_id)
    assert "dataset_fingerprint" in attrs and attrs["identity"] == identity(result.spec)
    result.study.set_user_attr("dataset_fingerprint", None)
    assert main(["reproduce", "tiny", "0"]) == 0
    out = capsys.readouterr()
    assert "reproduced bit for bit" in out.out
    warning = one_line(out.err)
    assert warning.startswith("hpexp: warning:") and "cannot be verified" in warning
