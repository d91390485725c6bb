"""Every setting is defined once, in `hpexp.nn.settings`: TrainConfig, study files and README
all read the same table; metrics and the task -> output mapping are defined once as well."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import hpexp
from hpexp.data import TASKS
from hpexp.nn.losses import OUTPUT_FOR_TASK, OUTPUTS
from hpexp.nn.metrics import METRICS
from hpexp.nn.settings import HYPERPARAMETERS, SETTINGS, markdown_table
from hpexp.nn.train import TrainConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_hyperparameter_as_the_table_defines_it() -> None:
    text = README.read_text()
    shown = re.search(r"<!-- hyperparameters[^>]*-->\n(.*?)\n<!-- /hyperparameters -->", text, re.S)
    assert shown, "README lost its <!-- hyperparameters --> block"
    assert shown.group(1) == markdown_table(), (
        "README's table of hyperparameters differs from hpexp/nn/settings.py; replace it with "
        "the output of: python -c 'from hpexp.nn.settings import markdown_table as t; print(t())'"
    )
    for name, h in HYPERPARAMETERS.items():
        row = next(line for line in shown.group(1).splitlines() if line.startswith(f"| `{name}` "))
        assert (h.valid or ", ".join(h.choices)) in row


def test_train_config_fields_are_settings_with_their_defaults() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert f.name in SETTINGS, f"TrainConfig.{f.name} is not in hpexp.nn.settings"
        if f.default is not dataclasses.MISSING:
            assert f.default == SETTINGS[f.name].default, f.name


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_default_is_valid(name: str) -> None:
    setting = SETTINGS[name]
    assert setting.accepts(setting.default)
    assert setting.problem(setting.default) is None


WORDINGS = [
    ("learning_rate", 0, "learning_rate must be > 0, got 0",
     "0.0 is not valid; it must be a number > 0"),
    ("learning_rate", float("inf"), "learning_rate must be finite, got inf",
     "inf is not valid"),
    ("iterations", 2.5, "iterations must be an integer > 0, got 2.5",
     "it must be an integer > 0"),
    ("batch_size", 0, "batch_size must be a positive integer or None (full batch), got 0",
     "0 is not valid; it must be a positive integer, or null for full batch"),
    ("dropout", 1.0, "dropout must be in [0, 1), got 1.0",
     "1.0 is not valid; it must be in [0, 1)"),
    ("l2", float("inf"), "l2 must be finite, got inf",
     "inf is not valid; it must be a number >= 0"),
    ("optimizer", "adma",
     "unknown optimizer 'adma' (did you mean 'adam'?); choose one of: gd, momentum, rmsprop, adam",
     "'adma' is not valid; it must be one of: adam, gd, momentum"),
    ("seed", True, "seed must be an integer >= 0, got True", "True is not valid"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "core", "study"), WORDINGS, ids=[f"{w[0]}={w[1]!r}" for w in WORDINGS]
)
def test_one_rule_two_wordings(name: str, value: object, core: str, study: str) -> None:
    with pytest.raises(hpexp.ConfigError) as info:
        SETTINGS[name].check(value)
    assert str(info.value) == core
    assert study in (SETTINGS[name].problem(value) or "")


def test_numpy_scalars_count_as_the_numbers_they_hold() -> None:
    config = TrainConfig(
        learning_rate=np.float32(0.5), iterations=np.int64(3), batch_size=np.int64(2)
    )
    assert config.iterations == 3
    with pytest.raises(hpexp.ConfigError, match="iterations must be an integer > 0"):
        TrainConfig(learning_rate=0.1, iterations=np.int64(0))


def test_per_layer_values_in_a_study() -> None:
    units = HYPERPARAMETERS["hidden_units"]
    assert units.problem([8, 4]) is None
    assert units.problem([]) == "an empty list; give one value per hidden layer"
    assert units.problem([8, 0]) == "0 is not valid; each value must be an integer >= 1"
    assert HYPERPARAMETERS["l2"].problem([0.1]) is not None  # not a per-layer setting


def test_the_task_decides_the_output() -> None:
    assert set(OUTPUT_FOR_TASK) == set(TASKS)
    for task, output in OUTPUT_FOR_TASK.items():
        assert OUTPUTS[output].task == task


@pytest.mark.parametrize("task", TASKS)
def test_evaluate_returns_the_split_metrics_of_the_task(task: str) -> None:
    n_y = 3 if task == "multiclass" else 1
    model = hpexp.MLP([2, 3, n_y], output=OUTPUT_FOR_TASK[task])
    X = np.random.default_rng(0).standard_normal((2, 6))
    Y = (
        np.eye(3)[:, [0, 1, 2, 0, 1, 2]]
        if task == "multiclass"
        else np.array([[0, 1, 0, 1, 1, 0.0]])
    )
    expected = {name for name, m in METRICS.items() if m.split and task in m.tasks}
    assert set(hpexp.evaluate(model, X, Y)) == expected
    for m in METRICS.values():
        assert m.direction in ("maximize", "minimize")
