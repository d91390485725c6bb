"""The tables of a re-evaluation (`hpexp.reevaluation`): statistics over seeds, the table, text.

Per configuration, over the values of its seeds (diverged seeds left out): mean, std (ddof 1),
standard error and 95% t interval, from `hpexp.search.repeats.summary`. Against the best
configuration (the best validation mean): Welch's t test (`scipy.stats.ttest_ind` with
equal_var=False, two-sided) and Hedges' g, the standardized difference of the means with the
small-sample correction,

    g = (x̄ − x̄_best) / s_pooled · (1 − 3 / (4(n + n_best) − 9)),
    s_pooled² = ((n − 1) s² + (n_best − 1) s_best²) / (n + n_best − 2).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpexp.search.repeats import SUFFIXES, summary

__all__ = [
    "ATTRS",
    "columns",
    "hedges_g",
    "reevaluation_text",
    "rows",
    "statistics",
    "table",
    "welch_p",
]

#: What a table's `attrs` hold, from its record (and `warnings`).
ATTRS = (
    "study",
    "metric",
    "test_metric",
    "direction",
    "top",
    "seeds",
    "top_configurations",
    "completed",
    "best",
    "created",
)


# -- statistics over seeds ------------------------------------------------------------------------


def statistics(name: str, values: Sequence[float | None]) -> dict[str, float]:
    """`summary` (mean, std, sem, 95% interval) of the finite values; NaN with fewer than 2."""
    finite = _finite(values)
    if len(finite) < 2:
        return dict.fromkeys([name, *(name + s for s in SUFFIXES)], math.nan)
    return summary(name, finite)


def welch_p(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """The two-sided p-value of Welch's t test of equal means (NaN with fewer than 2 values
    on a side, or no spread at all)."""
    from scipy.stats import ttest_ind

    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def hedges_g(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Hedges' g of a against b: (ā − b̄) / s_pooled · (1 − 3 / (4(n_a + n_b) − 9)) over the
    finite values (NaN with fewer than 2 on a side, or no spread at all)."""
    a, b = _finite(a), _finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    sa, sb = summary("a", a), summary("b", b)
    pooled = math.sqrt(((na - 1) * sa["a_std"] ** 2 + (nb - 1) * sb["b_std"] ** 2) / (na + nb - 2))
    if pooled == 0:
        return math.nan
    return (sa["a"] - sb["b"]) / pooled * (1 - 3 / (4 * (na + nb) - 9))


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


# -- the table ----------------------------------------------------------------------------------


def columns(metric: str, test_metric: str) -> list[str]:
    """The table's columns, in order."""
    stats = [name + s for name in (metric, test_metric) for s in ("", *SUFFIXES)]
    return [
        "trial",
        "baseline",
        "rank",
        "search_value",
        *stats,
        "p_value",
        "hedges_g",
        "winners_curse",
        "n_seeds",
        "diverged",
    ]


def rows(runs: list[dict[str, Any]], metric: str, direction: str) -> tuple[list[dict], int | None]:
    """The table's rows from the re-evaluated configurations (`runs`: trial, baseline, rank,
    search_value, per_seed {metric: [one value per seed]}, diverged [seed indices]), best
    validation mean first (those without one last), and the best configuration's trial."""
    stats = [statistics(metric, run["per_seed"][metric]) for run in runs]
    sign = -1.0 if direction == "maximize" else 1.0
    scored = [i for i, s in enumerate(stats) if math.isfinite(s[metric])]
    order = sorted(scored, key=lambda i: sign * stats[i][metric])
    order += [i for i in range(len(runs)) if i not in scored]
    if not scored:
        return [_row(runs[i], stats[i], metric, []) for i in order], None
    best = runs[order[0]]
    out = [
        _row(runs[i], stats[i], metric, [] if i == order[0] else best["per_seed"][metric])
        for i in order
    ]
    return out, best["trial"]


def _row(
    run: dict[str, Any], stats: dict[str, float], metric: str, best: Sequence[float | None]
) -> dict[str, Any]:
    """One configuration's row: `stats` of its validation values, those of its test values,
    the test against the `best` configuration's validation values, the winner's curse."""
    test_metric = "test_" + metric.removeprefix("val_")
    values = run["per_seed"][metric]
    return {
        "trial": run["trial"],
        "baseline": run["baseline"],
        "rank": run["rank"],
        "search_value": run["search_value"],
        **stats,
        **statistics(test_metric, run["per_seed"].get(test_metric, [])),
        "p_value": welch_p(values, best),
        "hedges_g": hedges_g(values, best),
        "winners_curse": run["search_value"] - stats[metric],
        "n_seeds": len(values) - len(run["diverged"]),
        "diverged": len(run["diverged"]),
    }


def table(record: dict[str, Any]) -> pd.DataFrame:
    """A stored record as the table `reevaluate` returns: one row per configuration, best
    re-evaluated validation mean first. Columns: trial, baseline, rank (among the completed
    trials, 1 = best; <NA> for a baseline that did not complete), search_value (the search's
    validation score), the validation metric's mean (e.g. val_accuracy), _std, _sem,
    _ci95_low, _ci95_high, the same for the test metric (test_accuracy, ...), p_value and
    hedges_g against the best configuration, winners_curse, n_seeds, diverged. `attrs` holds
    the record's study, metric, test_metric, direction, top, seeds, top_configurations (how
    many rows are of the top K), completed (trials ranked), best (its trial), created and
    warnings."""
    metric, test_metric = record["metric"], record["test_metric"]
    names = columns(metric, test_metric)
    frame = pd.DataFrame([[row.get(c) for c in names] for row in record["rows"]], columns=names)
    types: dict[str, Any] = {c: "float64" for c in names}
    types |= {"trial": "int64", "baseline": "bool", "rank": "Int64"}
    types |= {"n_seeds": "int64", "diverged": "int64"}
    frame = frame.astype({c: object for c in names}).astype(types)
    for key in ATTRS:
        frame.attrs[key] = record.get(key)
    frame.attrs["warnings"] = list(record.get("warnings") or [])
    return frame


# -- as text --------------------------------------------------------------------------------------


def reevaluation_text(frame: pd.DataFrame) -> str:
    """The table as `hpexp reevaluate` prints it: a head line, one line per configuration
    (mean ± half-width of the 95% interval), a legend."""
    a = frame.attrs
    metric, test = a["metric"], a["test_metric"]
    extra = len(frame) - a["top_configurations"]
    head = (
        f"study '{a['study']}': the top {a['top_configurations']} of {a['completed']} completed "
        "trials"
        + (f" and {extra} baseline{'s' * (extra != 1)}" if extra else "")
        + f", retrained with {a['seeds']} fresh seeds each"
        + ("; * marks the study's baselines" if frame["baseline"].any() else "")
    )
    body = pd.DataFrame(
        {
            "trial": [f"{t}{'*' if b else ''}" for t, b in _pairs(frame, "baseline")],
            "rank": ["-" if r is pd.NA else str(r) for r in frame["rank"]],
            "search": [_num(v) for v in frame["search_value"]],
            metric: [_interval(frame, i, metric) for i in range(len(frame))],
            test: [_interval(frame, i, test) for i in range(len(frame))],
            "p": ["best" if t == a["best"] else _p(p) for t, p in _pairs(frame, "p_value")],
            "g": ["" if t == a["best"] else _num(g, 2) for t, g in _pairs(frame, "hedges_g")],
            "curse": [_num(v, sign=True) for v in frame["winners_curse"]],
            "seeds": [
                _seeds(n, d) for n, d in zip(frame["n_seeds"], frame["diverged"], strict=True)
            ],
        }
    )
    legend = (
        f"{metric}, {test}: mean ± half-width of the 95% t interval over the seeds. "
        f"p: Welch's t test of {metric} against the best (trial {a['best']}); g: Hedges' g "
        f"against it (negative: lower {metric}). curse: the search's {metric} minus the "
        "re-evaluated mean (the winner's curse)."
    )
    return "\n".join([head, body.to_string(index=False), _wrap(legend)])


def _pairs(frame: pd.DataFrame, column: str) -> list[tuple[int, float]]:
    return list(zip(frame["trial"], frame[column], strict=True))


def _interval(frame: pd.DataFrame, i: int, name: str) -> str:
    mean, high = frame[name].iloc[i], frame[f"{name}_ci95_high"].iloc[i]
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4f} ± {high - mean:.4f}" if math.isfinite(high) else f"{mean:.4f}"


def _num(value: float, digits: int = 4, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def _seeds(n: int, diverged: int) -> str:
    return f"{n}" if not diverged else f"{n} ({diverged} diverged)"


def _wrap(text: str, width: int = 100) -> str:
    import textwrap

    return textwrap.fill(text, width)
