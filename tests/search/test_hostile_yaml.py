"""Hostile study files and `--set` values: alias bombs, duplicate keys, non-finite numbers.

Each is refused by `hpexp run` in a fresh folder with exit code 2, one line on stderr and nothing
written next to the study file; an alias bomb is refused within bounded memory and time.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpexp.errors import SpecError
from hpexp.search.yaml_input import MAX_DEPTH, MAX_VALUES, load_yaml

from .conftest import HPEXP_TIMEOUT, hpexp_env, one_line

MEMORY_LIMIT = 1536 * 2**20  # address space of the refusing process, bytes
BOMB_SECONDS = 30  # an alias bomb is refused within this time (unrefused: minutes, 5 GB)

BASE = {
    "name": "tiny",
    "dataset": "iris",
    "fixed": "{iterations: 20}",
    "search": "{learning_rate: {float: [1.0e-3, 1.0e-1], log: true}}",
    "budget": "{n_trials: 2}",
}


def study(*extra: str, **entries: str) -> str:
    """The tiny iris study as YAML text, one line per top-level key (name on line 1); keywords
    replace an entry's value by raw YAML text, `extra` lines follow at the end."""
    lines = [f"{key}: {value}" for key, value in {**BASE, **entries}.items()]
    return "\n".join([*lines, *extra]) + "\n"


def bomb(levels: int = 9, width: int = 10) -> str:
    """A flow list of `levels` anchored lists, each repeating the previous one `width` times:
    about 500 characters that expand to width**levels values."""
    items = ["&a0 [" + ", ".join(["relu"] * width) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def refused(
    workdir: Path,
    text: str,
    *args: str,
    expected: tuple[str, ...] = (),
    seconds: float = HPEXP_TIMEOUT,
) -> str:
    """Run `hpexp run study.yaml ARGS` in `workdir` (an empty folder) on `text`, within
    MEMORY_LIMIT and `seconds`: exit code 2, one line on stderr naming `expected`, no traceback,
    and nothing written besides the study file. Returns the line."""
    (workdir / "study.yaml").write_text(text)
    env = {**hpexp_env(), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", "run", "study.yaml", "--no-progress", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=_limit_memory,
    )
    assert time.monotonic() - started < seconds
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("hpexp"), line
    missing = [s for s in expected if s not in line]
    assert not missing, f"{missing} not in: {line}"
    assert sorted(p.name for p in workdir.iterdir()) == ["study.yaml"]
    return line


# -- alias bombs ----------------------------------------------------------------------------------

LIMIT = f"more than {MAX_VALUES} values"


@pytest.mark.slow
def test_alias_bomb_in_search_choices(tmp_path: Path) -> None:
    text = study(search=f"{{activation: {{choice: {bomb()}}}}}")
    expected = ("study.yaml (line 4)", "aliases", LIMIT, "write the")
    refused(tmp_path, text, expected=expected, seconds=BOMB_SECONDS)


@pytest.mark.slow
def test_alias_bomb_as_dataset_option(tmp_path: Path) -> None:
    text = study(dataset=f"{{name: iris, junk: {bomb()}}}")
    refused(
        tmp_path, text, expected=("study.yaml (line 2)", "aliases", LIMIT), seconds=BOMB_SECONDS
    )


@pytest.mark.slow
def test_alias_bomb_in_a_set_value(tmp_path: Path) -> None:
    line = refused(tmp_path, study(), "--set", f"dataset.junk={bomb()}", seconds=BOMB_SECONDS)
    assert line.startswith("hpexp: error: --set dataset.junk (line 1): aliases"), line
    assert LIMIT in line


@pytest.mark.slow
def test_alias_bomb_of_mappings(tmp_path: Path) -> None:
    levels = [f"k{i}: &k{i} {{" + ", ".join(f"x{j}: *k{i - 1}" for j in range(10)) + "}"
              for i in range(1, 9)]  # fmt: skip
    text = study(fixed=f"{{iterations: 20, junk: {{k0: &k0 {{x: relu}}, {', '.join(levels)}}}}}")
    refused(
        tmp_path, text, expected=("study.yaml (line 3)", "aliases", LIMIT), seconds=BOMB_SECONDS
    )


@pytest.mark.slow
def test_alias_inside_its_own_value(tmp_path: Path) -> None:
    text = study(dataset="&d {name: iris, junk: *d}")
    refused(tmp_path, text, expected=("study.yaml (line 2)", "alias *d", "inside the value"))


@pytest.mark.slow
def test_nesting_too_deep(tmp_path: Path) -> None:
    depth = MAX_DEPTH + 10
    text = study(dataset="{name: iris, junk: " + "[" * depth + "]" * depth + "}")
    refused(tmp_path, text, expected=("study.yaml (line 2)", f"more than {MAX_DEPTH} deep"))


# -- duplicate keys -------------------------------------------------------------------------------

DUPLICATES = [
    pytest.param(study("name: other"), ("study.yaml: name:", "lines 1 and 6"), id="top-level"),
    pytest.param(study(fixed="\n  optimizer: adam\n  iterations: 20\n  optimizer: gd"),
                 ("study.yaml: fixed.optimizer:", "'optimizer' appears twice", "lines 4 and 6"),
                 id="nested"),
    pytest.param(study(search="{learning_rate: {float: [0.1, 1], float: [0.2, 1]}}"),
                 ("search.learning_rate.float:", "lines 4 and 4"), id="same-line"),
    pytest.param(study("enqueue:", "  - {learning_rate: 0.01}", "  - {learning_rate: 0.01,",
                       "     learning_rate: 0.02}"),
                 ("enqueue[1].learning_rate:", "lines 8 and 9"), id="in-a-list"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("text", "expected"), DUPLICATES)
def test_duplicate_key(tmp_path: Path, text: str, expected: tuple[str, ...]) -> None:
    refused(tmp_path, text, expected=(*expected, "keep one"))


@pytest.mark.slow
def test_duplicate_key_in_a_set_value(tmp_path: Path) -> None:
    args = ("--set", "fixed={optimizer: adam, optimizer: gd}")
    line = refused(tmp_path, study(), *args, expected=("'optimizer' appears twice",))
    assert line.startswith("hpexp: error: --set fixed: optimizer:"), line


# -- non-finite numbers ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_timeout_argument_must_be_finite_and_positive(tmp_path: Path, value: str) -> None:
    refused(tmp_path, study(), f"--timeout={value}",
            expected=("--timeout", "finite number of seconds > 0", repr(value)))  # fmt: skip


NON_FINITE = [
    pytest.param({"search": "{learning_rate: {float: [.nan, 0.1]}}"},
                 ("search.learning_rate.float", "both finite", "nan"), id="range-nan"),
    pytest.param({"search": "{learning_rate: {float: [1.0e-3, .inf]}}"},
                 ("search.learning_rate.float", "both finite", "inf"), id="range-inf"),
    pytest.param({"search": "{l2: {float: [0.0, 1.0], step: .inf}}"},
                 ("search.l2.step", "finite", "inf"), id="step-inf"),
    pytest.param({"search": "{learning_rate: {choice: [0.01, .nan]}}"},
                 ("search.learning_rate.choice", "nan"), id="choice-nan"),
    pytest.param({"fixed": "{iterations: 20, l2: 1.0e+999}"},
                 ("fixed.l2", "inf"), id="fixed-overflow"),
    pytest.param({"budget": "{timeout: .inf}"},
                 ("budget.timeout", "finite", "inf"), id="budget-timeout-inf"),
    pytest.param({"budget": "{n_trials: .inf}"},
                 ("budget.n_trials", "integer", "inf"), id="budget-n_trials-inf"),
    pytest.param({"sampler": "{name: tpe, prior_weight: .nan}"},
                 ("sampler.prior_weight", "finite", "nan"), id="sampler-option-nan"),
    pytest.param({"dataset": "{name: iris, val_fraction: .nan}"},
                 ("dataset", "val_fraction", "finite"), id="dataset-option-nan"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("entries", "expected"), NON_FINITE)
def test_non_finite_number_in_study_file(
    tmp_path: Path, entries: dict[str, str], expected: tuple[str, ...]
) -> None:
    refused(tmp_path, study(**entries), expected=("study.yaml", *expected))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param("budget.timeout=.inf", ("budget.timeout", "finite"), id="timeout"),
        pytest.param("fixed.learning_rate=.nan", ("fixed.learning_rate", "nan"), id="fixed"),
        pytest.param("search.learning_rate.float=[.nan, 1]", ("both finite",), id="range"),
    ],
)
def test_non_finite_number_in_a_set_value(
    tmp_path: Path, override: str, expected: tuple[str, ...]
) -> None:
    refused(tmp_path, study(), "--set", override, expected=expected)


# -- the loader itself ----------------------------------------------------------------------------


def test_loads_what_safe_load_loads() -> None:
    studies = sorted(Path(__file__).parents[2].joinpath("studies").glob("*.yaml"))
    assert studies
    for path in studies:
        text = path.read_text()
        assert load_yaml(text, str(path)) == yaml.safe_load(text), path


def test_modest_aliases_and_merge_keys_still_work() -> None:
    text = "base: &b {x: 1, y: [relu, tanh]}\nother:\n  <<: *b\n  x: 2\nagain: [*b, *b]\n"
    assert load_yaml(text, "s.yaml") == yaml.safe_load(text)


def test_a_bomb_is_refused_before_it_is_built() -> None:
    started = time.monotonic()
    with pytest.raises(SpecError, match=r"^s\.yaml \(line 1\): aliases"):
        load_yaml(f"junk: {bomb(levels=30)}", "s.yaml")
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_too_many_values_without_aliases() -> None:
    text = "junk: [" + ", ".join(["1"] * (MAX_VALUES + 1)) + "]\n"
    with pytest.raises(SpecError, match=f"{LIMIT}, the limit"):
        load_yaml(text, "s.yaml")
