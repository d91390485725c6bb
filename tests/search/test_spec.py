"""Study files: every kind of bad document is refused with one line naming the file, the field and
the fix; good documents load with the documented defaults."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import hpexp

REPO = Path(__file__).resolve().parents[2]
STUDY_FILES = sorted((REPO / "studies").glob("*.yaml"))

# A small valid study: iris loads in milliseconds.
BASE: dict[str, Any] = {
    "name": "tiny",
    "dataset": "iris",
    "search": {"learning_rate": {"float": [1.0e-3, 1.0e-1], "log": True}},
    "budget": {"n_trials": 2},
}
DROP = object()


def study(**changes: Any) -> dict[str, Any]:
    """BASE with top-level keys replaced (or removed, with DROP)."""
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


def search(**entries: Any) -> dict[str, Any]:
    """BASE's search plus `entries`."""
    return {**BASE["search"], **entries}


L2 = {"l2": {"float": [1.0e-5, 1.0e-1], "log": True}}  # a search without learning_rate
TWO_OBJECTIVES = [{"metric": "val_accuracy"}, {"metric": "n_params"}]


def case(id: str, doc: dict[str, Any], *expected: str) -> Any:
    return pytest.param(doc, expected, id=id)


BAD_STUDIES = [
    # top level
    case("unknown-top-level-key", study(serch={}), "serch", "unknown key", "did you mean 'search'"),
    case("unknown-top-level-key-lists-keys", study(colour="red"), "colour", "allowed:", "budget"),
    case("missing-name", study(name=DROP), "name", "missing required key 'name'"),
    case("missing-dataset", study(dataset=DROP), "dataset", "missing required key 'dataset'"),
    case("no-search-many-trials", study(search=DROP),
         "budget.n_trials", "without search", "n_trials: 1", "repeats"),
    case("name-with-space-and-bang", study(name="my study!"), "name", "letters, digits"),
    case("name-starting-with-dash", study(name="-x"), "name", "letters, digits"),
    case("name-not-text", study(name=42), "name", "e.g. quickstart"),
    case("description-not-text", study(description=3), "description", "must be text"),
    case("storage-not-text", study(storage=3), "storage", "sqlite:///"),
    case("tracking-unknown-key", study(tracking={"url": "x"}),
         "tracking.url", "did you mean 'uri'"),
    # dataset
    case("unknown-dataset", study(dataset="irsi"),
         "dataset", "unknown dataset 'irsi'", "did you mean 'iris'", "digits", "mnist1d", ".csv"),
    case("unknown-dataset-lists-choices", study(dataset="imagenet"),
         "dataset", "choose one of", "breast_cancer", "wine"),
    case("unknown-dataset-option", study(dataset={"name": "iris", "noise": 0.1}),
         "dataset", "'noise'", "valid options", "val_fraction"),
    case("bad-dataset-option-value", study(dataset={"name": "iris", "val_fraction": 1.5}),
         "dataset", "val_fraction", "1.5"),
    case("dataset-not-a-mapping", study(dataset=["iris"]), "dataset", "{name: digits"),
    case("dataset-name-not-text", study(dataset={"name": 3}), "dataset.name", "file path"),
    case("missing-data-file", study(dataset="nope.csv"),
         "dataset.name", "nope.csv", "not found", "relative to the study file"),
    # search: names
    case("unknown-hyperparameter-in-search", study(search=search(learnin_rate={"float": [0, 1]})),
         "search.learnin_rate", "unknown hyperparameter", "did you mean 'learning_rate'"),
    case("unknown-hyperparameter-in-search-lists-names", study(search=search(zzz={"int": [1, 2]})),
         "search.zzz", "unknown hyperparameter", "searchable:", "hidden_units"),
    case("unknown-hyperparameter-in-fixed", study(fixed={"momentum": 0.9}),
         "fixed.momentum", "unknown key", "beta"),
    case("search-eval_every", study(search=search(eval_every={"int": [1, 5]})),
         "search.eval_every", "cannot be searched", "fixed:"),
    case("search-dtype", study(search=search(dtype={"choice": ["float32", "float64"]})),
         "search.dtype", "cannot be searched", "fixed:"),
    case("search-output", study(search=search(output={"choice": ["softmax"]})),
         "search.output", "cannot be searched", "fixed:"),
    case("same-name-fixed-and-search", study(fixed={"learning_rate": 0.1}),
         "search.learning_rate", "also under fixed", "one place"),
    case("search-empty-many-trials", study(search={}), "budget.n_trials", "without search"),
    case("search-not-a-mapping", study(search=["learning_rate"]),
         "search", "learning_rate: {float:"),
    # search: ranges
    case("search-entry-not-a-mapping", study(search=search(l2=0.1)),
         "search.l2", "must be a mapping", "float"),
    case("two-kinds-in-one-entry", study(search=search(l2={"float": [0, 1], "int": [0, 1]})),
         "search.l2", "exactly one of"),
    case("unknown-key-in-entry", study(search=search(l2={"float": [0, 1], "lg": True})),
         "search.l2.lg", "did you mean 'log'"),
    case("empty-range", study(search=search(l2={"float": [0.1, 0.1]})),
         "search.l2.float", "empty or inverted range", "low must be below high"),
    case("inverted-range", study(search=search(iterations={"int": [100, 10]})),
         "search.iterations.int", "inverted", "[100, 10]"),
    case("log-range-low-zero", study(search=search(l2={"float": [0, 0.1], "log": True})),
         "search.l2.log", "low > 0"),
    case("float-range-for-int-iterations", study(search=search(iterations={"float": [10, 100]})),
         "search.iterations", "whole numbers", "{int: [low, high]}"),
    case("fractional-bounds-for-int-range", study(search=search(iterations={"int": [10.5, 100]})),
         "search.iterations.int", "[low, high]"),
    case("range-for-a-named-hyperparameter", study(search=search(activation={"float": [0, 1]})),
         "search.activation", "{choice: [...]}", "relu"),
    case("range-with-one-bound", study(search=search(l2={"float": [0.1]})),
         "search.l2.float", "[low, high]"),
    case("string-bounds", study(search=search(l2={"float": ["1e-5", "1"]})),
         "search.l2.float", "[low, high] with two float numbers"),
    case("boolean-bounds", study(search=search(l2={"float": [True, 1]})),
         "search.l2.float", "[low, high]"),
    case("log-flag-not-boolean", study(search=search(l2={"float": [0.1, 1], "log": "yes"})),
         "search.l2.log", "true or false"),
    case("step-with-log", study(search=search(l2={"float": [0.1, 1], "log": True, "step": 0.1})),
         "search.l2.step", "not with log"),
    case("negative-step", study(search=search(iterations={"int": [10, 100], "step": -5})),
         "search.iterations.step", "> 0"),
    # search: choices
    case("unknown-activation-choice",
         study(search=search(activation={"choice": ["relu", "swish"]})),
         "search.activation.choice", "'swish'", "one of:", "leaky_relu", "tanh"),
    case("unknown-optimizer-choice", study(search=search(optimizer={"choice": ["adam", "sgd"]})),
         "search.optimizer.choice", "'sgd'", "gd", "momentum", "rmsprop"),
    case("empty-choice-list", study(search=search(optimizer={"choice": []})),
         "search.optimizer.choice", "non-empty list"),
    case("choice-not-a-list", study(search=search(optimizer={"choice": "adam"})),
         "search.optimizer.choice", "non-empty list"),
    case("duplicate-choices", study(search=search(optimizer={"choice": ["adam", "gd", "adam"]})),
         "search.optimizer.choice", "twice", "remove the duplicate"),
    case("list-as-a-choice", study(search=search(activation={"choice": [["relu", "tanh"]]})),
         "search.activation.choice", "single value"),
    case("log-with-choice", study(search=search(optimizer={"choice": ["adam"], "log": True})),
         "search.optimizer", "not to choice"),
    case("per-layer-on-scalar-hyperparameter",
         study(search=search(l2={"float": [0.1, 1], "per_layer": True})),
         "search.l2.per_layer", "only hidden_units and activation"),
    case("per-layer-not-boolean",
         study(search=search(hidden_units={"int": [2, 8], "per_layer": "yes"})),
         "search.hidden_units.per_layer", "true or false"),
    # fixed values: wrong types and out-of-range values
    case("string-for-a-number", study(fixed={"l2": "0.1"}), "fixed.l2", "'0.1'", "a number >= 0"),
    case("boolean-for-an-integer", study(fixed={"iterations": True}),
         "fixed.iterations", "True", "an integer > 0"),
    case("float-for-an-integer", study(fixed={"hidden_layers": 1.5}),
         "fixed.hidden_layers", "an integer >= 0"),
    case("unknown-fixed-activation", study(fixed={"activation": "swish"}),
         "fixed.activation", "'swish'", "relu"),
    case("dropout-1", study(fixed={"dropout": 1.0}), "fixed.dropout", "1.0", "in [0, 1)"),
    case("dropout-range-reaches-1", study(search=search(dropout={"float": [0.0, 1.0]})),
         "search.dropout.float", "in [0, 1)"),
    case("beta-1", study(fixed={"beta": 1.0}), "fixed.beta", "in [0, 1)"),
    case("beta2-negative", study(fixed={"beta2": -0.1}), "fixed.beta2", "in [0, 1)"),
    case("learning-rate-0-fixed", study(fixed={"learning_rate": 0}, search=L2),
         "fixed.learning_rate", "a number > 0"),
    case("learning-rate-0-in-range", study(search=search(learning_rate={"float": [0, 0.1]})),
         "search.learning_rate.float", "0.0", "a number > 0"),
    case("batch-size-0", study(fixed={"batch_size": 0}), "fixed.batch_size", "null for full batch"),
    case("units-list-vs-default-depth", study(fixed={"hidden_units": [8, 4]}),
         "fixed.hidden_units", "lists 2 values", "hidden_layers is 1 (the default)",
         "fixed.hidden_layers"),
    case("units-list-vs-fixed-depth", study(fixed={"hidden_layers": 3, "hidden_units": [8, 4]}),
         "fixed.hidden_units", "hidden_layers is 3", "one per hidden layer"),
    case("units-list-with-searched-depth",
         study(fixed={"hidden_units": [8, 4]}, search=search(hidden_layers={"int": [1, 3]})),
         "fixed.hidden_units", "hidden_layers is searched", "per_layer: true"),
    case("per-layer-name-under-fixed", study(fixed={"hidden_units_1": 8}),
         "fixed.hidden_units_1", "one list", "hidden_units: [", "hidden_layers"),
    case("empty-units-list", study(fixed={"hidden_units": []}),
         "fixed.hidden_units", "empty list", "one value per hidden layer"),
    case("output-for-wrong-task", study(fixed={"output": "sigmoid"}),
         "fixed.output", "multiclass", "'softmax'"),
    case("fixed-not-a-mapping", study(fixed=["l2"]), "fixed", "must be a mapping"),
    # objective
    case("unknown-metric", study(objective={"metric": "val_acc"}),
         "objective.metric", "'val_acc'", "val_accuracy"),
    case("metric-not-text", study(objective={"metric": ["val_accuracy"]}),
         "objective.metric", "choose one of"),
    case("val_rmse-on-digits", study(dataset="digits", objective={"metric": "val_rmse"}),
         "objective.metric", "val_rmse needs a regression dataset", "val_accuracy"),
    case("val_accuracy-on-diabetes",
         study(dataset="diabetes", objective={"metric": "val_accuracy"}),
         "objective.metric", "classification dataset", "val_rmse"),
    case("bad-direction", study(objective={"metric": "val_accuracy", "direction": "up"}),
         "objective.direction", "maximize or minimize"),
    case("objective-without-metric", study(objective={"direction": "maximize"}),
         "objective", "missing required key 'metric'"),
    case("empty-objective-list", study(objective=[]), "objective", "at least one"),
    case("same-metric-twice", study(objective=[{"metric": "val_cost"}, {"metric": "val_cost"}]),
         "objective", "twice"),
    case("first-objective-not-validation", study(objective={"metric": "n_params"}),
         "objective", "first objective must be a validation metric"),
    case("multi-objective-with-pruner", study(objective=TWO_OBJECTIVES, pruner="median"),
         "pruner", "single objective", "{name: none}"),
    # sampler and pruner
    case("unknown-sampler", study(sampler="bayes"), "sampler.name", "'bayes'", "tpe", "random"),
    case("unknown-pruner", study(pruner={"name": "asha"}),
         "pruner.name", "'asha'", "median", "hyperband"),
    case("unknown-sampler-option", study(sampler={"name": "tpe", "n_startup": 3}),
         "sampler.n_startup", "not an option of the tpe sampler", "n_startup_trials"),
    case("unknown-pruner-option", study(pruner={"name": "median", "warmup": 3}),
         "pruner.warmup", "not an option of the median pruner", "n_warmup_steps"),
    case("sampler-option-wrong-type", study(sampler={"name": "tpe", "n_startup_trials": "many"}),
         "sampler.n_startup_trials", "an integer", "'many'"),
    case("sampler-option-a-list", study(sampler={"name": "random", "seed": [1]}),
         "sampler.seed", "a number, text or true/false"),
    case("pruner-option-invalid-value", study(pruner={"name": "median", "n_startup_trials": -1}),
         "pruner", "median pruner", "n_startup_trials"),
    case("sampler-not-a-mapping", study(sampler=["tpe"]), "sampler", "name:"),
    case("grid-sampler-with-float-range", study(sampler="grid"),
         "search.learning_rate", "grid sampler", "{choice: [...]}"),
    # budget, repeats, seed
    case("budget-0", study(budget={"n_trials": 0}), "budget.n_trials", "integer > 0", "got 0"),
    case("budget-negative", study(budget={"n_trials": -5}), "budget.n_trials", "got -5"),
    case("budget-fraction", study(budget={"n_trials": 2.5}), "budget.n_trials", "integer > 0"),
    case("budget-both-null", study(budget={"n_trials": None}),
         "budget", "n_trials, timeout or both"),
    case("budget-both-missing", study(budget={}), "budget", "n_trials, timeout or both"),
    case("budget-timeout-0", study(budget={"timeout": 0}), "budget.timeout", "seconds > 0"),
    case("budget-timeout-text", study(budget={"timeout": "1h"}), "budget.timeout", "'1h'"),
    case("budget-unknown-key", study(budget={"trials": 3}), "budget.trials", "'n_trials'"),
    case("repeats-0", study(repeats=0), "repeats", "integer >= 1", "got 0"),
    case("repeats-text", study(repeats="2"), "repeats", "got '2'"),
    case("repeats-boolean", study(repeats=True), "repeats", "got True"),
    case("seed-negative", study(seed=-1), "seed", "got -1"),
    case("seed-fraction", study(seed=1.5), "seed", "integer"),
    case("seed-too-large", study(seed=2**32), "seed", "4294967295"),
    # enqueue
    case("enqueue-not-a-list", study(enqueue={"learning_rate": 0.01}), "enqueue", "must be a list"),
    case("enqueue-unknown-name", study(enqueue=[{"momentum": 0.9}]),
         "enqueue[0].momentum", "unknown key", "learning_rate"),
    case("enqueue-name-not-searched", study(enqueue=[{"learning_rate": 0.01}, {"l2": 0.1}]),
         "enqueue[1].l2", "unknown key", "learning_rate"),
    case("enqueue-invalid-value", study(enqueue=[{"learning_rate": -1}]),
         "enqueue[0].learning_rate", "a number > 0"),
    case("enqueue-list-for-scalar", study(enqueue=[{"learning_rate": [0.1, 0.2]}]),
         "enqueue[0].learning_rate", "[0.1, 0.2]"),
    case("enqueue-list-when-not-searched-per-layer",
         study(search=search(hidden_units={"int": [2, 8]}), enqueue=[{"hidden_units": [4, 4]}]),
         "enqueue[0].hidden_units", "takes one value"),
    case("enqueue-value-outside-choices",
         study(search=search(activation={"choice": ["relu", "tanh"]}),
               enqueue=[{"activation": "sigmoid"}]),
         "enqueue[0].activation", "'sigmoid'", "searched choices", "relu"),
    case("enqueue-units-vs-layers",
         study(search=search(hidden_layers={"int": [1, 3]},
                             hidden_units={"int": [2, 8], "per_layer": True}),
               enqueue=[{"hidden_layers": 2, "hidden_units": [4]}]),
         "enqueue[0].hidden_units", "one value per hidden layer"),
]  # fmt: skip


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _message(source: object, overrides: list[str] | None = None) -> str:
    with pytest.raises(hpexp.SpecError) as info:
        hpexp.load_spec(source, overrides or [])  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


def _assert_has(message: str, expected: tuple[str, ...]) -> None:
    missing = [s for s in expected if s not in message]
    assert not missing, f"{missing} not in: {message}"


@pytest.mark.parametrize(("doc", "expected"), BAD_STUDIES)
def test_bad_study_dict(doc: dict[str, Any], expected: tuple[str, ...]) -> None:
    message = _message(doc)
    assert message.startswith("<dict>: ")
    _assert_has(message, expected)


@pytest.mark.parametrize(("doc", "expected"), BAD_STUDIES)
def test_bad_study_file(tmp_path: Path, doc: dict[str, Any], expected: tuple[str, ...]) -> None:
    path = _write(tmp_path / "my_study.yaml", doc)
    message = _message(path)
    assert message.startswith(f"{path}: "), message
    _assert_has(message, expected)


# -- problems only a file can have ----------------------------------------------------------------


def test_missing_data_file_is_relative_to_the_study_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub" / "study.yaml", study(dataset="data/train.csv"))
    message = _message(path)
    _assert_has(message, ("study.yaml", "dataset.name", str(Path("sub", "data", "train.csv"))))
    _assert_has(message, ("not found", "relative to the study file"))


def test_data_file_next_to_the_study_file_loads(tmp_path: Path, monkeypatch) -> None:
    import pandas as pd

    data = tmp_path / "sub" / "data" / "train.csv"
    data.parent.mkdir(parents=True)
    pd.DataFrame({"a": range(40), "b": [i % 7 for i in range(40)], "y": [0, 1] * 20}).to_csv(
        data, index=False
    )
    path = _write(tmp_path / "sub" / "study.yaml", study(dataset={"name": "data/train.csv"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = hpexp.load_spec(path)
    assert Path(spec.dataset["name"]).resolve() == data.resolve()
    assert spec.metric == "val_accuracy"


def test_bad_values_in_a_data_file_name_the_study_and_the_column(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b,y\n1,x,0\n2,y,1\n3,z,0\n4,w,1\n")
    path = _write(tmp_path / "study.yaml", study(dataset="data.csv"))
    _assert_has(_message(path), ("study.yaml", "dataset", "column 'b'", "not numeric"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: tiny\ndataset: iris\nsearch:\n  learning_rate: {float: [1e-3, 0.1]\n")
    message = _message(path)
    _assert_has(message, ("broken.yaml", "line ", "not valid YAML"))


def test_invalid_yaml_indentation_names_the_right_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: tiny\ndataset: iris\n  search: x\n")
    _assert_has(_message(path), ("broken.yaml (line 3)", "not valid YAML"))


def test_yaml_list_is_not_a_study(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: tiny\n- dataset: iris\n")
    _assert_has(_message(path), ("list.yaml", "must be a mapping", "name, dataset"))


def test_empty_yaml_file_is_not_a_study(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    _assert_has(_message(path), ("empty.yaml", "must be a mapping"))


def test_binary_file_is_not_a_study(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00\x00")
    _assert_has(_message(path), ("data.npz", "cannot read the study file", "YAML"))


def test_missing_study_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for source in ("nope.yaml", "nope", tmp_path / "nope.yaml"):
        _assert_has(_message(source), ("'", "nope", "not found", "studies/"))


# -- --set overrides ------------------------------------------------------------------------------

BAD_OVERRIDES = [
    pytest.param("budget.n_trials", ("--set 'budget.n_trials'", "key=value"), id="no-equals"),
    pytest.param("=3", ("--set '=3'", "key=value"), id="no-key"),
    pytest.param("  =3", ("key=value",), id="blank-key"),
    pytest.param("budget.n_trials=[1,", ("--set", "not valid YAML"), id="value-not-yaml"),
    pytest.param("name.x=1", ("--set name.x", "'name' is not a mapping"), id="into-a-value"),
    pytest.param("budget.n_trials=0", ("budget.n_trials", "got 0"), id="invalid-value"),
    pytest.param("fixed.optimizer=sgd", ("fixed.optimizer", "'sgd'", "adam"), id="unknown-name"),
    pytest.param("serch.l2={float: [0, 1]}", ("serch", "did you mean 'search'"), id="unknown-key"),
]


@pytest.mark.parametrize(("item", "expected"), BAD_OVERRIDES)
def test_bad_override(tmp_path: Path, item: str, expected: tuple[str, ...]) -> None:
    path = _write(tmp_path / "study.yaml", BASE)
    _assert_has(_message(path, [item]), expected)


# -- good studies ---------------------------------------------------------------------------------


def test_there_are_study_files() -> None:
    assert any(p.name == "quickstart.yaml" for p in STUDY_FILES)


@pytest.mark.parametrize("path", STUDY_FILES, ids=[p.stem for p in STUDY_FILES])
def test_every_study_file_loads(path: Path) -> None:
    spec = hpexp.load_spec(path)
    assert spec.source == str(path)
    assert spec.search and spec.objectives
    assert spec.n_trials is not None or spec.timeout is not None


def test_overrides_apply(tmp_path: Path) -> None:
    path = REPO / "studies" / "quickstart.yaml"
    before = path.read_text()
    spec = hpexp.load_spec(path, ["budget.n_trials=3", "fixed.optimizer=momentum"])
    assert spec.n_trials == 3
    assert spec.fixed["optimizer"] == "momentum"
    assert spec.setting("optimizer") == "momentum"
    assert path.read_text() == before
    assert hpexp.load_spec(path).fixed.get("optimizer") != "momentum"


def test_overrides_create_nested_keys_and_parse_yaml_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "study.yaml", BASE)
    spec = hpexp.load_spec(
        path,
        [
            "tracking.experiment=other",
            "search.l2={float: [1.0e-5, 1.0], log: true}",
            "fixed.batch_size=null",
            "seed=7",
        ],
    )
    assert spec.experiment == "other"
    assert spec.search["l2"].kind == "float" and spec.search["l2"].log
    assert spec.fixed["batch_size"] is None
    assert spec.seed == 7


def test_overrides_on_a_spec_and_a_dict() -> None:
    spec = hpexp.load_spec(BASE)
    again = hpexp.load_spec(spec, ["budget.n_trials=5"])
    assert (spec.n_trials, again.n_trials) == (2, 5)
    assert hpexp.load_spec(spec) is spec
    assert hpexp.load_spec(BASE, ["name=renamed"]).name == "renamed"
    assert BASE["name"] == "tiny"  # the caller's dict is left alone


def test_defaults() -> None:
    spec = hpexp.load_spec({"name": "d", "dataset": "iris", "search": BASE["search"]})
    assert spec.metric == "val_accuracy"
    assert spec.directions == ["maximize"]
    assert not spec.multi_objective
    assert spec.sampler == {"name": "tpe"}
    assert spec.pruner == {"name": "median"}
    assert (spec.n_trials, spec.timeout) == (20, None)
    assert (spec.repeats, spec.seed) == (1, 0)
    assert spec.storage == "optuna.journal"
    assert spec.tracking_uri == "sqlite:///mlflow.db"
    assert spec.experiment == "d"
    assert spec.fixed == {} and spec.enqueue == ()
    assert spec.setting("optimizer") == "gd"
    assert spec.setting("output") is None


def test_a_study_without_search_trains_its_fixed_configuration_once() -> None:
    for doc in (study(search=DROP, budget=DROP), study(search={}, budget={"n_trials": 1})):
        spec = hpexp.load_spec({**doc, "fixed": {"hidden_layers": 2, "hidden_units": [8, 4]}})
        assert spec.search == {} and spec.n_trials == 1
        assert spec.fixed["hidden_units"] == [8, 4]


def test_default_objective_for_regression() -> None:
    spec = hpexp.load_spec(study(dataset="diabetes"))
    assert spec.metric == "val_rmse"
    assert spec.directions == ["minimize"]


def test_metric_directions_default_from_the_metric() -> None:
    objectives = [{"metric": "val_r2"}, {"metric": "train_seconds"}]
    spec = hpexp.load_spec(study(dataset="diabetes", objective=objectives))
    assert spec.directions == ["maximize", "minimize"]


def test_multi_objective_defaults_to_no_pruner() -> None:
    spec = hpexp.load_spec(study(objective=TWO_OBJECTIVES))
    assert spec.multi_objective
    assert spec.pruner == {"name": "none"}
    assert [o.metric for o in spec.objectives] == ["val_accuracy", "n_params"]
    assert spec.directions == ["maximize", "minimize"]


def test_budget_with_only_a_timeout() -> None:
    spec = hpexp.load_spec(study(budget={"timeout": 30}))
    assert spec.n_trials is None
    assert spec.timeout == 30.0


def test_search_params_are_parsed() -> None:
    spec = hpexp.load_spec(
        study(
            search={
                "learning_rate": {"float": [1.0e-4, 1.0e-1], "log": True},
                "iterations": {"int": [10, 100], "step": 10},
                "hidden_units": {"int": [2, 16], "per_layer": True},
                "activation": {"choice": ["relu", "tanh"]},
            },
            enqueue=[{"learning_rate": 0.01, "hidden_units": [4, 4], "activation": "tanh"}],
        )
    )
    lr, it, units, act = (spec.search[n] for n in spec.search)
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1.0e-4, 1.0e-1, True)
    assert (it.kind, it.step) == ("int", 10)
    assert units.per_layer
    assert act.choices == ("relu", "tanh")
    assert spec.enqueue == ({"learning_rate": 0.01, "hidden_units": [4, 4], "activation": "tanh"},)


def test_grid_sampler_with_choices_loads() -> None:
    spec = hpexp.load_spec(
        study(sampler="grid", search={"optimizer": {"choice": ["adam", "gd"]}}, pruner="none")
    )
    assert spec.sampler == {"name": "grid"}


def test_sampler_and_pruner_options_are_kept() -> None:
    spec = hpexp.load_spec(
        study(
            sampler={"name": "tpe", "n_startup_trials": 4, "seed": 1},
            pruner={"name": "hyperband", "min_resource": 10, "max_resource": "auto"},
        )
    )
    assert spec.sampler == {"name": "tpe", "n_startup_trials": 4, "seed": 1}
    assert spec.pruner == {"name": "hyperband", "min_resource": 10, "max_resource": "auto"}


def test_study_name_resolves_under_studies(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    spec = hpexp.load_spec("quickstart")
    assert Path(spec.source) == Path("studies", "quickstart.yaml")
    assert spec.name == "quickstart"


def test_spec_is_frozen() -> None:
    import dataclasses

    spec = hpexp.load_spec(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
