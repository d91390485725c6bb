"""A study report: `report.html` (interactive figures and the tables, one file that opens
offline) and `report.md` (the same tables in Markdown, naming the figures).

    files = write_report(result, color_by="activation")   # beside the study's networks
    files.html, files.markdown                              # the two paths

What it holds, each part left out (and named as such) when the study cannot fill it:

    figures   optimization history; importance per evaluator with bootstrap intervals;
              learning curves coloured by one parameter (default: the most important);
              parallel coordinates; slice; contour (the most important parameters, two or
              more); Pareto front (several objectives)
    tables    the top trials; the importances; `result.compare(param)` for each searched
              parameter; the re-evaluation (`result.reevaluation()`, where the study has one)

The HTML embeds plotly.js once, in the page's head, and loads nothing from the network.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from hpexp.errors import HpexpError
from hpexp.report.summary import counts_line, top_trials

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpexp.result import StudyResult

__all__ = [
    "CONTOUR_PARAMS",
    "HTML_NAME",
    "MARKDOWN_NAME",
    "Report",
    "ReportFiles",
    "build_report",
    "check_color_by",
    "write_report",
]

HTML_NAME, MARKDOWN_NAME = "report.html", "report.md"
#: The contour figure pairs this many of the most important parameters (an n × n grid).
CONTOUR_PARAMS = 4
#: Rows of the top-trials table.
TOP = 10
#: Bootstrap resamples of the importances (see `hpexp.report.effects`).
RESAMPLES = 30
#: Below this many completed trials the importances come without bootstrap intervals: the
#: resamples of so few trials repeat the same handful, and their percentiles say little.
MIN_RESAMPLED_TRIALS = 10

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    """One figure's section: `key` is its anchor, and its plot's div id is `fig-<key>`."""

    key: str
    title: str
    caption: str
    figure: go.Figure
    height: int = 480


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    caption: str
    frame: pd.DataFrame  # shown without its index: put what names a row in a column


@dataclass
class Report:
    """A study report's contents, as `html()` or `markdown()`."""

    name: str
    description: str
    facts: list[str]
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "contour: why"

    def html(self) -> str:
        return _html(self)

    def markdown(self, html_name: str = HTML_NAME) -> str:
        return _markdown(self, html_name)

    def write(self, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write report.html and report.md into `folder` (created if need be), each replaced
        whole, never left half-written. HpexpError when the folder cannot be written."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return (
                _replace(folder / HTML_NAME, self.html()),
                _replace(folder / MARKDOWN_NAME, self.markdown(HTML_NAME)),
            )
        except OSError as e:
            raise HpexpError(
                f"cannot write the report into '{folder}' ({e.strerror or e}); write it into "
                "a folder you can write to (hpexp report --out DIR)"
            ) from None


@dataclass
class ReportFiles:
    """Where a report was written, how long it took, and the MLflow run it was logged to
    (`mlflow_run`; else `not_logged` says why)."""

    html: Path
    markdown: Path
    seconds: float
    mlflow_run: str | None = None
    not_logged: str | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.html, self.markdown]


def write_report(
    result: StudyResult,
    out: str | os.PathLike[str] | None = None,
    *,
    color_by: str | None = None,
    resamples: int = RESAMPLES,
) -> ReportFiles:
    """Write `report.html` and `report.md` into `out` (default: the study's models folder,
    `hpexp-models/<study>/`). See `build_report` for `color_by` and the errors."""
    start = time.perf_counter()
    report = build_report(result, color_by=color_by, resamples=resamples)
    html_path, md_path = report.write(out if out is not None else result.models.root)
    return ReportFiles(html_path, md_path, time.perf_counter() - start)


def _replace(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0o600: a report is for others to read too
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# -- contents ------------------------------------------------------------------------------------


def check_color_by(result: StudyResult, param: str) -> None:
    """Refuse a `color_by` that is not one of the study's parameters (one line, with the
    choices)."""
    names = _params(result)
    if param in names:
        return
    per_layer = [n for n in names if n.startswith(f"{param}_") and n[len(param) + 1 :].isdigit()]
    hint = f" ({param} is searched per layer: {', '.join(per_layer)})" if per_layer else ""
    raise HpexpError(
        f"color by {param!r}: not a parameter of study '{result.name}'{hint}; "
        f"choose from {', '.join(names) or 'none (no trial has parameters yet)'}"
    )


def build_report(
    result: StudyResult, *, color_by: str | None = None, resamples: int = RESAMPLES
) -> Report:
    """The report of `result`'s study. `color_by` colours the learning curves (default: the
    parameter fANOVA ranks first). Raises HpexpError when `color_by` is not one of the
    study's parameters, or the study has no completed trial yet."""
    if color_by is not None:
        check_color_by(result, color_by)
    if not result._has_best():
        raise HpexpError(
            f"study '{result.name}' has no completed trial yet; a report needs one "
            f"(run more trials: hpexp run {result.name} ...)"
        )
    study = _in_memory(result.study)
    if len(_complete(study)) < MIN_RESAMPLED_TRIALS:
        resamples = 0
    offline = _offline(result)
    report = Report(result.name, result.spec.description, _facts(offline))
    effects = _attempt("importance", lambda: result.effects(resamples=resamples), report.left_out)
    common = [p for p in _params(result) if p in _common(study)]  # in the study file's order
    ranked = _ranked(effects, common)
    color_by = color_by or next(iter(ranked or _params(result)), None)
    for part in _parts(result, study, effects, common, ranked, color_by, resamples):
        figure = _attempt(part.key, part.draw, report.left_out)
        if figure is not None:
            figure.update_layout(title_text=None, margin={"t": 30})  # the section has the title
            height = part.height or int(figure.layout.height or 480)
            report.figures.append(Figure(part.key, part.title, part.caption, figure, height))
        elif not any(line.startswith(f"{part.key}:") for line in report.left_out):
            report.left_out.append(f"{part.key}: {_WHY_EMPTY[part.key]}")
    report.tables = _tables(result, offline, effects, resamples, report.left_out)
    return report


def _offline(result: StudyResult) -> StudyResult:
    """`result`, or one like it that does not look its trials' MLflow runs up (the report
    shows no run ids): its tables need neither MLflow's import nor its store."""
    if result._all_ids:
        return result
    return type(result)(result.spec, result.study, result.models, run_ids={})


@dataclass(frozen=True)
class _Part:
    """A figure to draw: `draw()` returns it, or None when the study cannot fill it."""

    key: str
    title: str
    caption: str
    draw: Callable[[], go.Figure | None]
    height: int  # pixels; 0: the figure's own


def _parts(
    result: StudyResult,
    study: optuna.Study,
    effects: pd.DataFrame | None,
    common: list[str],
    ranked: list[str],
    color_by: str | None,
    resamples: int,
) -> list[_Part]:
    """The report's figures, in order. `common`: parameters every completed trial has that
    vary; `ranked`: the same, most important first."""
    from hpexp.report import figures as fig

    spec, metric = result.spec, result.spec.metric
    target = (lambda t: t.values[0]) if spec.multi_objective else None
    parts = [
        _Part(
            "history",
            "Optimization history",
            f"{metric} of each completed trial, and the best so far.",
            lambda: fig.history(study, target, metric),
            450,
        ),
        _Part(
            "importance",
            "Hyperparameter importance",
            "Bars: importance on all completed trials (fANOVA and PED-ANOVA, each summing to "
            f"1); {_whiskers(resamples)}",
            lambda: None if effects is None else fig.importances(effects, metric),
            0,
        ),
        _Part(
            "curves",
            f"Learning curves by {color_by}",
            f"{_curve_metric(result)} at each evaluation, one line per trial, coloured by "
            f"{color_by}; pruned trials dotted. Click a legend entry to hide its trials.",
            lambda: _curves(study, result, color_by),
            520,
        ),
        *_parameter_views(study, common, ranked, target, metric),
    ]
    if spec.multi_objective:
        names = [o.metric for o in spec.objectives]
        front = _Part(
            "pareto",
            "Pareto front",
            "Trials no other trial beats on every objective (the front), and the rest.",
            lambda: fig.pareto_front(study, names),
            520,
        )
        parts.insert(1, front)
    return parts


def _parameter_views(
    study: optuna.Study,
    common: list[str],
    ranked: list[str],
    target: Callable[[FrozenTrial], float] | None,
    metric: str,
) -> list[_Part]:
    """Parallel coordinates, slice and contour: the objective over the hyperparameters."""
    from hpexp.report import figures as fig

    varying = _varying(study)
    pairs = ranked[:CONTOUR_PARAMS]
    return [
        _Part(
            "parallel",
            "Parallel coordinates",
            f"Each completed trial's hyperparameters and {metric}.",
            lambda: fig.parallel(study, common, target, metric) if common else None,
            480,
        ),
        _Part(
            "slice",
            "Slice",
            f"{metric} against each hyperparameter alone.",
            lambda: fig.slices(study, varying, target, metric) if varying else None,
            420,
        ),
        _Part(
            "contour",
            "Contour",
            f"{metric} over pairs of the {len(pairs)} most important hyperparameters.",
            lambda: fig.contour(study, pairs, target, metric) if len(pairs) >= 2 else None,
            220 * len(pairs) + 80,
        ),
    ]


_WHY_EMPTY = {
    "history": "nothing to draw",
    "pareto": "nothing to draw",
    "importance": "needs 3 completed trials and a parameter that varies",
    "curves": "no trial recorded a learning curve",
    "parallel": "needs a parameter every completed trial has and that varies",
    "slice": "needs a parameter that varies",
    "contour": "needs two parameters that vary",
}


def _attempt(key: str, make: Callable[[], Any], left_out: list[str]) -> Any:
    """`make()`, or None (noted in `left_out`) when it fails: one part must not stop the
    report."""
    try:
        return make()
    except HpexpError as e:
        left_out.append(f"{key}: {e}")
    except Exception as e:
        _logger.warning("report: left out %s: %s: %s", key, type(e).__name__, e)
        left_out.append(f"{key}: {type(e).__name__}: {e}")
    return None


def _in_memory(study: optuna.Study) -> optuna.Study:
    """A copy in memory of `study`'s completed trials with finite values and its pruned ones
    (optuna's figures read the study many times)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        copy = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(), directions=study.directions
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    kept = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.PRUNED
        or (t.state == TrialState.COMPLETE and all(math.isfinite(v) for v in t.values or ()))
    ]
    copy.add_trials(kept)
    return copy


def _whiskers(resamples: int) -> str:
    """What the importance figure's whiskers show."""
    if not resamples:
        return (
            f"no whiskers: intervals need {MIN_RESAMPLED_TRIALS} completed trials, and the "
            "ranking of fewer owes much to which trials happened to run."
        )
    return (
        f"whiskers: 95% interval over {resamples} bootstrap resamples of the trials. "
        "Wide whiskers: the ranking owes much to which trials happened to run."
    )


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _common(study: optuna.Study) -> list[str]:
    """Parameters every completed trial has and that took more than one value, sorted."""
    done = _complete(study)
    if not done:
        return []
    names = set.intersection(*(set(t.params) for t in done))
    return sorted(n for n in names if len({repr(t.params[n]) for t in done}) > 1)


def _varying(study: optuna.Study) -> list[str]:
    """Parameters some completed trial has, that took more than one value, sorted."""
    done = _complete(study)
    names = {n for t in done for n in t.params}
    values = {n: {repr(t.params[n]) for t in done if n in t.params} for n in names}
    return sorted(n for n in names if len(values[n]) > 1)


def _ranked(effects: pd.DataFrame | None, common: list[str]) -> list[str]:
    """`common` parameters, most important first by the first evaluator (by name without
    importances)."""
    if effects is None:
        return common
    first = effects.index.get_level_values("evaluator")[0]
    order = [p for p in effects.loc[first].index if p in common]
    return order + [p for p in common if p not in order]


def _params(result: StudyResult) -> list[str]:
    """The study's parameters (those its trials have) in study-file order, per-layer ones by
    layer (as the trials table has them; read from the trials alone, not MLflow)."""
    names = {n for t in result.study.get_trials(deepcopy=False) for n in t.params}
    order = {name: k for k, name in enumerate(result.spec.search)}

    def rank(name: str) -> tuple[int, int, str]:
        base, _, layer = name.rpartition("_")
        if base in order and layer.isdigit():
            return order[base], int(layer), name
        return order.get(name, len(order)), 0, name

    return sorted(names, key=rank)


def _curve_metric(result: StudyResult) -> str:
    return "val_" + result.spec.metric.removeprefix("val_")


def _curves(study: optuna.Study, result: StudyResult, color_by: str | None) -> go.Figure | None:
    from hpexp.report.figures import curve, learning_curves

    metric = _curve_metric(result)
    trials = [t for t in study.get_trials(deepcopy=False) if curve(t, metric)[0]]
    if not trials or color_by is None:
        return None
    return learning_curves(trials, metric, color_by)


def _facts(result: StudyResult) -> list[str]:
    spec = result.spec
    best = result.best_trial
    objective = ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives)
    tests = ", ".join(
        f"{k} {v:.4g}"
        for k, v in result.best_metrics.items()
        if k.startswith("test_") and not k.endswith(("_cost", "_std"))
    )
    params = ", ".join(f"{k}={_cell(v)}" for k, v in best.params.items())
    facts = [
        counts_line(result).removeprefix(f"study '{result.name}': "),
        f"objective: {objective}; {spec.sampler['name']} sampler, {spec.pruner['name']} "
        f"pruner" + (f", {spec.repeats} seeds per trial" if spec.repeats > 1 else ""),
        f"best trial {best.number}: {spec.metric} {result.best_value:.4g}"
        + (f"; {tests}" if tests else ""),
        f"best parameters: {params}",
    ]
    if result.model_uri:
        facts.append(f"best model (MLflow): {result.model_uri}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts.append(f"written {stamp}")
    return facts


def _tables(
    result: StudyResult,
    offline: StudyResult,
    effects: pd.DataFrame | None,
    resamples: int,
    left_out: list[str],
) -> list[Table]:
    metric = result.spec.metric
    tables = [
        Table(
            "top",
            "Top trials",
            f"The {TOP} best completed trials by {metric}"
            + (" (pareto: * on the Pareto front)" if result.spec.multi_objective else "")
            + ".",
            top_trials(offline, TOP),
        )
    ]
    if effects is not None:
        tables.append(
            Table(
                "importances",
                "Importances",
                "importance on all completed trials; "
                + (
                    f"mean, low, high: over {resamples} bootstrap resamples (low and high: "
                    "2.5 and 97.5 percentiles)."
                    if resamples
                    else f"no intervals: they need {MIN_RESAMPLED_TRIALS} completed trials."
                ),
                effects.reset_index() if resamples else effects[["importance"]].reset_index(),
            )
        )
    for param in _params(result):
        table = _attempt(f"compare {param}", functools.partial(offline.compare, param), left_out)
        if table is None or len(table) < 2:
            continue
        tables.append(
            Table(
                f"compare-{param}",
                f"{metric} by {param}",
                "count: completed trials (the sample); pruned: counted only; se: standard "
                "error; ci_low, ci_high: 95% t interval.",
                table.reset_index(),
            )
        )
    reevaluation = getattr(result, "reevaluation", None)
    table = _attempt("re-evaluation", reevaluation, left_out) if callable(reevaluation) else None
    if table is not None:
        named = not isinstance(table.index, pd.RangeIndex)
        tables.append(
            Table(
                "reevaluation",
                "Re-evaluation",
                "The top configurations and the study's baselines trained again with fresh seeds.",
                table.reset_index() if named else table,
            )
        )
    return tables


# -- output --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A table cell as text: numbers to 4 significant digits, missing values as '–'."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "–"
    if isinstance(value, pd.Interval):
        return f"{value.left:.4g} – {value.right:.4g}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell of `frame` as `_cell` writes it (the same in HTML and Markdown); the
    lowest of quantile bins as "≤ its upper edge" (pandas moves its lower edge below the
    smallest value)."""
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    text = pd.DataFrame(cells, columns=[str(c) for c in frame.columns], index=frame.index)
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.CategoricalDtype) and len(dtype.categories):
            lowest = dtype.categories[0]
            if isinstance(lowest, pd.Interval):
                text.loc[frame[column] == lowest, str(column)] = f"≤ {lowest.right:.4g}"
    return text.reset_index(drop=True)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1280px; margin: 0 auto; padding: 1rem 2rem 3rem; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.lead { color: #555; margin-top: 0; } .caption { color: #555; font-size: .92rem; }
nav ol { columns: 2; font-size: .92rem; } .left-out { color: #777; font-size: .9rem; }
.figure { overflow-x: auto; } .table { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { padding: .2rem .65rem; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
th { background: #f6f6f6; } tr:hover td { background: #fafafa; }
"""


def _html(report: Report) -> str:
    from plotly.offline import get_plotlyjs

    e = html.escape
    contents = [(f.key, f.title) for f in report.figures] + [
        (t.key, t.title) for t in report.tables
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hpexp report: {e(report.name)}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>Study {e(report.name)}</h1>",
    ]
    if report.description:
        parts.append(f'<p class="lead">{e(report.description)}</p>')
    parts.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in report.facts) + "</ul>")
    parts.append(
        "<nav><ol>"
        + "".join(f'<li><a href="#{e(key)}">{e(title)}</a></li>' for key, title in contents)
        + "</ol></nav>"
    )
    for figure in report.figures:
        parts.append(_figure_html(figure))
    if report.left_out:
        parts.append(
            '<p class="left-out">Left out: '
            + "; ".join(e(line) for line in report.left_out)
            + ".</p>"
        )
    for table in report.tables:
        body = _text(table.frame).to_html(index=False, border=0, escape=True)
        parts.append(
            f'<section id="{e(table.key)}"><h2>{e(table.title)}</h2>'
            f'<p class="caption">{e(table.caption)}</p><div class="table">{body}</div></section>'
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figure_html(figure: Figure) -> str:
    import plotly.io as pio

    div = pio.to_html(
        figure.figure,
        full_html=False,
        include_plotlyjs=False,  # once, in the head
        div_id=f"fig-{figure.key}",
        default_height=f"{figure.height}px",
        config={"displaylogo": False, "responsive": True},
    )
    e = html.escape
    return (
        f'<section id="{e(figure.key)}"><h2>{e(figure.title)}</h2>'
        f'<p class="caption">{e(figure.caption)}</p><div class="figure">{div}</div></section>'
    )


def _markdown(report: Report, html_name: str) -> str:
    lines = [f"# Study {report.name}", ""]
    if report.description:
        lines += [report.description, ""]
    lines += [f"- {line}" for line in report.facts] + [""]
    lines += ["## Figures", "", f"Interactive, in [{html_name}]({html_name}):", ""]
    lines += [f"- [{f.title}]({html_name}#{f.key}): {f.caption}" for f in report.figures] + [""]
    if report.left_out:
        lines += ["Left out: " + "; ".join(report.left_out) + ".", ""]
    for table in report.tables:
        text = _text(table.frame)
        numeric = [pd.api.types.is_numeric_dtype(table.frame[c]) for c in table.frame.columns]
        align = ["right" if n else "left" for n in numeric]
        body = text.to_markdown(index=False, disable_numparse=True, colalign=align)
        lines += [f"## {table.title}", "", table.caption, "", body, ""]
    return "\n".join(lines)
