"""Interactive figures of a study (plotly), for `hpexp report`'s report.html.

Most come from `optuna.visualization`; two are drawn here:

    importances(table)                       bars per evaluator, whiskers = bootstrap interval
    learning_curves(trials, metric, param)   the validation metric per trial, one colour per
                                             value (or quantile bin) of `param`, with a legend

Every figure takes an Optuna study (or its trials) and returns a `plotly.graph_objects.Figure`.
Multi-objective studies are drawn on their first objective (`target`), the Pareto front aside.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.colors import qualitative, sample_colorscale

__all__ = [
    "BINS",
    "MAX_VALUES",
    "contour",
    "curve",
    "history",
    "importances",
    "learning_curves",
    "legend_groups",
    "parallel",
    "pareto_front",
    "slices",
]

#: A numeric parameter with more distinct values than this is coloured by quantile bins...
MAX_VALUES = 6
#: ... of this many (as `compare` groups it).
BINS = 4
MISSING = "(not used)"  # a per-layer parameter of a layer the network lacks
_GREY = "#9a9a9a"

Target = Callable[[FrozenTrial], float] | None


@contextlib.contextmanager
def _vis() -> Iterator[Any]:
    """`optuna.visualization`, without its warnings that some plots are experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield optuna.visualization


def history(study: optuna.Study, target: Target, target_name: str) -> go.Figure:
    with _vis() as vis:
        return vis.plot_optimization_history(study, target=target, target_name=target_name)


def parallel(study: optuna.Study, params: list[str], target: Target, name: str) -> go.Figure:
    with _vis() as vis:
        return vis.plot_parallel_coordinate(study, params=params, target=target, target_name=name)


def slices(study: optuna.Study, params: list[str], target: Target, name: str) -> go.Figure:
    with _vis() as vis:
        return vis.plot_slice(study, params=params, target=target, target_name=name)


def contour(study: optuna.Study, params: list[str], target: Target, name: str) -> go.Figure:
    """Objective over pairs of `params` (at least two; a grid of pairs beyond two)."""
    with _vis() as vis:
        return vis.plot_contour(study, params=params, target=target, target_name=name)


def pareto_front(study: optuna.Study, names: list[str]) -> go.Figure:
    """The trade-off between the objectives (the first two when there are more than three:
    optuna draws two or three)."""
    with _vis() as vis:
        if len(names) <= 3:
            return vis.plot_pareto_front(study, target_names=names)
        return vis.plot_pareto_front(
            study, target_names=names[:2], targets=lambda t: (t.values[0], t.values[1])
        )


def importances(table: pd.DataFrame, metric: str) -> go.Figure:
    """`effects()`'s table as horizontal bars: per evaluator, each parameter's importance on
    all completed trials, with the 2.5-97.5 percentiles of its bootstrap resamples as
    whiskers (none when the table has no resamples). Parameters in the first evaluator's
    order, most important on top."""
    evaluators = list(dict.fromkeys(table.index.get_level_values("evaluator")))
    order = list(table.loc[evaluators[0]].index)[::-1]  # plotly draws the first row lowest
    fig = go.Figure()
    for name in evaluators:
        rows = table.loc[name].reindex(order)
        point = rows["importance"].to_numpy(dtype=float)
        low, high = (rows[c].to_numpy(dtype=float) for c in ("low", "high"))
        bar = go.Bar(name=name, x=point, y=order, orientation="h")
        if np.isnan(low).all():  # importances without resamples: bars alone
            bar.hovertemplate = "%{y}: %{x:.3f}<extra>" + name + "</extra>"
        else:
            bar.error_x = {
                "type": "data",
                "symmetric": False,
                "array": np.clip(high - point, 0, None),
                "arrayminus": np.clip(point - low, 0, None),
                "thickness": 1.5,
            }
            bar.customdata = np.column_stack([low, high])
            bar.hovertemplate = (
                "%{y}: %{x:.3f} (95% interval %{customdata[0]:.3f}-%{customdata[1]:.3f})"
                "<extra>" + name + "</extra>"
            )
        fig.add_trace(bar)
    fig.update_layout(
        barmode="group",
        xaxis_title=f"importance for {metric} (sums to 1 per evaluator)",
        yaxis_title="hyperparameter",
        legend_title_text="evaluator",
        height=max(320, 60 + 28 * len(order) * len(evaluators)),
    )
    return fig


def curve(trial: FrozenTrial, metric: str) -> tuple[list[int], list[float]]:
    """A trial's learning curve of `metric` (steps, values): its recorded `curves` attribute,
    else the intermediate values it reported to Optuna."""
    recorded = (trial.user_attrs.get("curves") or {}).get(metric)
    if recorded and len(recorded) == 2 and len(recorded[0]):
        return [int(s) for s in recorded[0]], [float(v) for v in recorded[1]]
    steps = sorted(trial.intermediate_values)
    return steps, [float(trial.intermediate_values[s]) for s in steps]


def legend_groups(values: Sequence[Any]) -> tuple[list[str], dict[str, str]]:
    """A legend label per value, and {label: colour} in legend order. Distinct values are
    their own groups; numbers with more than MAX_VALUES distinct values fall into BINS
    quantile bins (ordered colours); None (a layer the network lacks) is grey."""
    present = [v for v in values if v is not None]
    numeric = bool(present) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
    )
    if numeric and len(set(present)) > MAX_VALUES:
        numbers = pd.Series([np.nan if v is None else float(v) for v in values])
        binned = pd.qcut(numbers, q=BINS, duplicates="drop")
        bins = list(binned.cat.categories)
        names = [f"≤ {bins[0].right:.3g}"] + [_interval(i) for i in bins[1:]]
        name = dict(zip(bins, names, strict=True))
        labels = [MISSING if pd.isna(b) else name[b] for b in binned]
    else:
        distinct = sorted(set(present), key=lambda v: (not numeric, v if numeric else str(v)))
        names = [_value(v) for v in distinct]
        labels = [MISSING if v is None else _value(v) for v in values]
    if numeric:  # ordered values: an ordered scale
        spots = [0.5] if len(names) == 1 else list(np.linspace(0.0, 0.9, len(names)))
        colours = sample_colorscale("Viridis", spots)
    else:
        palette = qualitative.Plotly
        colours = [palette[k % len(palette)] for k in range(len(names))]
    legend = dict(zip(names, colours, strict=True))
    if MISSING in labels:
        legend[MISSING] = _GREY
    return labels, legend


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _interval(interval: pd.Interval) -> str:
    return f"{interval.left:.3g} – {interval.right:.3g}"


def learning_curves(trials: Sequence[FrozenTrial], metric: str, param: str) -> go.Figure:
    """`metric` against iterations for each trial that recorded it, coloured by the trial's
    value of `param` (see `legend_groups`); pruned trials dotted. One legend entry per
    group: clicking it hides or shows that group's curves."""
    drawn = [(t, *curve(t, metric)) for t in trials]
    drawn = [(t, s, v) for t, s, v in drawn if s]
    labels, legend = legend_groups([t.params.get(param) for t, _, _ in drawn])
    rank = {label: k for k, label in enumerate(legend)}
    fig = go.Figure()
    shown: set[str] = set()
    order = sorted(range(len(drawn)), key=lambda k: (rank[labels[k]], drawn[k][0].number))
    for k in order:
        trial, steps, values = drawn[k]
        label = labels[k]
        pruned = trial.state == TrialState.PRUNED
        state = trial.state.name.lower()
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[v if math.isfinite(v) else None for v in values],
                mode="lines",
                name=label,
                legendgroup=label,
                legendrank=rank[label],
                showlegend=label not in shown,
                line={"color": legend[label], "width": 1.5, "dash": "dot" if pruned else "solid"},
                opacity=0.55 if pruned else 0.9,
                hovertemplate=f"trial {trial.number} ({state})<br>{param} = "
                f"{_value(trial.params.get(param, '-'))}<br>iteration %{{x}}<br>{metric} "
                "%{y:.4g}<extra></extra>",
            )
        )
        shown.add(label)
    fig.update_layout(
        xaxis_title="iteration",
        yaxis_title=metric,
        legend_title_text=param,
        hovermode="closest",
    )
    return fig
