"""The `hpexp` command: bad input is one line on stderr and exit code 2, with nothing created; a
small study runs end to end through run, list, show, best and predict."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hpexp
from hpexp.cli import main

CREATED = ("optuna.journal", "mlflow.db", "mlartifacts", "mlruns")
STUDY = {
    "name": "tiny",
    "dataset": "iris",
    "fixed": {"iterations": 40, "eval_every": 10},
    "search": {"learning_rate": {"float": [1.0e-2, 5.0e-1], "log": True}},
    "budget": {"n_trials": 3},
}


def _write_study(path: Path, **changes: object) -> Path:
    path.write_text(yaml.safe_dump({**STUDY, **changes}, sort_keys=False))
    return path


def _fails(
    capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str, fresh: bool = True
) -> str:
    """Run `hpexp argv`: exit 2, one line on stderr naming `expected`, nothing created (and in a
    `fresh` folder no Optuna or MLflow store either)."""
    before = sorted(p.name for p in Path.cwd().iterdir())
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith("hpexp: error: ")
    assert "Traceback" not in err
    missing = [s for s in expected if s not in err]
    assert not missing, f"{missing} not in: {err}"
    for name in CREATED if fresh else ():
        assert not Path(name).exists(), f"{name} created: {err}"
    assert sorted(p.name for p in Path.cwd().iterdir()) == before
    return lines[0]


# -- no study needed ------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hpexp {hpexp.__version__}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "list", "show", "best", "ui", "predict", "datasets"):
        assert command in out


def test_run_help_mentions_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--set" in out and "--n-trials" in out and "--no-progress" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hpexp")
    assert "run" in out and "datasets" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert {"digits", "mnist1d", "iris", "diabetes"} <= set(lines)
    assert "multiclass" in lines["digits"] and "regression" in lines["diabetes"]


def test_list_in_an_empty_folder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "no studies yet" in out
    assert err == ""
    assert list(workdir.iterdir()) == []


# -- bad input: exit 2, one line, nothing created ------------------------------------------------


def test_run_missing_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(capsys, ["run", "nope.yaml"], "study file 'nope.yaml' not found", "studies/")


def test_run_unknown_study_name(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(capsys, ["run", "quickstart"], "'quickstart' not found")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param("budget.n_trials", ("--set 'budget.n_trials'", "key=value"), id="no-equals"),
        pytest.param("budget.n_trials=[", ("not valid YAML",), id="value-not-yaml"),
        pytest.param("fixed.optimizer=sgd", ("study.yaml", "fixed.optimizer", "'sgd'"), id="bad"),
        pytest.param("name.x=1", ("'name' is not a mapping",), id="into-a-value"),
    ],
)
def test_run_bad_set(
    workdir: Path, capsys: pytest.CaptureFixture[str], item: str, expected: tuple[str, ...]
) -> None:
    _write_study(workdir / "study.yaml")
    _fails(capsys, ["run", "study.yaml", "--set", item], *expected)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"dataset": "irsi"}, ("dataset", "did you mean 'iris'"), id="dataset"),
        pytest.param({"search": {"l2": {"float": [1, 0]}}}, ("search.l2.float",), id="range"),
        pytest.param({"objective": {"metric": "val_rmse"}}, ("objective.metric",), id="metric"),
        pytest.param(
            {"pruner": {"name": "median", "n_startup_trials": -1}}, ("pruner",), id="pruner"
        ),
        pytest.param({"budget": {"n_trials": 0}}, ("budget.n_trials",), id="budget"),
    ],
)
def test_run_bad_study(
    workdir: Path, capsys: pytest.CaptureFixture[str], changes: dict, expected: tuple[str, ...]
) -> None:
    _write_study(workdir / "study.yaml", **changes)
    line = _fails(capsys, ["run", "study.yaml", "--no-progress"], *expected)
    assert line.startswith("hpexp: error: study.yaml: ")


def test_run_invalid_yaml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "study.yaml").write_text("name: tiny\ndataset: {name: iris\n")
    _fails(capsys, ["run", "study.yaml"], "study.yaml", "line", "not valid YAML")


def test_run_bad_csv_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # pandas' parser message ends in a newline; the CLI still prints one line.
    (workdir / "data.csv").write_text("a,b,y\n1,2,0\n3,4,5,6\n1,2,1\n")
    _write_study(workdir / "study.yaml", dataset="data.csv")
    _fails(capsys, ["run", "study.yaml"], "data.csv", "as CSV")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--n-trials", "0"], ("n_trials", "got 0"), id="n-trials-0"),
    ],
)
def test_run_bad_arguments(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: tuple[str, ...]
) -> None:
    _write_study(workdir / "study.yaml")
    _fails(capsys, ["run", "study.yaml", *args], *expected)


@pytest.mark.parametrize("command", ["show", "best"])
def test_unknown_study_without_storage(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    _fails(capsys, [command, "nope"], "no study storage", "optuna.journal", "hpexp run")


@pytest.mark.parametrize("command", ["show", "best"])
def test_unknown_study_in_storage(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.JournalStorage(JournalFileBackend("optuna.journal"))
    optuna.create_study(study_name="other", storage=storage)
    size = (workdir / "optuna.journal").stat().st_size
    code = main([command, "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hpexp: error: ")
    assert "no study named 'nope'" in err and "studies: other" in err
    assert (workdir / "optuna.journal").stat().st_size == size
    assert not (workdir / "mlflow.db").exists()


def test_predict_missing_model(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "rows.csv").write_text("a,b\n1,2\n")
    _fails(capsys, ["predict", "nomodel", "rows.csv"], "model file 'nomodel.npz' not found")


def test_predict_model_not_json(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "m.npz").write_bytes(b"")
    (workdir / "m.json").write_text("{not json")
    (workdir / "rows.csv").write_text("a,b\n1,2\n")
    _fails(capsys, ["predict", "m", "rows.csv"], "m.json", "not valid JSON")


# -- a real process -------------------------------------------------------------------------------


def _hpexp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "hpexp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_subprocess_bad_study_exits_2_without_traceback(tmp_path: Path) -> None:
    _write_study(tmp_path / "study.yaml", search={"learning_rate": {"float": [0.1, 0.01]}})
    proc = _hpexp("run", "study.yaml", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("hpexp: error: study.yaml: search.learning_rate.float: ")
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


# -- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_list_show_best_predict(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd
    from sklearn.datasets import load_iris

    _write_study(workdir / "tiny.yaml", name="cli_tiny")
    # An absolute MLflow URI: MLflow caches stores by URI for the whole process, so a relative
    # sqlite:///mlflow.db would reach the file of whichever test opened it first.
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    assert main(["run", "tiny.yaml", "--no-progress", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "study 'cli_tiny'" in out and "3 trials" in out
    assert (workdir / "optuna.journal").is_file() and (workdir / "mlflow.db").is_file()

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cli_tiny" in out and "maximize" in out

    assert main(["show", "cli_tiny"]) == 0
    out = capsys.readouterr().out
    assert "val_accuracy" in out and "learning_rate" in out

    assert main(["show", "cli_tiny", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("study 'cli_tiny': 3 trials (")
    assert lines[1].split()[:3] == ["number", "status", "val_accuracy"]
    assert len(lines) == 2 + 3

    assert main(["best", "cli_tiny", "--save", "model"]) == 0
    out = capsys.readouterr().out
    assert "best trial" in out and "learning_rate" in out and "MLflow run" in out
    assert (workdir / "model.npz").is_file() and (workdir / "model.json").is_file()

    ds = hpexp.load_dataset("iris")
    frame = load_iris(as_frame=True).data.iloc[[0, 60, 120, 149]]
    assert tuple(frame.columns) == ds.feature_names
    frame.to_csv(workdir / "rows.csv", index=False)
    assert main(["predict", "model", "rows.csv"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(io.StringIO(out))
    assert "prediction" in table.columns
    assert len(table) == 4
    assert set(table["prediction"]) <= set(ds.class_names)

    assert main(["predict", "model", "rows.csv", "-o", "out.csv"]) == 0
    assert "wrote 4 predictions" in capsys.readouterr().err
    assert list(pd.read_csv(workdir / "out.csv")["prediction"]) == list(table["prediction"])

    # running it again adds nothing: the budget is met
    assert main(["run", "tiny.yaml", "--no-progress", "--tracking-uri", uri]) == 0
    assert "already has 3 of 3 trials" in capsys.readouterr().out

    # bad input after a study exists still changes nothing
    bad_output = ["predict", "model", "rows.csv", "-o", "no/such/dir/out.csv"]
    _fails(capsys, bad_output, "out.csv", "folder exists", fresh=False)
    _fails(capsys, ["predict", "model", "missing.csv"], "missing.csv", "not found", fresh=False)
