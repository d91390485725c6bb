"""The study file's structure (`hpexp.search.schema`): pydantic's errors become the project's one
line, "file: field: fix", and the first one reported is the first a reader meets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import hpexp
from hpexp.search.factories import PRUNERS, SAMPLERS
from hpexp.search.schema import StudyFile, parse

README = Path(__file__).resolve().parents[2] / "README.md"
BASE: dict[str, Any] = {
    "name": "tiny",
    "dataset": "iris",
    "search": {"learning_rate": {"float": [1.0e-3, 1.0e-1], "log": True}},
    "budget": {"n_trials": 2},
}


def message(doc: dict[str, Any]) -> str:
    with pytest.raises(hpexp.SpecError) as info:
        parse(doc, "s.yaml")
    return str(info.value)


FIRST_ERRORS = [
    pytest.param({"budget": {"n_trials": 0, "trials": 3}},
                 "budget.trials: unknown key; did you mean 'n_trials'?", id="unknown-before-value"),
    pytest.param({"budget": {"timeout": "1h", "n_trials": 0}},
                 "budget.n_trials: must be an integer > 0, got 0", id="fields-in-order"),
    pytest.param({"colour": 1, "name": 3},
                 "colour: unknown key; allowed: name, description, dataset, fixed, search, "
                 "objective, sampler, pruner, budget, repeats, seed, storage, tracking, enqueue, "
                 "workers", id="unknown-top-key"),
    pytest.param({"search": {"l2": 3, "lerning_rate": {}}},
                 "search.l2: must be a mapping with keys float, int, choice, log, step, per_layer",
                 id="entries-in-file-order"),
    pytest.param({"search": {"lerning_rate": {"lg": 1}}},
                 "search.lerning_rate: unknown hyperparameter; did you mean 'learning_rate'?",
                 id="key-before-value"),
    pytest.param({"fixed": {"hidden_units_2": 8}},
                 "fixed.hidden_units_2: per-layer values go in one list, hidden_units: [first, "
                 "second, ...], with hidden_layers set to its length (hpexp best STUDY --yaml "
                 "prints this form)", id="per-layer-name"),
    pytest.param({"objective": [{"metric": "val_cost"}, {"metric": "n_params", "direction": "up"}]},
                 "objective[1].direction: must be maximize or minimize", id="one-of-several"),
    pytest.param({"objective": [{"direction": "up"}]},
                 "objective: missing required key 'metric'", id="missing-before-value"),
    pytest.param({"tracking": {"uri": 5}},
                 "tracking: uri and experiment must be text", id="at-the-parent"),
    pytest.param({"seed": 2**32},
                 "seed: must be an integer in [0, 4294967295], got 4294967296", id="seed-range"),
    pytest.param({"sampler": ["tpe"]},
                 "sampler: must be {name: ..., options}; names: tpe, random, grid, cmaes, qmc, "
                 "nsga2", id="sampler-shape"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), FIRST_ERRORS)
def test_first_error_as_one_line(changes: dict[str, Any], expected: str) -> None:
    assert message({**BASE, **changes}) == f"s.yaml: {expected}"


def test_empty_values_mean_the_defaults() -> None:
    doc = {**BASE, "fixed": None, "sampler": "", "tracking": {}, "enqueue": [], "objective": None}
    file = parse(doc, "s.yaml")
    assert (file.fixed, file.sampler, file.enqueue, file.objective) == ({}, {}, None, None)


def test_numbers_keep_their_type() -> None:
    doc = {**BASE, "fixed": {"l2": 0}, "search": {"dropout": {"float": [0, 0.5]}}}
    spec = hpexp.load_spec(doc)
    assert type(spec.fixed["l2"]) is int and type(spec.search["dropout"].low) is int


def test_readme_describes_every_key_sampler_and_pruner() -> None:
    text = README.read_text()
    table = text[text.index("| key | what it holds |") :]
    for key in set(StudyFile.model_fields) - {"name", "description", "seed", "workers"}:
        assert re.search(rf"\| [^|]*`{key}`", table), f"README's study-file table lacks {key}"
    sampler = next(line for line in table.splitlines() if line.startswith("| `sampler`"))
    pruner = next(line for line in table.splitlines() if line.startswith("| `pruner`"))
    assert all(f"`{name}`" in sampler for name in SAMPLERS)
    assert all(f"`{name}`" in pruner for name in PRUNERS)
