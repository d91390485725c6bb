"""Study figures: what each kind of study gets, and what is skipped instead of drawn empty."""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpexp.report.plots import save_study_plots

PNG = b"\x89PNG\r\n\x1a\n"
ORDER = ("optimization_history", "param_importances", "parallel_coordinate", "learning_curves")
ALL = set(ORDER)

SPACE = {
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "hidden_units": IntDistribution(4, 64),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}


def params(k: int) -> dict[str, object]:
    return {
        "learning_rate": 10 ** (-4 + 4 * ((k * 7) % 11) / 10),
        "hidden_units": 4 + (k * 13) % 61,
        "activation": ("relu", "tanh")[k % 2],
    }


def curve(k: int, steps: int) -> dict[int, float]:
    rate = 0.02 + 0.01 * (k % 5)
    return {10 * s: 0.9 * (1 - math.exp(-rate * s)) for s in range(1, steps + 1)}


def study_of(
    n_complete: int = 0,
    n_pruned: int = 0,
    n_failed: int = 0,
    steps: int = 0,
    space: dict | None = None,
    directions: tuple[str, ...] = ("maximize",),
) -> optuna.Study:
    """A study filled with made-up trials (no objective runs)."""
    space = SPACE if space is None else space
    study = optuna.create_study(directions=list(directions))
    k = 0
    for state, n in (
        (TrialState.COMPLETE, n_complete),
        (TrialState.PRUNED, n_pruned),
        (TrialState.FAIL, n_failed),
    ):
        for _ in range(n):
            values = None
            values_curve = curve(k, steps)
            if state == TrialState.COMPLETE:
                last = values_curve[max(values_curve)] if values_curve else 0.5 + 0.01 * k
                values = [last + 0.1 * j for j in range(len(directions))]
                if len(directions) > 1:
                    values = [0.5 + 0.3 * math.sin(k), 0.5 + 0.3 * math.cos(k)] + [
                        0.1 * j for j in range(len(directions) - 2)
                    ]
            study.add_trial(
                create_trial(
                    state=state,
                    values=values,
                    params={name: params(k)[name] for name in space},
                    distributions=space,
                    intermediate_values=values_curve if len(directions) == 1 else None,
                )
            )
            k += 1
    return study


def written(study: optuna.Study, out: Path, **kw: str) -> set[str]:
    """Run save_study_plots; check every returned file is a PNG in `out` and nothing else is."""
    paths = save_study_plots(study, out, **kw)
    for p in paths:
        assert p.parent == out and p.suffix == ".png"
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 1000
    on_disk = {p.name for p in out.iterdir()} if out.exists() else set()
    assert on_disk == {p.name for p in paths}
    return {p.stem for p in paths}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        pytest.param({}, set(), id="no-trials"),
        pytest.param({"n_complete": 1}, {"optimization_history"}, id="one-complete"),
        pytest.param(
            {"n_complete": 1, "steps": 5},
            {"optimization_history", "learning_curves"},
            id="one-complete-with-curve",
        ),
        pytest.param({"n_pruned": 4, "steps": 5}, {"learning_curves"}, id="all-pruned"),
        pytest.param({"n_pruned": 3}, set(), id="all-pruned-no-curves"),
        pytest.param({"n_failed": 3}, set(), id="all-failed"),
        pytest.param({"n_complete": 6}, ALL - {"learning_curves"}, id="no-intermediate-values"),
    ],
)
def test_figures_match_what_the_study_holds(counts: dict, expected: set, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    open_before = plt.get_fignums()
    assert written(study_of(**counts), out) == expected
    assert plt.get_fignums() == open_before


@pytest.mark.slow
def test_single_parameter(tmp_path: Path) -> None:
    study = study_of(n_complete=3, space={"learning_rate": SPACE["learning_rate"]})
    assert written(study, tmp_path) == ALL - {"learning_curves"}


@pytest.mark.slow
def test_constant_parameter_has_no_importance_plot(tmp_path: Path) -> None:
    space = {"hidden_units": IntDistribution(4, 64)}
    study = optuna.create_study()
    for v in (0.3, 0.2, 0.1):
        study.add_trial(create_trial(value=v, params={"hidden_units": 8}, distributions=space))
    assert "param_importances" not in written(study, tmp_path)


def test_no_parameters(tmp_path: Path) -> None:
    study = study_of(n_complete=4, space={})
    assert written(study, tmp_path) == {"optimization_history"}


@pytest.mark.slow
@pytest.mark.parametrize("n_objectives", [2, 4], ids=lambda n: f"{n}-objectives")
def test_multi_objective(n_objectives: int, tmp_path: Path) -> None:
    study = study_of(n_complete=6, directions=("maximize",) + ("minimize",) * (n_objectives - 1))
    assert written(study, tmp_path, target_name="val_accuracy") == (
        ALL - {"learning_curves"} | {"pareto_front"}
    )


def test_multi_objective_without_complete_trials(tmp_path: Path) -> None:
    study = study_of(n_failed=2, directions=("maximize", "minimize"))
    assert written(study, tmp_path) == set()


@pytest.mark.slow
def test_forty_trials_quick_repeatable_and_global_state_left_alone(tmp_path: Path) -> None:
    study = study_of(n_complete=30, n_pruned=10, n_failed=1, steps=50)
    open_before = plt.get_fignums()
    with matplotlib.rc_context({"axes.facecolor": "white"}):  # ggplot's is grey
        before = dict(matplotlib.rcParams)
        backend = matplotlib.get_backend()
        start = time.process_time()
        a = save_study_plots(study, tmp_path / "a", target_name="val_accuracy")
        assert time.process_time() - start < 5.0  # CPU seconds: other processes do not count
        assert dict(matplotlib.rcParams) == before  # optuna's style sheet is undone
        assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_before
    b = save_study_plots(study, tmp_path / "b", target_name="val_accuracy")
    assert [p.name for p in a] == [p.name for p in b] == [f"{n}.png" for n in ORDER]
    for pa, pb in zip(a, b, strict=True):  # seeded importances: the same study, the same pixels
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_diverged_trials_count_as_missing(tmp_path: Path) -> None:
    study = optuna.create_study()
    for k, value in enumerate([math.inf, math.inf, 0.4, math.nan]):
        state = TrialState.FAIL if math.isnan(value) else TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=state,
                value=None if math.isnan(value) else value,
                params=params(k),
                distributions=SPACE,
            )
        )
    assert written(study, tmp_path) == {"optimization_history"}  # one finite trial


def test_open_figures_of_the_caller_survive(tmp_path: Path) -> None:
    fig = plt.figure()
    try:
        save_study_plots(study_of(n_complete=1), tmp_path)
        assert plt.fignum_exists(fig.number)
    finally:
        plt.close(fig)
