"""The text summary printed at the end of a study."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from hpexp.search.result import StudyResult

__all__ = ["summary", "top_trials"]


def top_trials(result: StudyResult, k: int = 5) -> pd.DataFrame:
    """The k best completed trials: objective, test metric(s), searched params, duration."""
    trials = result.trials
    if trials.empty or ("value" not in trials and not result.spec.multi_objective):
        return trials.head(0)
    done = trials[trials["state"] == "COMPLETE"]
    key = "value" if "value" in done else f"value_{result.spec.metric}"
    ascending = result.spec.objectives[0].direction == "minimize"
    done = done.sort_values(key, ascending=ascending).head(k)
    metric = result.spec.metric
    test = "test_" + metric.removeprefix("val_")
    searched = {name for t in result.study.trials for name in t.params}
    params = [c for c in trials.columns if c in searched]
    cols = ["number", key] + ([test] if test in done else []) + params + ["duration_s"]
    return done[[c for c in cols if c in done]].rename(columns={key: metric})


def summary(result: StudyResult, top: int = 5) -> str:
    """Counts by state, the top trials, the best trial's test metrics and where to browse."""
    trials = result.trials
    counts = trials["state"].value_counts().to_dict() if len(trials) else {}
    lines = [
        f"\nstudy '{result.name}': {len(trials)} trials "
        f"({counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, "
        f"{counts.get('FAIL', 0)} failed)"
    ]
    if result._has_best():
        with pd.option_context(
            "display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format
        ):
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
        lines.append(f"  MLflow run {result.best_run_id}")
    else:
        lines.append("no completed trial yet")
    lines.append(f"browse: make ui, then open {result.ui_url()}")
    return "\n".join(lines)
