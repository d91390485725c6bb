"""From a result back to a study: the best trial's configuration as a `fixed:` block that a
study file takes, and `hpexp best STUDY --yaml` printing it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import hpexp
from hpexp.cli import main
from hpexp.search.hyperparams import HYPERPARAMETERS
from hpexp.search.space import flatten, fold

from .search.conftest import TINY, run, tiny, write_study

PARAMS = {
    "learning_rate": 0.0426,
    "iterations": 44,
    "hidden_layers": 2,
    "hidden_units_1": 10,
    "hidden_units_2": 8,
    "activation": "tanh",
}


def without_search(doc: dict[str, Any], fixed: dict[str, Any], name: str) -> dict[str, Any]:
    """`doc` training `fixed` alone: its search and budget removed."""
    out = copy.deepcopy(doc)
    out.pop("search"), out.pop("budget")
    return {**out, "name": name, "fixed": fixed}


def test_fold_gives_per_layer_values_as_one_list_after_the_fixed_ones() -> None:
    config = fold(hpexp.load_spec(TINY), PARAMS)
    assert config == {
        "optimizer": "adam",
        "eval_every": 5,
        "learning_rate": 0.0426,
        "iterations": 44,
        "hidden_layers": 2,
        "hidden_units": [10, 8],
        "activation": "tanh",
    }
    assert list(config)[:2] == ["optimizer", "eval_every"]  # the study's own first
    assert flatten(config) == {"optimizer": "adam", "eval_every": 5, **PARAMS}


def test_folded_config_loads_as_a_study_without_search() -> None:
    config = fold(hpexp.load_spec(TINY), PARAMS)
    spec = hpexp.load_spec(without_search(TINY, config, "tiny-best"))
    assert spec.search == {} and spec.n_trials == 1
    assert spec.fixed == config


def test_pasting_best_params_names_the_list_form() -> None:
    doc = without_search(TINY, {"hidden_layers": 2, "hidden_units_1": 10}, "x")
    with pytest.raises(hpexp.SpecError, match=r"fixed.hidden_units_1: per-layer values go in one"):
        hpexp.load_spec(doc)


def test_fold_with_a_fixed_depth_and_per_layer_activations() -> None:
    search = {
        "hidden_units": {"int": [2, 16], "per_layer": True},
        "activation": {"choice": ["relu", "tanh"], "per_layer": True},
    }
    spec = hpexp.load_spec(tiny(fixed={"hidden_layers": 3}, search=search))
    params = {f"hidden_units_{l}": 4 + l for l in (1, 2, 3)}
    params |= {f"activation_{l}": "relu" for l in (1, 2, 3)}
    config = fold(spec, params)
    assert config == {
        "hidden_layers": 3,
        "hidden_units": [5, 6, 7],
        "activation": ["relu", "relu", "relu"],
    }
    hpexp.load_spec(without_search(TINY, config, "x"))


def test_fold_without_hidden_layers_sets_no_units() -> None:
    search = {"hidden_layers": {"int": [0, 2]}, "hidden_units": {"int": [2, 16], "per_layer": True}}
    config = fold(hpexp.load_spec(tiny(search=search)), {"hidden_layers": 0})
    assert config == {"optimizer": "adam", "eval_every": 5, "hidden_layers": 0}


@pytest.mark.slow
def test_best_yaml_round_trip_trains_the_same_configuration(
    studydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(tiny(budget={"n_trials": 3}))
    assert result.best_config() == fold(result.spec, result.best_params)
    capsys.readouterr()
    assert main(["best", "tiny", "--yaml"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"# study 'tiny' best trial {result.best_trial.number}: ")
    block = yaml.safe_load(printed)
    assert block == {"fixed": result.best_config()}
    assert "hidden_units: [" in printed  # lists inline, as a study file writes them

    doc = without_search(TINY, block["fixed"], "tiny-best")
    path = write_study(studydir, doc, "best.yaml")
    assert hpexp.load_spec(path).search == {}
    again = run(str(path))
    assert len(again.study.trials) == 1
    best, rerun = (t.user_attrs["record"] for t in (result.best_trial, again.best_trial))
    # every setting resolved alike (the searched run also lists hidden_units_1, _2 by name)
    assert {k: best["values"][k] for k in HYPERPARAMETERS} == rerun["values"]
    assert rerun["layer_dims"] == best["layer_dims"]
