"""The text summary printed at the end of a study, and the full list of its trials."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from hpexp.result import StudyResult

__all__ = ["all_trials", "around_table", "counts_line", "summary", "top_trials"]

# statuses named in the counts line only when some trial has them: (singular, plural)
_RARE = {
    "interrupted": ("interrupted and re-run", "interrupted and re-run"),
    "duplicate": ("duplicate proposal skipped", "duplicate proposals skipped"),
    "running": ("running", "running"),
    "waiting": ("waiting", "waiting"),
}
_REASON_WIDTH = 40


@contextlib.contextmanager
def _display() -> Iterator[None]:
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format
    ):
        yield


def _objectives(result: StudyResult) -> dict[str, str]:
    """Objective value column -> metric name, in objective order."""
    if not result.spec.multi_objective:
        return {"value": result.spec.metric}
    return {f"value_{o.metric}": o.metric for o in result.spec.objectives}


def _searched(result: StudyResult) -> list[str]:
    """The searched parameters' columns, in table order."""
    names = {name for t in result.study.trials for name in t.params}
    return [c for c in result.trials.columns if c in names]


def counts_line(result: StudyResult) -> str:
    """`study 'x': 52 trials (38 complete, 12 pruned, 1 failed, 1 interrupted and re-run)`."""
    trials = result.trials
    n = trials["status"].value_counts().to_dict() if len(trials) else {}
    parts = [f"{n.get(s, 0)} {s}" for s in ("complete", "pruned", "failed")]
    parts += [f"{n[s]} {words[n[s] != 1]}" for s, words in _RARE.items() if n.get(s)]
    return f"study '{result.name}': {len(trials)} trials ({', '.join(parts)})"


def top_trials(result: StudyResult, k: int = 5) -> pd.DataFrame:
    """The k best completed trials by the first objective: objective(s), a `pareto` mark (`*`)
    for several objectives, test metric, searched params, duration."""
    trials, objectives = result.trials, _objectives(result)
    keys = list(objectives)
    if trials.empty or keys[0] not in trials:
        return trials.head(0)
    ascending = result.spec.objectives[0].direction == "minimize"
    done = trials[trials["status"] == "complete"]
    done = done.sort_values(keys[0], ascending=ascending, kind="stable").head(k)
    marks = []
    if result.spec.multi_objective:
        front = {t.number for t in result.study.best_trials}
        done = done.assign(pareto=["*" if n in front else "" for n in done["number"]])
        marks = ["pareto"]
    test = "test_" + result.spec.metric.removeprefix("val_")
    tests = [test] if test in done and test not in objectives.values() else []
    cols = ["number", *keys, *marks, *tests, *_searched(result), "duration_s"]
    return done[[c for c in cols if c in done]].rename(columns=objectives)


def all_trials(result: StudyResult) -> str:
    """The counts line, then every trial: number, status, objective value(s), searched params,
    fail reason (shortened) and duration."""
    trials, objectives = result.trials, _objectives(result)
    if trials.empty:
        return f"{counts_line(result)}\nno trials yet"
    reasons = trials["fail_reason"].map(_short)
    cols = ["number", "status", *objectives, *_searched(result), "fail_reason", "duration_s"]
    table = trials.assign(fail_reason=reasons)[[c for c in cols if c in trials]]
    with _display():
        text = table.rename(columns=objectives).to_string(index=False, na_rep="-")
    return f"{counts_line(result)}\n{text}"


def _short(reason: object) -> str:
    """A fail reason's first line, cut to fit a table column."""
    if not isinstance(reason, str) or not reason:
        return ""
    lines = reason.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 3] + "..."


def summary(result: StudyResult, top: int = 5) -> str:
    """Counts by status, the top trials, the best trial's test metrics and where to browse."""
    lines = ["\n" + counts_line(result)]
    if result._has_best():
        with _display():
            lines.append(top_trials(result, top).to_string(index=False))
        best = result.best_trial
        m = result.best_metrics
        tests = ", ".join(
            f"{k} {v:.4f}"
            for k, v in m.items()
            if k.startswith("test_") and not k.endswith("_cost")
        )
        lines.append(
            f"best trial {best.number}: {result.spec.metric} {result.best_value:.4f}"
            + (f"; {tests}" if tests else "")
        )
        lines.append(f"  params: {best.params}")
        run_id = result.best_run_id
        if run_id:
            lines.append(f"  MLflow run {run_id}")
        if result.model_uri:
            lines.append(f"  MLflow model {result.model_uri}  (mlflow.pyfunc.load_model)")
    else:
        lines.append("no completed trial yet")
    lines.append(f"browse: make ui, then open {result.ui_url()}")
    return "\n".join(lines)


def around_table(result: StudyResult) -> str:
    """For a study made by --around-best: `result.compare(param)` (per value: mean, std, se
    and 95% interval over its seeds), the base study's best value marked `*`, and the values
    whose trial did not complete."""
    origin = result.spec.around_best
    param, values = origin["param"], list(result.spec.search[origin["param"]].choices)
    best = origin["config"][param]
    best = best[0] if isinstance(best, list) else best
    head = (
        f"{param} around trial {origin['trial']} of study '{origin['study']}' "
        f"(* its value), {result.spec.repeats} seeds per value: {result.spec.metric}"
    )
    trials = result.trials
    done = set(trials.loc[trials["status"] == "complete", param]) if param in trials else set()
    lines = [head]
    if done:
        table = result.compare(param, bins=len(values))
        table.index = pd.Index([_label(v, v == best) for v in table.index], name=param)
        with _display():
            lines.append(table.to_string())
    missing = [v for v in values if v not in done]
    if missing:
        last: dict[object, str] = {}  # value -> how its latest trial ended
        for _, row in trials.iterrows() if param in trials else ():
            reason = _short(row.get("fail_reason"))
            last[row[param]] = row["status"] + (f": {reason}" if reason else "")
        lines.append(
            "no result for "
            + ", ".join(f"{_label(v, v == best)} ({last.get(v, 'not run yet')})" for v in missing)
        )
    return "\n".join(lines)


def _label(value: object, best: bool) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} *" if best else text
