"""PNG figures of an Optuna study, drawn with `optuna.visualization.matplotlib`.

`save_study_plots(study, out_dir)` writes what the study can show and skips the rest:

    optimization_history.png   objective of each complete trial and the best so far
    param_importances.png      fANOVA importance of each hyperparameter (seeded)
    parallel_coordinate.png    each complete trial's hyperparameters and objective
    learning_curves.png        the validation metric reported at each iteration, per trial
    pareto_front.png           multi-objective studies only

Multi-objective studies get the history, importances and parallel coordinates of their first
objective. Plotting leaves global matplotlib settings as they were (optuna applies a style sheet;
it is undone), picks the Agg backend only when no backend was chosen yet, and closes every figure
it opens.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
import optuna
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState

__all__ = ["IMPORTANCE_SEED", "MAX_LEGEND_TRIALS", "save_study_plots"]

#: Seed of the fANOVA importance evaluator, so the same study gives the same figure.
IMPORTANCE_SEED = 0
#: Trees in its random forest: 16 rank the parameters as 64 do, in a quarter of the time.
IMPORTANCE_TREES = 16
#: Learning curves of more trials than this are drawn without a legend.
MAX_LEGEND_TRIALS = 10
_DPI = 100
_PAD_INCHES = 0.1  # matplotlib's own pad around a tight box

_logger = logging.getLogger(__name__)

Draw = Callable[[], Any]  # returns the Axes of one figure
Target = Callable[[FrozenTrial], float]


def save_study_plots(
    study: optuna.Study,
    out_dir: str | os.PathLike[str],
    *,
    target_name: str = "value",
    jobs: int = 1,
) -> list[Path]:
    """Write the study's figures as PNG files in `out_dir`; return the paths written.
    With `jobs` > 1 (and fork available), figures are drawn in that many forked processes.

    `target_name` labels the objective (the first objective of a multi-objective study). A
    figure the study cannot fill (no complete trial, a single complete trial for importances and
    parallel coordinates, no reported intermediate values, ...) is skipped, never written empty;
    complete trials whose objective is not finite count as missing.
    """
    out = Path(out_dir)
    study = _in_memory(study)  # forked drawers must not share the storage's connections
    pending = [(draw, out / f"{name}.png", name) for name, draw in _figures(study, target_name)]
    if jobs > 1 and len(pending) > 1 and "fork" in multiprocessing.get_all_start_methods():
        with contextlib.suppress(OSError, BrokenProcessPool):
            return _save_forked(pending, jobs)
    with _plotting():
        return [p for p in (_save(*job) for job in pending) if p is not None]


def _figures(study: optuna.Study, target_name: str) -> list[tuple[str, Draw]]:
    """(name, draw) of every figure the study can fill."""
    trials = study.get_trials(deepcopy=False)
    # complete trials with finite objectives: optuna leaves out the rest (e.g. diverged runs)
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and all(math.isfinite(v) for v in t.values or ())
    ]
    multi = len(study.directions) > 1
    target: Target | None = (lambda t: t.values[0]) if multi else None
    named: dict[str, Any] = {"target": target, "target_name": target_name}
    vis = optuna.visualization.matplotlib
    figures: dict[str, Draw] = {}
    if complete:
        figures["optimization_history"] = partial(vis.plot_optimization_history, study, **named)
    if len(complete) >= 2 and _importance_params(complete):
        evaluator = FanovaImportanceEvaluator(n_trees=IMPORTANCE_TREES, seed=IMPORTANCE_SEED)
        figures["param_importances"] = partial(
            vis.plot_param_importances, study, evaluator=evaluator, **named
        )
    n_params = len({name for t in complete for name in t.params})
    if len(complete) >= 2 and n_params:
        figures["parallel_coordinate"] = partial(_parallel, study, n_params, target, target_name)
    curves = [t for t in trials if t.intermediate_values]
    if curves:
        figures["learning_curves"] = partial(_learning_curves, study, target_name, curves)
    if multi and complete:
        figures["pareto_front"] = partial(_pareto_front, study, target_name)
    return list(figures.items())


def _in_memory(study: optuna.Study) -> optuna.Study:
    """A copy of `study`'s trials in memory."""
    copy = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(), directions=study.directions
    )
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


_PENDING: list[tuple[Draw, Path, str]] = []  # what forked workers draw, by index


def _save_forked(pending: list[tuple[Draw, Path, str]], jobs: int) -> list[Path]:
    """Each figure in a forked process (they inherit `pending`: closures need no pickling)."""
    global _PENDING
    _PENDING = pending
    try:
        context = multiprocessing.get_context("fork")
        workers = min(jobs, len(pending))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            done = list(pool.map(_save_pending, range(len(pending))))
    finally:
        _PENDING = []
    return [p for p in done if p is not None]


def _save_pending(index: int) -> Path | None:
    with _plotting():
        return _save(*_PENDING[index])


# -- figures -------------------------------------------------------------------------------------


def _parallel(study: optuna.Study, n_params: int, target: Target | None, target_name: str) -> Any:
    ax = optuna.visualization.matplotlib.plot_parallel_coordinate(
        study, target=target, target_name=target_name
    )
    fig: Any = ax.figure
    width, height = fig.get_size_inches()
    fig.set_size_inches(max(width, 1.5 * (n_params + 1)), height)  # room for every axis
    return ax


def _learning_curves(study: optuna.Study, target_name: str, curves: Sequence[FrozenTrial]) -> Any:
    ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
    ax.set_title("Learning curves")
    ax.set_xlabel("iteration")
    ax.set_ylabel(target_name)
    legend = ax.get_legend()
    if legend is not None and len(curves) > MAX_LEGEND_TRIALS:
        legend.remove()  # one entry per trial would crowd out the curves
    return ax


def _pareto_front(study: optuna.Study, target_name: str) -> Any:
    n = len(study.directions)
    names = list(study.metric_names or [])
    if len(names) != n:
        names = [target_name] + [f"objective {k}" for k in range(1, n)]
    if n <= 3:
        return optuna.visualization.matplotlib.plot_pareto_front(study, target_names=names)
    # optuna draws 2 or 3 objectives; show the first two
    return optuna.visualization.matplotlib.plot_pareto_front(
        study, target_names=names[:2], targets=lambda t: (t.values[0], t.values[1])
    )


def _importance_params(complete: Sequence[FrozenTrial]) -> list[str]:
    """Parameters every complete trial has and that take more than one value."""
    if not complete:
        return []
    names = set(complete[0].distributions)
    for t in complete[1:]:
        names &= set(t.distributions)
    return sorted(
        name
        for name in names
        if not complete[0].distributions[name].single()
        and len({repr(t.params[name]) for t in complete}) > 1
    )


# -- drawing and saving --------------------------------------------------------------------------


@contextlib.contextmanager
def _plotting() -> Iterator[None]:
    """Agg if no backend was chosen; optuna's warnings off; rcParams restored afterwards."""
    if not _backend_chosen():
        matplotlib.use("Agg")
    with (
        warnings.catch_warnings(),
        matplotlib.rc_context(),  # undoes optuna's plt.style.use("ggplot")
    ):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a parameter with one value gives a flat axis; matplotlib widens it and says so
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        yield


def _backend_chosen() -> bool:
    try:
        return matplotlib.get_backend(auto_select=False) is not None
    except TypeError:  # matplotlib < 3.10 cannot tell without choosing one; leave it be
        return True


def _save(draw: Draw, path: Path, name: str) -> Path | None:
    """Draw one figure and write it to `path`; None (and no file) when it has nothing to show."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    try:
        ax = draw()
        if not _has_content(ax):
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fig = ax.figure  # the tight box found once: bbox_inches="tight" draws twice for it
            box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(_PAD_INCHES)
            fig.savefig(path, dpi=_DPI, bbox_inches=box)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        return path
    except Exception as e:  # a figure that cannot be drawn must not stop the report
        _logger.warning("skipped %s.png: %s: %s", name, type(e).__name__, e)
        return None
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def _has_content(ax: Any) -> bool:
    axes = ax.figure.get_axes() if hasattr(ax, "figure") else []
    return any(a.has_data() for a in axes)
