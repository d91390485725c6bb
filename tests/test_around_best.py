"""Around the best: one hyperparameter of a finished study's best configuration varied over a
grid of values, several seeds each, as a study of its own (`hpexp run ... --around-best`)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

import hpexp
from hpexp.cli import main
from hpexp.report.tables import compare
from hpexp.search.around import around_spec, around_values, check_around
from hpexp.search.factories import make_sampler
from hpexp.search.hyperparams import HYPERPARAMETERS
from hpexp.search.identity import fingerprint, identity
from hpexp.search.runner import open_study, quiet_optuna
from hpexp.search.spec import SearchParam

from .search.conftest import (
    TINY,
    assert_agree,
    journal_study,
    run,
    tiny,
    wait_for_writers,
    write_study,
)

BEST = types.SimpleNamespace(
    number=3,
    params={
        "learning_rate": 0.0426,
        "iterations": 44,
        "hidden_layers": 1,
        "hidden_units_1": 10,
        "activation": "tanh",
    },
)


def trial(number: int = 3, **params: Any) -> Any:
    """A stand-in for the best FrozenTrial: its number and params are what counts."""
    return types.SimpleNamespace(number=number, params={**BEST.params, **params})


# -- the grid of values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "best", "expected"),
    [
        # float, log: best × 1/10, 1/3, 1, 3, 10 (3 significant digits), clipped, once each
        (SearchParam("learning_rate", "float", 1e-4, 1.0, log=True), 0.0426,
         [0.00426, 0.0142, 0.0426, 0.128, 0.426]),
        (SearchParam("learning_rate", "float", 1e-4, 3e-2, log=True), 0.015857619632003977,
         [0.00159, 0.00529, 0.015857619632003977, 0.03]),
        (SearchParam("learning_rate", "float", 1e-4, 3e-2, log=True), 3e-4,
         [1e-4, 3e-4, 9e-4, 3e-3]),
        # int, log: best × 1/4, 1/2, 1, 2, 4, rounded
        (SearchParam("iterations", "int", 200, 2000, log=True), 600, [200, 300, 600, 1200, 2000]),
        (SearchParam("hidden_units", "int", 8, 256, log=True), 133, [33, 66, 133, 256]),
        # linear: best + k·(high − low)/8, k = −2..2; an int's gap at least 1
        (SearchParam("hidden_layers", "int", 1, 3), 2, [1, 2, 3]),
        (SearchParam("hidden_layers", "int", 0, 2), 0, [0, 1, 2]),
        (SearchParam("iterations", "int", 20, 60), 44, [34, 39, 44, 49, 54]),
        (SearchParam("dropout", "float", 0.0, 0.5), 0.2466111034422861,
         [0.122, 0.184, 0.2466111034422861, 0.309, 0.372]),
        (SearchParam("dropout", "float", 0.0, 0.5), 0.0, [0.0, 0.0625, 0.125]),
        # a step: the gap a multiple of it, the values on its grid, the top one reachable
        (SearchParam("dropout", "float", 0.0, 0.5, step=0.05), 0.25, [0.15, 0.2, 0.25, 0.3, 0.35]),
        (SearchParam("batch_size", "int", 16, 500, step=16), 496, [368, 432, 496]),
        # choices: every one, in the study's order
        (SearchParam("activation", "choice", choices=("tanh", "relu", "sigmoid")), "relu",
         ["tanh", "relu", "sigmoid"]),
    ],
    ids=lambda v: v.name if isinstance(v, SearchParam) else None,
)  # fmt: skip
def test_values_around_the_best(param: SearchParam, best: Any, expected: list[Any]) -> None:
    values = around_values(param, best)
    assert values == pytest.approx(expected) if param.kind != "choice" else values == expected
    assert best in values  # exactly as recorded
    assert all(type(v) is type(best) for v in values if param.kind == "int")
    if param.kind != "choice":
        assert all(param.low <= v <= param.high for v in values)
        assert values == sorted(set(values))


# -- the derived study ----------------------------------------------------------------------------


def test_the_derived_study_fixes_the_best_and_searches_one_parameter_on_a_grid() -> None:
    spec = hpexp.load_spec(TINY)
    derived = around_spec(spec, "learning_rate", BEST, seeds=4, base_fingerprint="abc")
    values = around_values(spec.search["learning_rate"], 0.0426)
    assert derived.name == "tiny-around-learning_rate"
    assert derived.fixed == {
        "optimizer": "adam",
        "eval_every": 5,
        "iterations": 44,
        "hidden_layers": 1,
        "hidden_units": [10],
        "activation": "tanh",
    }
    assert list(derived.search) == ["learning_rate"]
    assert derived.search["learning_rate"].choices == tuple(values)
    assert derived.sampler == {"name": "grid"} and derived.pruner == {"name": "none"}
    assert (derived.repeats, derived.n_trials, derived.seed) == (4, len(values), spec.seed)
    assert derived.experiment == derived.name  # an MLflow experiment of its own
    assert derived.storage == spec.storage and derived.enqueue == ()
    assert derived.around_best == {
        "study": "tiny",
        "fingerprint": "abc",
        "trial": 3,
        "param": "learning_rate",
        "config": {**derived.fixed, "learning_rate": 0.0426},
    }
    assert identity(derived)["around_best"] == derived.around_best
    # what the storage keeps (the document) loads as the same study: workers, show, compare
    again = hpexp.load_spec(derived.raw)
    assert identity(again) == {k: v for k, v in identity(derived).items() if k != "around_best"}
    assert around_spec(spec, "learning_rate", BEST, seeds=2, name="lr").name == "lr"


def test_its_identity_holds_the_best_trial_and_configuration() -> None:
    spec = hpexp.load_spec(TINY)
    made = around_spec(spec, "activation", BEST, seeds=3)
    assert made.search["activation"].choices == ("relu", "tanh")  # every choice, whatever the best
    stored = identity(made)
    check_around(made, stored)  # the same best: resumed
    other_trial = around_spec(spec, "activation", trial(number=7), seeds=3)
    assert fingerprint(identity(other_trial)) != fingerprint(stored)
    with pytest.raises(
        hpexp.SpecError, match="made around trial 3 of study 'tiny', whose best is now trial 7"
    ):
        check_around(other_trial, stored)
    wider = around_spec(spec, "activation", trial(hidden_units_1=12), seeds=3)
    with pytest.raises(hpexp.SpecError, match=r"another configuration of trial 3 .*--around-name"):
        check_around(wider, stored)
    more_seeds = around_spec(spec, "activation", BEST, seeds=5)
    with pytest.raises(hpexp.SpecError, match="has a different repeats"):
        check_around(more_seeds, stored)
    with pytest.raises(hpexp.SpecError, match="was not made by --around-best"):
        check_around(made, identity(spec))


def test_a_per_layer_parameter_takes_one_value_for_every_layer() -> None:
    spec = hpexp.load_spec(TINY)
    derived = around_spec(spec, "hidden_units", BEST, seeds=2)
    assert derived.search["hidden_units"].choices == (8, 9, 10, 11, 12)  # gap 1
    assert not derived.search["hidden_units"].per_layer
    assert derived.fixed["hidden_layers"] == 1 and "hidden_units" not in derived.fixed
    two = trial(hidden_layers=2, hidden_units_1=10, hidden_units_2=10)
    assert around_spec(spec, "hidden_units", two, seeds=2).fixed["hidden_layers"] == 2
    # the depth varied: a per-layer value kept as one value for every layer
    deeper = around_spec(spec, "hidden_layers", two, seeds=2)
    assert deeper.fixed["hidden_units"] == 10 and "hidden_layers" not in deeper.fixed
    assert deeper.search["hidden_layers"].choices == (1, 2)


UNEQUAL = trial(hidden_layers=2, hidden_units_2=8)  # hidden_units [10, 8]


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("hidden_units", r"has hidden_units \[10, 8\], one value per layer"),
        ("hidden_layers", "a network of another depth needs one value for every layer"),
    ],
)
def test_per_layer_values_that_differ_are_refused(param: str, expected: str) -> None:
    with pytest.raises(hpexp.SpecError, match=expected):
        around_spec(hpexp.load_spec(TINY), param, UNEQUAL, seeds=2)


def test_no_hidden_layer_leaves_no_units_to_vary() -> None:
    search = {"hidden_layers": {"int": [0, 2]}, "hidden_units": {"int": [2, 16], "per_layer": True}}
    spec = hpexp.load_spec(tiny(search=search))
    shallow = types.SimpleNamespace(number=0, params={"hidden_layers": 0})
    for param in ("hidden_units", "hidden_layers"):
        with pytest.raises(hpexp.SpecError, match="has no hidden layer"):
            around_spec(spec, param, shallow, seeds=2)


@pytest.mark.parametrize(
    ("param", "seeds", "name", "expected"),
    [
        ("optimizer", 3, None, "does not search 'optimizer'; it is fixed at 'adam'"),
        ("learning_rat", 3, None, "did you mean 'learning_rate'?"),
        ("learning_rate", 1, None, "--seeds: must be an integer from 2 to 100"),
        ("learning_rate", 101, None, "got 101"),
        ("learning_rate", True, None, "got True"),
        ("learning_rate", 3, "a/b", "--around-name"),
        ("learning_rate", 3, "x" * 101, "--around-name"),
    ],
)
def test_bad_requests(param: str, seeds: Any, name: str | None, expected: str) -> None:
    with pytest.raises(hpexp.SpecError, match=expected):
        around_spec(hpexp.load_spec(TINY), param, BEST, seeds=seeds, name=name)


def test_seeds_that_do_not_fit_in_memory_together_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPEXP_MAX_MODEL_BYTES", "20K")  # one network fits, 100 do not
    spec = hpexp.load_spec(TINY)
    around_spec(spec, "learning_rate", BEST, seeds=2)
    with pytest.raises(
        hpexp.SpecError, match=r"--seeds 100: training 100 × the network \[4, 10, 3\]"
    ):
        around_spec(spec, "learning_rate", BEST, seeds=100)


def test_compare_bins_only_more_values_than_bins() -> None:
    frame = pd.DataFrame(
        {
            "state": ["COMPLETE"] * 7,
            "batch_size": [8, 16, 32, 64, 128, 256, 512],
            "val_accuracy": [0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.75],
        }
    )
    assert len(compare(frame, "batch_size", "val_accuracy", "maximize")) == 4
    table = compare(frame, "batch_size", "val_accuracy", "maximize", bins=7)
    assert list(table.index) == [128, 256, 64, 512, 32, 16, 8]


def test_the_grid_sampler_lets_the_last_point_be_told() -> None:
    """Optuna's grid sampler stops the study after its last point, which raises outside
    `Study.optimize`; hpexp asks and tells, and its budget ends the study."""
    sampler = make_sampler({"name": "grid"}, 0, {"learning_rate": [0.01, 0.1]})
    study = optuna.create_study(sampler=sampler)
    for _ in range(2):
        t = study.ask()
        study.tell(t, t.suggest_categorical("learning_rate", [0.01, 0.1]))
    assert sorted(t.params["learning_rate"] for t in study.trials) == [0.01, 0.1]


# -- through the command line ---------------------------------------------------------------------


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> None:
    """`hpexp argv` exits 2 with one line naming `expected`, and writes nothing."""
    before = {p.name: p.stat().st_size for p in Path.cwd().iterdir()}
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("hpexp: error: "), err
    assert all(e in err for e in expected), err
    assert {p.name: p.stat().st_size for p in Path.cwd().iterdir()} == before


def test_refused_before_the_study_exists(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_study(workdir, TINY, "tiny.yaml")
    run = ["run", "tiny.yaml", "--around-best"]
    fails(capsys, [*run, "learning_rate"], "no study 'tiny'", "run it first: hpexp run tiny.yaml")
    fails(capsys, [*run, "optimizer"], "does not search 'optimizer'")
    fails(capsys, [*run, "learning_rate", "--seeds", "1"], "--seeds: must be an integer from 2")
    fails(capsys, [*run, "learning_rate", "--n-trials", "3"], "--n-trials", "one trial per value")
    fails(capsys, ["run", "tiny.yaml", "--seeds", "3"], "go with --around-best PARAM")
    assert "--around-best PARAM" in _help(capsys)


def test_refused_without_a_completed_trial(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_study(workdir, TINY, "tiny.yaml")
    with quiet_optuna():
        open_study(hpexp.load_spec("tiny.yaml"))  # created, no trial yet
    fails(capsys, ["run", "tiny.yaml", "--around-best", "learning_rate"], "no completed trial")
    changed = ["run", "tiny.yaml", "--set", "seed=1", "--around-best", "learning_rate"]
    fails(capsys, changed, "already exists with a different seed")
    assert optuna.get_all_study_names(journal_study(workdir, "tiny")._storage) == ["tiny"]


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    return capsys.readouterr().out


# -- whole studies --------------------------------------------------------------------------------


@pytest.mark.slow
def test_around_the_best_of_a_study(studydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = run(tiny(budget={"n_trials": 3}))
    best = base.best_trial
    result = run(base.spec, around_best="learning_rate", seeds=2)
    values = around_values(base.spec.search["learning_rate"], best.params["learning_rate"])
    assert result.name == "tiny-around-learning_rate" and len(values) >= 3
    trials = result.study.trials
    assert sorted(t.params["learning_rate"] for t in trials) == values
    assert all(t.state.name == "COMPLETE" for t in trials)
    kept = [k for k in HYPERPARAMETERS if k != "learning_rate"]
    recorded = best.user_attrs["record"]["values"]
    for t in trials:
        record = t.user_attrs["record"]
        assert len(record["seeds"]) == 2 and len(record["per_seed"]["val_accuracy"]) == 2
        assert {k: record["values"][k] for k in kept} == {k: recorded[k] for k in kept}
    table = result.compare("learning_rate")
    assert sorted(table.index) == values and table["count"].tolist() == [1] * len(values)
    assert table["se"].notna().all()  # from the seeds of each value
    assert_agree(result)  # a study like any other: its runs in MLflow, `hpexp check` clean

    # the command resumes it: nothing to add; it ends with the table, the best value marked
    capsys.readouterr()
    write_study(studydir, TINY | {"budget": {"n_trials": 3}}, "tiny.yaml")
    argv = ["run", "tiny.yaml", "--around-best", "learning_rate", "--seeds", "2", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"already has {len(values)} of {len(values)} trials" in out
    tail = out[out.index("learning_rate around trial") :].splitlines()
    assert tail[0].startswith(f"learning_rate around trial {best.number} of study 'tiny'")
    assert len(tail) == 3 + len(values)  # title, header, index name, one row per value
    assert sum(line.split()[1:2] == ["*"] for line in tail) == 1
    assert len(journal_study(studydir, result.name).trials) == len(values)

    main(["show", result.name])
    assert "learning_rate around trial" in capsys.readouterr().out
    wait_for_writers(studydir)  # the study run's artifacts, written after `run` returned
    # another number of seeds is another study: refused, nothing written
    fails(capsys, [*argv[:-2], "3"], "has a different repeats", "--around-name")

    # a choice, from the result: every choice, the same best
    by_activation = base.around_best("activation", seeds=2, verbose=False, wait_for_mlflow=True)
    assert by_activation.name == "tiny-around-activation"
    assert sorted(t.params["activation"] for t in by_activation.study.trials) == ["relu", "tanh"]
    assert set(by_activation.compare("activation")["count"]) == {1}
    again = hpexp.load_study(by_activation.name)
    assert again.spec.around_best == by_activation.spec.around_best
    assert again.spec.around_best["trial"] == best.number
