"""The study report: report.html (every figure, plotly.js embedded once, nothing fetched from the
network), report.md (the tables with `compare`'s numbers), the `hpexp report` command, and the
report in the study's MLflow run after `hpexp run` and `hpexp sync`.

Most tests build studies in memory (no training); the whole-study ones are marked slow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import hpexp
from hpexp import StudyResult
from hpexp.cli import main
from hpexp.errors import HpexpError
from hpexp.report.document import MIN_RESAMPLED_TRIALS, build_report, write_report
from hpexp.report.figures import MISSING, learning_curves, legend_groups
from hpexp.search.objective import ModelFiles

#: Every test here runs a whole study (or shares one a fixture runs).
pytestmark = pytest.mark.slow

SPACE = {
    "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
    "activation": CategoricalDistribution(["relu", "tanh", "sigmoid"]),
}
DOC: dict[str, Any] = {
    "name": "rep",
    "description": "A study made by hand",
    "dataset": {"name": "iris"},
    "search": {
        "learning_rate": {"float": [0.001, 1.0], "log": True},
        "activation": {"choice": ["relu", "tanh", "sigmoid"]},
    },
    "pruner": {"name": "none"},
}
TWO = [{"metric": "val_accuracy"}, {"metric": "n_params"}]
FIGURES = ("history", "importance", "curves", "parallel", "slice", "contour")
EVAL = [10, 20, 30, 40]


def trials(n: int = 15, seed: int = 0, objectives: int = 1) -> list[optuna.trial.FrozenTrial]:
    """`n` completed trials whose accuracy is set by the activation (relu best, sigmoid worst),
    three pruned ones and one failed; each with its learning curve."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n + 4):
        activation = ("relu", "tanh", "sigmoid")[k % 3]
        params = {"learning_rate": float(10 ** rng.uniform(-3, 0)), "activation": activation}
        final = {"relu": 0.9, "tanh": 0.8, "sigmoid": 0.6}[activation] + rng.normal(0, 0.02)
        curve = [float(final * (1 - 0.5 ** (s / 10))) for s in EVAL]
        n_params = float(rng.integers(50, 500))
        state = TrialState.COMPLETE if k < n else (TrialState.PRUNED, TrialState.FAIL)[k == n + 3]
        values = None
        if state == TrialState.COMPLETE:
            values = [curve[-1], n_params][:objectives]
        steps = EVAL if state == TrialState.COMPLETE else EVAL[:2]
        out.append(
            create_trial(
                state=state,
                values=values,
                params=params,
                distributions=SPACE,
                user_attrs={
                    "metrics": {"val_accuracy": curve[-1], "n_params": n_params},
                    "curves": {"val_accuracy": [steps, curve[: len(steps)]]},
                },
                intermediate_values=(
                    dict(zip(steps, curve, strict=False)) if objectives == 1 else None
                ),
            )
        )
    return out


def as_result(tmp_path: Path, objectives: int = 1, n: int = 15) -> StudyResult:
    doc = {**DOC, "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}
    if objectives > 1:
        doc["objective"] = TWO
    spec = hpexp.load_spec(doc)
    study = optuna.create_study(directions=spec.directions)
    study.add_trials(trials(n, objectives=objectives))
    return StudyResult(spec, study, ModelFiles(tmp_path / "models"), run_ids={})


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> StudyResult:
    return as_result(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def written(result: StudyResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    files = write_report(result, tmp_path_factory.mktemp("out"), resamples=4)
    return files.html.read_text(encoding="utf-8"), files.markdown.read_text(encoding="utf-8")


# -- report.html ---------------------------------------------------------------------------------


def test_html_holds_every_figure(written: tuple[str, str]) -> None:
    page = written[0]
    for key in FIGURES:
        assert f'id="fig-{key}"' in page, key
        assert f'<section id="{key}">' in page, key
    assert 'id="fig-pareto"' not in page  # one objective
    for title in ("Optimization history", "Hyperparameter importance", "Parallel coordinates",
                  "Learning curves by activation", "Slice", "Contour"):  # fmt: skip
        assert f"<h2>{title}</h2>" in page, title


def test_html_embeds_plotly_once_and_fetches_nothing(written: tuple[str, str]) -> None:
    from plotly.offline import get_plotlyjs

    page, library = written[0], get_plotlyjs()
    assert page.count(library) == 1
    assert page.count(library[:500]) == 1  # not a second copy either
    rest = page.replace(library, "")  # plotly.js names web sites in its code (map tiles, logo)
    assert not re.search(r"<script[^>]*\ssrc\s*=", rest)
    assert not re.search(r"https?://|(src|href)\s*=\s*[\"']?//", rest)
    assert "<link" not in rest and "@import" not in rest
    assert rest.count("<script") == 1 + len(FIGURES)  # plotly.js, then one per figure


def test_html_tables(written: tuple[str, str], result: StudyResult) -> None:
    page = written[0]
    for key in ("top", "importances", "compare-learning_rate", "compare-activation"):
        assert f'<section id="{key}">' in page, key
    table = result.compare("activation")
    assert f"<td>{table.loc['relu', 'mean']:.4g}</td>" in page
    assert 'id="reevaluation"' not in page  # no re-evaluation in this study


# -- report.md -----------------------------------------------------------------------------------


def test_markdown_has_compare_tables_with_their_numbers(
    written: tuple[str, str], result: StudyResult
) -> None:
    md = written[1]
    assert md.startswith("# Study rep\n")
    section = md.split("## val_accuracy by activation\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if "|" in line}
    table = result.compare("activation")
    assert list(table.index) == ["relu", "tanh", "sigmoid"]
    for value, row in table.iterrows():
        cells = [c.strip() for c in rows[str(value)].strip("|").split("|")]
        expected = [str(value), str(int(row["count"])), str(int(row["pruned"]))]
        expected += [f"{row[c]:.4g}" for c in ("mean", "std", "se", "ci_low", "ci_high", "best")]
        assert cells == expected
    assert section.index("| relu") < section.index("| tanh") < section.index("| sigmoid")


def test_markdown_names_the_figures(written: tuple[str, str]) -> None:
    md = written[1]
    for key in FIGURES:
        assert f"(report.html#{key})" in md, key
    assert "## Top trials" in md and "## Importances" in md
    assert "## val_accuracy by learning_rate" in md
    assert "≤ " in md.split("## val_accuracy by learning_rate")[1]  # lowest quantile bin


def test_reevaluation_table_when_the_study_has_one(tmp_path: Path) -> None:
    result = as_result(tmp_path)
    frame = pd.DataFrame(
        {"test_mean": [0.91234, 0.8], "ci_low": [0.9, 0.78]}, index=pd.Index([7, 3], name="trial")
    )
    result.reevaluation = lambda: frame  # type: ignore[attr-defined]
    report = build_report(result, resamples=2)
    md, page = report.markdown(), report.html()
    section = md.split("## Re-evaluation\n", 1)[1]
    assert re.search(r"\|\s+7 \|\s+0\.9123 \|\s+0\.9 \|", section), section
    assert '<section id="reevaluation">' in page
    result.reevaluation = lambda: None  # type: ignore[attr-defined]
    assert "Re-evaluation" not in build_report(result, resamples=2).markdown()


# -- figures -------------------------------------------------------------------------------------


def test_learning_curves_coloured_by_a_parameter_with_a_legend(result: StudyResult) -> None:
    report = build_report(result, color_by="activation", resamples=2)
    figure = next(f.figure for f in report.figures if f.key == "curves")
    finished = [t for t in result.study.trials if t.state != TrialState.FAIL]
    assert len(figure.data) == len(finished)  # complete and pruned ones
    legend = [t for t in figure.data if t.showlegend]
    assert sorted(t.name for t in legend) == ["relu", "sigmoid", "tanh"]
    assert figure.layout.legend.title.text == "activation"
    for value in ("relu", "tanh"):
        colours = {t.line.color for t in figure.data if t.legendgroup == value}
        assert len(colours) == 1, value
    assert {t.line.dash for t in figure.data} == {"solid", "dot"}  # complete, pruned


def test_numbers_with_many_values_are_binned() -> None:
    values = [0.001, 0.002, 0.01, 0.02, 0.1, 0.2, 0.5, 0.9, None]
    labels, legend = legend_groups(values)
    assert len(legend) == 5 and list(legend)[-1] == MISSING
    assert labels[0].startswith("≤ ") and labels[-1] == MISSING
    assert len(set(legend.values())) == 5
    small, colours = legend_groups([1, 2, 2, 3])
    assert small == ["1", "2", "2", "3"] and list(colours) == ["1", "2", "3"]


def test_default_colour_is_the_most_important_parameter(result: StudyResult) -> None:
    report = build_report(result, resamples=2)
    assert any(f.title == "Learning curves by activation" for f in report.figures)


def test_learning_curves_of_trials_without_the_parameter() -> None:
    figure = learning_curves(trials(3), "val_accuracy", "hidden_units_2")
    assert {t.name for t in figure.data} == {MISSING}


def test_multi_objective_gets_a_pareto_front(tmp_path: Path) -> None:
    result = as_result(tmp_path, objectives=2)
    report = build_report(result, resamples=2)
    keys = [f.key for f in report.figures]
    assert keys[:2] == ["history", "pareto"]
    assert {"curves", "importance", "parallel"} <= set(keys)
    page = report.html()
    assert 'id="fig-pareto"' in page
    assert "(pareto: * on the Pareto front)" in report.markdown()


def test_too_few_trials_leave_parts_out_and_say_so(tmp_path: Path) -> None:
    result = as_result(tmp_path, n=2)
    report = build_report(result, resamples=2)
    keys = {f.key for f in report.figures}
    assert "importance" not in keys and "history" in keys
    md = report.markdown()
    assert "Left out: importance: importances need 3 completed trials" in md
    assert "## Importances" not in md


def test_importances_of_few_trials_come_without_intervals(tmp_path: Path) -> None:
    """Below MIN_RESAMPLED_TRIALS completed trials: bars without whiskers, no resampling, and
    the captions say why; from there on, whiskers from the resamples."""
    few = build_report(as_result(tmp_path, n=MIN_RESAMPLED_TRIALS - 1), resamples=4)
    figure = next(f for f in few.figures if f.key == "importance")
    assert all(bar.error_x.array is None for bar in figure.figure.data)
    assert f"no whiskers: intervals need {MIN_RESAMPLED_TRIALS} completed trials" in figure.caption
    table = next(t for t in few.tables if t.key == "importances")
    assert list(table.frame.columns) == ["evaluator", "param", "importance"]
    assert "no intervals" in table.caption
    enough = build_report(as_result(tmp_path, n=MIN_RESAMPLED_TRIALS), resamples=4)
    figure = next(f for f in enough.figures if f.key == "importance")
    assert all(len(bar.error_x.array) == len(bar.x) for bar in figure.figure.data)
    assert "over 4 bootstrap resamples" in figure.caption
    table = next(t for t in enough.tables if t.key == "importances")
    assert table.frame[["mean", "low", "high"]].notna().all().all()


def test_refused_color_by_and_empty_study(tmp_path: Path) -> None:
    result = as_result(tmp_path)
    with pytest.raises(HpexpError, match=r"color by 'depth': not a parameter of study 'rep'.*"
                       r"choose from learning_rate, activation"):  # fmt: skip
        build_report(result, color_by="depth")
    spec = result.spec
    empty = optuna.create_study(directions=spec.directions)
    empty.add_trials([t for t in trials(3) if t.state != TrialState.COMPLETE])
    nothing = StudyResult(spec, empty, result.models, run_ids={})
    with pytest.raises(HpexpError, match="no completed trial yet"):
        build_report(nothing)


def test_files_are_replaced_whole_and_readable(tmp_path: Path, result: StudyResult) -> None:
    files = write_report(result, tmp_path / "a" / "b", resamples=2)
    assert files.paths == [tmp_path / "a" / "b" / "report.html", tmp_path / "a" / "b" / "report.md"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in files.paths)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["report.html", "report.md"]


# -- the command ---------------------------------------------------------------------------------


def journal_study(where: Path, name: str = "rep", n: int = 15) -> None:
    """Study `name` in `where/optuna.journal`, as hpexp stores one, with `n` completed trials."""
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(where / "optuna.journal")))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("spec", {**DOC, "name": name})
    study.add_trials(trials(n) if n else [t for t in trials(3) if t.state != TrialState.COMPLETE])


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> None:
    before = sorted(p.name for p in Path.cwd().iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hpexp: error: "), err
    assert all(e in err for e in expected), err
    assert sorted(p.name for p in Path.cwd().iterdir()) == before  # nothing written


def test_command_errors_are_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _fails(capsys, ["report", "rep"], "no study storage")
    journal_study(workdir)
    journal_study(workdir, "empty", n=0)
    _fails(capsys, ["report", "nope"], "no study named 'nope'", "studies: ")
    _fails(capsys, ["report", "rep", "--color-by", "depth"], "color by 'depth'", "learning_rate")
    _fails(capsys, ["report", "empty"], "study 'empty' has no completed trial yet")


def test_command_writes_the_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study MLflow has no run of: the report is written, not logged, and no MLflow store is
    created for it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    journal_study(workdir)
    assert main(["report", "rep", "--out", "out", "--color-by", "learning_rate"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote out/report.html (") and "out/report.md" in out
    assert err.count("\n") == 1
    assert "not logged to MLflow: study 'rep' has no MLflow run yet; hpexp sync rep" in err
    page = (workdir / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Learning curves by learning_rate</h2>" in page
    assert sorted(p.name for p in workdir.iterdir()) == ["optuna.journal", "out"]


def test_logging_needs_the_store_and_the_run(tmp_path: Path) -> None:
    from hpexp.tracking.projection import log_files

    with pytest.raises(LookupError, match="no MLflow store"):
        log_files(f"sqlite:///{tmp_path / 'mlflow.db'}", "0" * 32, [])
    assert not (tmp_path / "mlflow.db").exists()


def test_the_study_engine_imports_no_plotting_or_mlflow() -> None:
    code = (
        "import sys, hpexp.study, hpexp.report.document; "
        "print(sorted(m for m in ('plotly', 'mlflow', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


# -- a whole study -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_logs_the_report_and_sync_restores_it(studydir: Path) -> None:
    from mlflow.tracking import MlflowClient

    from ..search.conftest import run, tiny

    result = run(tiny(budget={"n_trials": 5}))
    client = MlflowClient(result.tracking_uri)
    parent = result.parent_run_id
    assert parent is not None
    names = {a.path for a in client.list_artifacts(parent)}
    assert {"report.html", "report.md", "trials.csv", "plots"} <= names
    folder = studydir / "hpexp-models" / "tiny"
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="fig-history"' in page and 'id="fig-curves"' in page
    assert (folder / "report.md").is_file()

    # a study run that lost its report gets it back from `hpexp sync`
    local = Path(client.get_run(parent).info.artifact_uri.removeprefix("file://"))
    (local / "report.html").unlink()
    (local / "report.md").unlink()
    hpexp.sync_study("tiny", tracking_uri=result.tracking_uri)
    assert {"report.html", "report.md"} <= {a.path for a in client.list_artifacts(parent)}

    # `hpexp report` writes it again, coloured as asked, and logs it to the same run
    files = hpexp.report_study("tiny", color_by="hidden_layers")
    assert files.mlflow_run == parent and files.not_logged is None
    logged = Path(client.download_artifacts(parent, "report.html", str(studydir / "dl")))
    assert "<h2>Learning curves by hidden_layers</h2>" in logged.read_text(encoding="utf-8")
