"""What the MLflow UI opens on for a study: run names that say how each trial ended, a saved view
of its trials (best first, the objective and the searched hyperparameters as columns) and notes
that link to it.

MLflow's UI keeps almost all of its page state in the browser (columns, sort order, which
parent runs are unfolded), so a fresh browser opens an experiment on its runs table with one
folded row per parent run, sorted by creation time, and no metric or parameter column. What a
tracking store can carry, and hpexp writes:

- run names (`mlflow.runName`): `trial-0007`, `trial-0012 · pruned@100`, `trial-0003 · failed`;
- run colours (`mlflow.runColor`): trials that did not complete in grey, in the table and in
  every chart, so complete trials' curves stand out;
- a saved view (experiment tag `mlflow.sharedViewState.hpexp-<study>`, listed under the runs
  page's "Views"): the study's trials as a flat table sorted by the first objective, with the
  objectives, their test counterparts and the searched hyperparameters as columns;
  `view_url` opens it, `&compareRunsMode=CHART` on its charts (the 10 best trials' learning
  curves, in the `curves` section, then their final values as bars);
- descriptions (`mlflow.note.content`): on the experiment, a banner above its runs table with the
  best trial and links to the view; on the study's run, the same with the best parameters.

What MLflow cannot be told from the store: which view a page opens on (the experiment's page and
MLflow's home open on MLflow's defaults: the links below are the way in), unfolded parent runs
(a saved view does not restore them, hence the flat table of trials), column widths, and the
status icon of a run (FINISHED is a green tick, FAILED and KILLED the same red cross).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "GREY",
    "RUN_NOTE",
    "Summary",
    "notes",
    "run_name",
    "studies_with_views",
    "trials_view",
    "view_id",
    "view_path",
    "view_url",
]

VIEW_TAG = "mlflow.sharedViewState."  # MLflow's prefix of a saved view's experiment tag
RUN_NOTE = "mlflow.note.content"  # a run's or an experiment's description (markdown)
GREY = "#a6a6a6"  # the colour of a trial that did not complete


def run_name(number: int, status: str, pruned_at: int | None = None) -> str:
    """`trial-0007` for a complete trial; the others say how they ended: `trial-0007 ·
    pruned@100` (the iteration the pruner stopped it at), `· failed`, `· interrupted`,
    `· duplicate`."""
    name = f"trial-{number:04d}"
    if status == "complete":
        return name
    if status == "pruned" and pruned_at is not None:
        return f"{name} · pruned@{pruned_at}"
    return f"{name} · {status}"


def view_id(study: str) -> str:
    """The saved view's id (study names are letters, digits, '_', '.', '-': safe in a URL)."""
    return f"hpexp-{study}"


def studies_with_views(tags: Mapping[str, str]) -> list[str]:
    """The studies whose saved view an experiment with these tags holds."""
    prefix = VIEW_TAG + view_id("")
    return sorted(k.removeprefix(prefix) for k in tags if k.startswith(prefix) and k != prefix)


def view_path(experiment_id: str, study: str, charts: bool = False) -> str:
    """The UI route of the study's saved view (`charts`: its charts tab), relative to the UI."""
    path = (
        f"#/experiments/{experiment_id}/runs?viewStateShareKey={view_id(study)}"
        "&workflowType=machine_learning"
    )
    return path + ("&compareRunsMode=CHART" if charts else "")


def view_url(base: str, experiment_id: str, study: str, charts: bool = False) -> str:
    """`base` (http://127.0.0.1:5000) + the route of the study's saved view."""
    return f"{base.rstrip('/')}/{view_path(experiment_id, study, charts)}"


def _metric(name: str) -> str:
    return f"metrics.`{name}`"


def trials_view(
    study: str, objectives: Sequence[tuple[str, str]], params: Sequence[str]
) -> tuple[str, dict[str, object]]:
    """(tag key, envelope without its times) of the study's saved view. `objectives`: (metric,
    maximize|minimize), the first one sorts; a `val_` objective brings its `test_` counterpart
    as a column (left out by the UI when no run has it)."""
    metrics = [m for m, _ in objectives]
    metrics += [f"test_{m[4:]}" for m in metrics if m.startswith("val_")]
    columns = [_metric(m) for m in dict.fromkeys(metrics)]
    columns += [f"params.`{p}`" for p in params]
    first, direction = objectives[0]
    state = {
        "searchFilter": f"tags.`hpexp.study` = '{study}' AND tags.`hpexp.role` = 'trial'",
        "orderByKey": _metric(first),
        "orderByAsc": direction == "minimize",
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns,
        "columnOrder": columns,  # else the UI orders columns by name
        "runsHiddenMode": "FIRST_10_RUNS",  # charts: the 10 best
    }
    order = "best" if len(objectives) == 1 else f"best {first}"
    name = f"{study}: trials, {order} first"
    return VIEW_TAG + view_id(study), {"name": name, "state": json.dumps(state)}


@dataclass(frozen=True)
class Summary:
    """What the notes say about a study: its counts by status and its best trial, if any."""

    study: str
    description: str
    experiment_id: str
    objectives: tuple[tuple[str, str], ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    best: int | None = None
    best_run_id: str | None = None
    best_metrics: Mapping[str, float] = field(default_factory=dict)
    best_params: Mapping[str, object] = field(default_factory=dict)


def _number(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


def _markdown(text: str) -> str:
    """`text` as literal markdown inline text (table cells included)."""
    for c in "\\`*_[]|":
        text = text.replace(c, "\\" + c)
    return text


def notes(s: Summary) -> tuple[str, str]:
    """(the experiment's description, the study run's description), in markdown. The first is
    the banner above the runs table, which shows its first line until unfolded: the best trial
    and the links come first."""
    links = (
        f"[trials, best first]({view_path(s.experiment_id, s.study)}) · "
        f"[learning curves]({view_path(s.experiment_id, s.study, charts=True)})"
    )
    shown = [m for m, _ in s.objectives]
    shown += [f"test_{m[4:]}" for m in shown if m.startswith("val_")]
    values = [f"{k} {s.best_metrics[k]:.4f}" for k in dict.fromkeys(shown) if k in s.best_metrics]
    total = sum(s.counts.values())
    counts = f"{total} trials: " + ", ".join(f"{n} {k}" for k, n in s.counts.items() if n)
    about = _markdown(s.description)
    if s.best is None:
        line = f"{counts} · {links}" if total else f"no finished trial yet · {links}"
        banner = f"**{_markdown(s.study)}**: {line}"
        return "\n\n".join(p for p in (banner, about) if p), "\n\n".join(
            p for p in (about, line) if p
        )
    trial = f"trial {s.best}"
    if s.best_run_id:
        trial = f"[{trial}](#/experiments/{s.experiment_id}/runs/{s.best_run_id})"
    best = f"best {trial}: " + ", ".join(values)
    banner = f"**{_markdown(s.study)}**: {best} · {links} · {counts}"
    names = list(s.best_params)
    table = (
        "| " + " | ".join(map(_markdown, names)) + " |\n"
        + "|" + " --- |" * len(names) + "\n"
        + "| " + " | ".join(_markdown(_number(s.best_params[k])) for k in names) + " |"
    )  # fmt: skip
    run = [
        about,
        f"**Best: {trial}** — " + ", ".join(values),
        table if names else "",
        f"{counts}. Compare them: {links}.",
    ]
    return "\n\n".join(p for p in (banner, about) if p), "\n\n".join(p for p in run if p)
