"""A study whose search space allows a network over the model-size limit is refused when it is
read: one line naming the fields, the size, the limit and how to raise it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import hpexp
from hpexp.nn.limits import MAX_MODEL_BYTES_ENV, count_parameters

# iris: n_x = 4, n_y = 3
BASE: dict[str, Any] = {
    "name": "sizes",
    "dataset": "iris",
    "search": {"learning_rate": {"float": [0.01, 0.1], "log": True}},
    "budget": {"n_trials": 2},
}


@pytest.fixture(autouse=True)
def default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_MODEL_BYTES_ENV, raising=False)


def study(**changes: Any) -> dict[str, Any]:
    doc = {**BASE, **changes}
    doc["search"] = {**BASE["search"], **changes.get("search", {})}
    return doc


def refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(hpexp.SpecError) as info:
        hpexp.load_spec(doc)
    message = str(info.value)
    assert "\n" not in message
    assert "limit" in message and MAX_MODEL_BYTES_ENV in message
    return message


@pytest.mark.parametrize(
    ("changes", "fields", "size"),
    [
        pytest.param(
            {"search": {"hidden_units": {"int": [8, 100000]}, "hidden_layers": {"int": [1, 3]}}},
            "search.hidden_layers and search.hidden_units",
            "447 GiB",
            id="wide_and_deep",
        ),
        pytest.param(
            {"fixed": {"hidden_layers": 10**9}},
            "fixed.hidden_layers",
            "23.1 TiB",
            id="a_billion_layers",
        ),
        pytest.param(
            {"search": {"hidden_units": {"choice": [8, 16, 10**8]}}},
            "search.hidden_units",
            "GiB",
            id="one_huge_choice",
        ),
        pytest.param(
            {"fixed": {"hidden_layers": 2, "hidden_units": [10, 30000000]}},
            "fixed.hidden_layers and fixed.hidden_units",
            "GiB",
            id="fixed_per_layer",
        ),
        pytest.param(
            {
                "search": {"hidden_units": {"int": [8, 64]}, "hidden_layers": {"int": [0, 3]}},
                "enqueue": [{"hidden_units": 16}, {"hidden_units": 200000}],
            },
            "enqueue[1]",
            "TiB",
            id="enqueued",
        ),
    ],
)
def test_an_impossible_maximum_is_refused(changes: dict[str, Any], fields: str, size: str) -> None:
    message = refusal(study(**changes))
    assert message.startswith(f"<dict>: {fields}: ")
    assert size in message


def test_the_optimizer_with_the_most_state_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """[4, 512, 512, 3]: 266,243 parameters, 2.03 MiB a float64 copy; gd keeps 3 copies, Adam 5."""
    n = count_parameters([4, 512, 512, 3])
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(n * 8 * 4))
    fixed = {"hidden_layers": 2, "hidden_units": 512}
    hpexp.load_spec(study(fixed={**fixed, "optimizer": "gd"}))
    message = refusal(study(fixed=fixed, search={"optimizer": {"choice": ["gd", "adam"]}}))
    assert "with adam" in message and "× 5 copies" in message
    hpexp.load_spec(
        study(fixed={**fixed, "dtype": "float32"}, search={"optimizer": {"choice": ["adam"]}})
    )


def test_the_step_limits_the_largest_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """{int: [8, 1000], step: 100} suggests at most 908 units, not 1000."""
    reachable = count_parameters([4, 908, 3]) * 8 * 3
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(reachable))
    hpexp.load_spec(study(search={"hidden_units": {"int": [8, 1000], "step": 100}}))
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(reachable - 1))
    refusal(study(search={"hidden_units": {"int": [8, 1000], "step": 100}}))


def test_shallow_but_wide_can_be_the_largest(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 1 unit per layer, no hidden layer at all (4·3 + 3 = 15 parameters) is the largest
    network: two layers of one unit have 4+1 + 1+1 + 3+3 = 13."""
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(15 * 8 * 3 - 1))
    message = refusal(study(fixed={"hidden_units": 1}, search={"hidden_layers": {"int": [0, 2]}}))
    assert "0 hidden layer(s)" in message


def test_raising_the_limit_accepts_the_study(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = study(search={"hidden_units": {"int": [8, 20000]}, "hidden_layers": {"int": [1, 2]}})
    refusal(doc)
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "16G")
    assert hpexp.load_spec(doc).search["hidden_units"].high == 20000


def test_shipped_studies_are_within_the_default_limit() -> None:
    for path in sorted(Path("studies").glob("*.yaml")):
        hpexp.load_spec(path)


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


@pytest.mark.slow
def test_cli_refuses_with_one_line_and_creates_nothing(tmp_path: Path) -> None:
    doc = study(search={"hidden_units": {"int": [8, 10**8]}}, fixed={"iterations": 10**9})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != MAX_MODEL_BYTES_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", "run", "study.yaml", "--no-progress"],
        cwd=tmp_path,
        env={**env, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_cap_memory,  # were the study not refused, its first trial would not fit
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("hpexp: error: study.yaml: search.hidden_units: ")
    assert MAX_MODEL_BYTES_ENV in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
