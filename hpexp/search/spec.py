"""Study files: YAML (or a dict) -> a validated, frozen `StudySpec`.

Validation is strict and happens before anything is created: unknown keys, wrong types, empty
or inverted ranges, unknown names and missing data files raise `SpecError` with one line that
names the file, the field and the fix. The file's structure (its keys, and which values are
mappings, lists, text or integers) is `hpexp.search.schema.StudyFile`; the values' own rules
(the hyperparameters' ranges, the metrics of the dataset's task, the samplers' options, the
largest network the search allows) are checked here, in the order the file reads.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import reprlib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpexp.data import Dataset, load_dataset
from hpexp.errors import ConfigError, DataError, SpecError
from hpexp.nn.limits import check_model_size, count_parameters, training_copies
from hpexp.nn.metrics import CLASSIFICATION, Metric
from hpexp.nn.metrics import METRICS as _METRICS
from hpexp.nn.settings import Setting, is_integer, is_number
from hpexp.registry import lookup
from hpexp.search import schema
from hpexp.search.factories import PRUNERS as _PRUNERS
from hpexp.search.factories import SAMPLERS as _SAMPLERS
from hpexp.search.factories import constructor
from hpexp.search.hyperparams import HYPERPARAMETERS, OUTPUT_FOR_TASK
from hpexp.search.places import name_problem
from hpexp.search.schema import NAME_PATTERN, Budget, ObjectiveEntry, SearchEntry, Tracking
from hpexp.search.yaml_input import load_yaml

__all__ = [
    "METRICS",
    "NAME_PATTERN",
    "PRUNERS",
    "SAMPLERS",
    "Objective",
    "SearchParam",
    "StudySpec",
    "check_workers",
    "load_spec",
]

SAMPLERS = tuple(_SAMPLERS)
PRUNERS = tuple(_PRUNERS)
#: The metrics an objective may use: those measured on the validation split (val_accuracy,
#: val_cost, ...) and those that describe the trained network (n_params, train_seconds).
OBJECTIVE_METRICS: dict[str, Metric] = {
    (f"val_{m.name}" if m.split else m.name): m for m in _METRICS.values()
}
#: Each objective metric's natural direction.
METRICS = {name: m.direction for name, m in OBJECTIVE_METRICS.items()}
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_STORAGE = "optuna.journal"


@dataclass(frozen=True)
class SearchParam:
    """One searched hyperparameter: a float/int range or a list of choices."""

    name: str
    kind: str  # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    per_layer: bool = False  # one value per hidden layer: name_1, name_2, ...


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" | "minimize"


@dataclass(frozen=True)
class StudySpec:
    """A validated study: what to train, what to search, how to search and where to record."""

    name: str
    dataset: dict[str, Any]  # {"name": ..., **load_dataset options}
    search: dict[str, SearchParam]
    objectives: tuple[Objective, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    n_trials: int | None = 20
    timeout: float | None = None
    repeats: int = 1
    seed: int = 0
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = ""
    enqueue: tuple[dict[str, Any], ...] = ()
    workers: int = 1  # processes training at once on this host
    source: str = "<dict>"  # the file it came from, for messages
    raw: dict[str, Any] = field(default_factory=dict)  # the validated document, as written
    # a study made by --around-best (hpexp.search.around): the base study, its fingerprint, the
    # best trial and its configuration; part of the identity, not a study-file key
    around_best: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metric(self) -> str:
        """The first (or only) objective metric."""
        return self.objectives[0].metric

    def setting(self, name: str) -> Any:
        """A fixed hyperparameter's value, or its default."""
        return self.fixed.get(name, HYPERPARAMETERS[name].default)


# -- loading ----------------------------------------------------------------------------------


def load_spec(
    source: str | Path | Mapping[str, Any] | StudySpec, overrides: Iterable[str] = ()
) -> StudySpec:
    """Read and validate a study from a YAML path, a study name under `studies/`, a dict, or a
    StudySpec; `overrides` are "key.path=value" strings (value parsed as YAML) applied first."""
    overrides = list(overrides)
    if isinstance(source, StudySpec):
        if not overrides:
            return source
        doc, origin, base = copy.deepcopy(source.raw), source.source, Path(".")
    elif isinstance(source, Mapping):
        doc, origin, base = copy.deepcopy(dict(source)), "<dict>", Path(".")
    else:
        path = _find_study_file(source)
        doc, origin, base = _read_study_file(path), str(path), path.parent
    for item in overrides:
        _apply_override(doc, item, origin)
    return _Validator(origin, base).study(doc)


def _read_study_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SpecError(
            f"{path}: cannot read the study file ({reason}); give a YAML text file"
        ) from None
    try:
        doc = load_yaml(text, str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a study file must be a mapping of keys such as name, dataset")
    return doc


def _find_study_file(source: str | Path) -> Path:
    path = Path(source)
    if path.is_file():
        return path
    named = Path("studies") / f"{source}.yaml"
    if path.suffix == "" and named.is_file():
        return named
    raise SpecError(
        f"study file '{source}' not found; give a path to a .yaml file "
        f"(e.g. studies/quickstart.yaml) or the name of one under studies/"
    )


def _apply_override(doc: dict[str, Any], item: str, origin: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {item!r}: write key=value, e.g. --set budget.n_trials=10")
    try:
        value = load_yaml(text, f"--set {key.strip()}")
    except yaml.YAMLError:
        raise SpecError(f"--set {item!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"{origin}: --set {key}: '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value


# -- validation -------------------------------------------------------------------------------


class _Validator:
    """The rules of a study file beyond its structure, checked in the order the file reads."""

    def __init__(self, origin: str, base: Path) -> None:
        self.origin, self.base = origin, base

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.origin}: {where}: {message}")

    def study(self, doc: dict[str, Any]) -> StudySpec:
        file = schema.parse(doc, self.origin)
        if name_problem(file.name):
            raise self.fail("name", str(name_problem(file.name)))
        dataset, task = self.dataset(file.dataset)
        entries = file.search or {}
        fixed = self.fixed(file.fixed, task, searched_depth="hidden_layers" in entries)
        search = self.search(entries, fixed)
        objectives = self.objectives(file.objective, task, doc)
        sampler = self.component("sampler", file.sampler, "tpe")
        pruner = self.component("pruner", file.pruner, "none" if len(objectives) > 1 else "median")
        if len(objectives) > 1 and pruner["name"] != "none":
            raise self.fail("pruner", "pruning needs a single objective; use {name: none}")
        if sampler["name"] == "grid":
            self.grid_ready(search)
        n_trials, timeout = self.budget(file.budget, search)
        tracking_uri, experiment = self.tracking(file.tracking, file.name)
        enqueue = self.enqueue(file.enqueue or [], search)
        self.model_size(fixed, search, enqueue, study_dataset(dataset))
        return StudySpec(
            name=file.name,
            description=(file.description or "").strip(),
            dataset=dataset,
            fixed=fixed,
            search=search,
            objectives=objectives,
            sampler=sampler,
            pruner=pruner,
            n_trials=n_trials,
            timeout=timeout,
            repeats=file.repeats,
            seed=file.seed,
            storage=file.storage or DEFAULT_STORAGE,
            tracking_uri=tracking_uri,
            experiment=experiment,
            enqueue=enqueue,
            workers=self.workers(file.workers),
            source=self.origin,
            raw=doc,
        )

    # -- what to train --------------------------------------------------------------------

    def dataset(self, options: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The dataset's options (a data file's path made relative to the study file's folder)
        and its task."""
        options = dict(options)
        name = options["name"]
        if not isinstance(name, str):
            raise self.fail("dataset.name", "must be a dataset name or a file path")
        if name.lower().endswith((".csv", ".npz")):
            path = Path(name)
            if not path.is_absolute():
                path = self.base / path
            if not path.is_file():
                raise self.fail(
                    "dataset.name",
                    f"data file '{path}' not found (paths are relative to the study file)",
                )
            options["name"] = str(path)
        try:
            ds = study_dataset(options)
        except (DataError, TypeError) as e:
            raise self.fail("dataset", str(e)) from None
        return options, ds.task

    def fixed(self, fixed: dict[str, Any], task: str, searched_depth: bool) -> dict[str, Any]:
        for name, value in fixed.items():
            h = HYPERPARAMETERS[name]
            problem = h.problem(value)
            if problem:
                raise self.fail(f"fixed.{name}", problem)
            if isinstance(value, list) and h.per_layer:
                self.layer_list(name, value, fixed, searched_depth)
        output = fixed.get("output")
        if output is not None and output != OUTPUT_FOR_TASK[task]:
            raise self.fail(
                "fixed.output",
                f"a {task} dataset needs output {OUTPUT_FOR_TASK[task]!r}, not {output!r}",
            )
        return fixed

    def layer_list(
        self, name: str, value: list[Any], fixed: dict[str, Any], searched_depth: bool
    ) -> None:
        """A fixed per-layer list needs a fixed depth, equal to its length."""
        if searched_depth and "hidden_layers" not in fixed:
            raise self.fail(
                f"fixed.{name}",
                "a list needs a fixed depth but hidden_layers is searched; give one "
                "value for every layer, or search it with per_layer: true",
            )
        layers = fixed.get("hidden_layers", HYPERPARAMETERS["hidden_layers"].default)
        if len(value) != layers:
            raise self.fail(
                f"fixed.{name}",
                f"lists {len(value)} values but hidden_layers is {layers}"
                f"{'' if 'hidden_layers' in fixed else ' (the default)'}; "
                "give one per hidden layer or set fixed.hidden_layers",
            )

    # -- what to search -------------------------------------------------------------------

    def search(
        self, entries: dict[str, SearchEntry], fixed: dict[str, Any]
    ) -> dict[str, SearchParam]:
        """The searched hyperparameters; none (no `search:`, or `search: {}`) trains the fixed
        configuration alone."""
        params = {}
        for name, entry in entries.items():
            if name in fixed:
                raise self.fail(f"search.{name}", "is also under fixed:; keep it in one place")
            params[name] = self.search_param(f"search.{name}", HYPERPARAMETERS[name], entry)
        return params

    def search_param(self, where: str, h: Setting, entry: SearchEntry) -> SearchParam:
        kinds = [k for k in ("float", "int", "choice") if _given(entry, k)]
        if len(kinds) != 1:
            raise self.fail(
                where,
                "give exactly one of {float: [low, high]}, {int: [low, high]}, "
                "{choice: [a, b, ...]}",
            )
        if entry.per_layer and not h.per_layer:
            raise self.fail(f"{where}.per_layer", "only hidden_units and activation are per layer")
        if kinds[0] == "choice":
            return self.choice_param(where, h, entry)
        return self.range_param(where, h, kinds[0], entry)

    def choice_param(self, where: str, h: Setting, entry: SearchEntry) -> SearchParam:
        choices = entry.choice or []
        if len({repr(c) for c in choices}) != len(choices):
            raise self.fail(f"{where}.choice", "lists a value twice; remove the duplicate")
        for c in choices:
            problem = h.problem(c)
            if problem or isinstance(c, list):
                raise self.fail(f"{where}.choice", problem or f"{c!r} must be a single value")
        if entry.log or _given(entry, "step"):
            raise self.fail(where, "log and step apply to float/int ranges, not to choice")
        return SearchParam(h.name, "choice", choices=tuple(choices), per_layer=entry.per_layer)

    def range_param(self, where: str, h: Setting, kind: str, entry: SearchEntry) -> SearchParam:
        if h.kind == "choice":
            raise self.fail(where, f"takes names ({h.rule()}); use {{choice: [...]}}")
        if kind == "float" and h.kind == "int":
            raise self.fail(where, "takes whole numbers; use {int: [low, high]}")
        low, high = bounds = self.bounds(f"{where}.{kind}", kind, entry)
        if low >= high:
            raise self.fail(
                f"{where}.{kind}",
                f"empty or inverted range [{low}, {high}]; low must be below high",
            )
        for b in bounds:
            problem = h.problem(b)
            if problem:
                raise self.fail(f"{where}.{kind}", problem)
        if entry.log and low <= 0:
            raise self.fail(f"{where}.log", f"a log range needs low > 0, got {low}")
        step = entry.step
        number = is_integer if kind == "int" else is_number
        if step is not None and (not (number(step) and step > 0) or entry.log):
            raise self.fail(
                f"{where}.step",
                f"must be a finite {kind} > 0 (and not with log: true), got {step!r}",
            )
        return SearchParam(
            h.name, kind, low=low, high=high, log=entry.log, step=step, per_layer=entry.per_layer
        )

    def bounds(self, where: str, kind: str, entry: SearchEntry) -> list[Any]:
        """A range's [low, high]: two integers for an int range, two finite numbers for a
        float one (kept as written: an int stays an int)."""
        bounds = entry.float_ if kind == "float" else entry.int_
        number = is_integer if kind == "int" else is_number
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(number(b) for b in bounds)):
            raise self.fail(
                where,
                f"must be [low, high] with two {kind} numbers, both finite; "
                f"got {reprlib.repr(bounds)}",
            )
        return bounds

    def grid_ready(self, search: dict[str, SearchParam]) -> None:
        for p in search.values():
            if p.kind != "choice":
                raise self.fail(
                    f"search.{p.name}",
                    "the grid sampler needs every search entry as {choice: [...]}",
                )

    # -- how to search --------------------------------------------------------------------

    def objectives(
        self, entries: list[ObjectiveEntry] | None, task: str, doc: dict[str, Any]
    ) -> tuple[Objective, ...]:
        if entries is None:
            entries = [
                ObjectiveEntry(metric="val_accuracy" if task != "regression" else "val_rmse")
            ]
        if not entries:
            raise self.fail("objective", "give at least one {metric: ..., direction: ...}")
        out = [
            self.objective(schema.where(("objective", i), doc), entry, task)
            for i, entry in enumerate(entries)
        ]
        if len({o.metric for o in out}) != len(out):
            raise self.fail("objective", "lists a metric twice")
        if not OBJECTIVE_METRICS[out[0].metric].split:
            raise self.fail("objective", "the first objective must be a validation metric")
        return tuple(out)

    def objective(self, where: str, entry: ObjectiveEntry, task: str) -> Objective:
        field = f"{self.origin}: {where}.metric"
        metric = lookup(OBJECTIVE_METRICS, entry.metric, "metric", field, error=SpecError)
        if task not in metric.tasks:
            usable = [name for name, m in OBJECTIVE_METRICS.items() if m.split and task in m.tasks]
            needs = (
                "classification"
                if set(metric.tasks) == set(CLASSIFICATION)
                else " or ".join(metric.tasks)
            )
            raise self.fail(
                f"{where}.metric",
                f"{entry.metric} needs a {needs} dataset; use "
                f"{', '.join(usable[:-1])} or {usable[-1]}",
            )
        return Objective(entry.metric, entry.direction or metric.direction)

    def component(self, kind: str, node: dict[str, Any], default: str) -> dict[str, Any]:
        """A sampler or pruner: its name and options, checked against its Optuna class."""
        options = dict(node)
        name = options.pop("name", default)
        cls = constructor(kind, name, f"{self.origin}: {kind}.name")
        signature = inspect.signature(cls).parameters
        accepted = [p for p in signature if p not in ("self", "search_space")]
        for key, value in options.items():
            if key not in accepted:
                raise self.fail(
                    f"{kind}.{key}",
                    f"not an option of the {name} {kind}; options: {', '.join(accepted) or 'none'}",
                )
            problem = _option_problem(signature[key].default, value)
            if problem:
                raise self.fail(f"{kind}.{key}", problem)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls({}, **options) if name == "grid" else cls(**options)
        except (ValueError, TypeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise self.fail(kind, f"invalid {name} {kind} options: {reason}") from None
        return {"name": name, **options}

    def budget(
        self, budget: Budget | None, search: dict[str, SearchParam]
    ) -> tuple[int | None, float | None]:
        """(n_trials, timeout); without a budget 20 trials, or 1 for a study without search."""
        if budget is None:
            budget = Budget(n_trials=20 if search else 1)
        if not search and budget.n_trials != 1:
            raise self.fail(
                "budget.n_trials",
                "a study without search: trains its fixed configuration once; set n_trials: 1 "
                "(repeats: N trains it with N seeds)",
            )
        if budget.n_trials is None and budget.timeout is None:
            raise self.fail("budget", "set n_trials, timeout or both")
        return budget.n_trials, budget.timeout

    def tracking(self, tracking: Tracking | None, name: str) -> tuple[str, str]:
        """(MLflow URI, experiment): by default the embedded store and the study's name."""
        tracking = tracking or Tracking()
        experiment = tracking.experiment or name
        problem = name_problem(experiment)
        if problem:
            raise self.fail("tracking.experiment", problem)
        return tracking.uri or DEFAULT_TRACKING_URI, experiment

    def enqueue(
        self, items: list[Any], search: dict[str, SearchParam]
    ) -> tuple[dict[str, Any], ...]:
        return tuple(self.enqueued(f"enqueue[{i}]", item, search) for i, item in enumerate(items))

    def enqueued(self, where: str, item: object, search: dict[str, SearchParam]) -> dict[str, Any]:
        """One enqueued configuration: values of searched hyperparameters, within the search."""
        if not isinstance(item, dict):
            raise self.fail(where, f"must be a mapping with keys {', '.join(search)}")
        for name, value in item.items():
            if name not in search:
                raise self.fail(f"{where}.{name}", schema.unknown_key(name, search))
            problem = HYPERPARAMETERS[name].problem(value)
            if problem:
                raise self.fail(f"{where}.{name}", problem)
            p = search[name]
            if isinstance(value, list) and not p.per_layer:
                raise self.fail(f"{where}.{name}", "takes one value (not searched per layer)")
            values = value if isinstance(value, list) else [value]
            outside = [v for v in values if p.kind == "choice" and v not in p.choices]
            if outside:
                raise self.fail(
                    f"{where}.{name}",
                    f"{outside[0]!r} is not among the searched choices {list(p.choices)}",
                )
        units = item.get("hidden_units")
        if isinstance(units, list) and item.get("hidden_layers", len(units)) != len(units):
            raise self.fail(f"{where}.hidden_units", "must list one value per hidden layer")
        return dict(item)

    def workers(self, value: object) -> int:
        try:
            return check_workers(value)
        except SpecError as e:
            raise self.fail("workers", str(e)) from None

    # -- how large a network it allows ----------------------------------------------------

    def model_size(
        self,
        fixed: dict[str, Any],
        search: dict[str, SearchParam],
        enqueue: tuple[dict[str, Any], ...],
        ds: Dataset,
    ) -> None:
        """Refuse a study whose largest network (deepest, widest, with the optimizer that keeps
        the most state), or an enqueued one, is over the model-size limit of the core."""
        points: list[tuple[str, dict[str, Any]]] = [("", {})]
        points += [(f"enqueue[{i}]", item) for i, item in enumerate(enqueue)]
        dtype = fixed.get("dtype", HYPERPARAMETERS["dtype"].default)
        for where, item in points:
            n, depth, units, optimizer = _largest_network(fixed, search, item, ds.n_x, ds.n_y)
            what = (
                f"training the largest network it allows ({depth} hidden layer(s) of up to "
                f"{units} units, n_x={ds.n_x}, n_y={ds.n_y}) with {optimizer}"
            )
            try:
                check_model_size(n, dtype, copies=training_copies(optimizer), what=what)
            except ConfigError as e:
                raise self.fail(where or _size_fields(fixed, search), str(e)) from None


def _given(entry: SearchEntry, key: str) -> bool:
    """Whether a search entry's file gives `key` (float, int, choice, log, step, per_layer)."""
    return (f"{key}_" if key in ("float", "int") else key) in entry.model_fields_set


def _size_fields(fixed: dict[str, Any], search: dict[str, SearchParam]) -> str:
    """The fields that set a study's largest network, for a message."""
    return (
        " and ".join(
            f"{'search' if name in search else 'fixed'}.{name}"
            for name in ("hidden_layers", "hidden_units")
            if name in search or name in fixed
        )
        or "fixed.hidden_units"
    )


def _largest_network(
    fixed: dict[str, Any],
    search: dict[str, SearchParam],
    item: dict[str, Any],
    n_x: int,
    n_y: int,
) -> tuple[int, int, int, str]:
    """(parameters, depth, widest layer, optimizer) of the largest network a study can train:
    `item` (an enqueued point, or {}) fixes some values, the search space or `fixed` the rest.
    Counted for every depth that can matter without building the network, so that huge values
    cost nothing."""
    prefix, rest = _widths(fixed, search, item)
    n, depth = max(
        (_count(n_x, prefix, rest, d, n_y), d) for d in _depths(fixed, search, item, prefix)
    )
    widest = max([*prefix[:depth], rest if depth > len(prefix) else 0], default=0)
    return n, depth, widest, max(_optimizers(fixed, search, item), key=training_copies)


def _widths(
    fixed: dict[str, Any], search: dict[str, SearchParam], item: dict[str, Any]
) -> tuple[list[int], int]:
    """(listed widths, width of the layers after them): per-layer values listed (fixed, or
    enqueued) come first; later layers take the widest searched (or fixed) value."""
    searched = _top(search["hidden_units"]) if "hidden_units" in search else None
    units: Any = item.get("hidden_units", _setting(fixed, "hidden_units"))
    if "hidden_units" not in item and searched is not None:
        units = searched
    prefix = list(units) if isinstance(units, list) else []
    return prefix, int(units) if not prefix else (searched or max(prefix))


def _depths(
    fixed: dict[str, Any], search: dict[str, SearchParam], item: dict[str, Any], prefix: list[int]
) -> list[int]:
    """The depths whose networks can be the largest."""
    if "hidden_layers" in item:
        return [item["hidden_layers"]]
    if "hidden_layers" not in search:
        return [_setting(fixed, "hidden_layers")]
    p = search["hidden_layers"]
    if p.kind == "choice":
        return list(p.choices)
    step, top = int(p.step or 1), _top(p)
    # past the listed layers the count grows linearly with the depth, so the largest is at the
    # deepest end or among the few depths next to the listed layers
    low = int(p.low)  # type: ignore[arg-type]
    return [*range(low, min(top, len(prefix) + 1 + step) + 1, step), top]


def _optimizers(
    fixed: dict[str, Any], search: dict[str, SearchParam], item: dict[str, Any]
) -> list[str]:
    if "optimizer" in item:
        return [item["optimizer"]]
    if "optimizer" in search:
        return list(search["optimizer"].choices)
    return [_setting(fixed, "optimizer")]


def _count(n_x: int, prefix: list[int], rest: int, depth: int, n_y: int) -> int:
    """Parameters of a network of `depth` hidden layers: the listed widths, then `rest`."""
    listed = prefix[:depth]
    k = depth - len(listed)  # layers of `rest` units after the listed ones
    if k == 0:
        return count_parameters([n_x, *listed, n_y])
    n = count_parameters([n_x, *listed, rest]) + (k - 1) * (rest * rest + rest)
    return n + rest * n_y + n_y


def _setting(fixed: dict[str, Any], name: str) -> Any:
    return fixed.get(name, HYPERPARAMETERS[name].default)


def _top(p: SearchParam) -> int:
    """The largest value an int search entry can suggest (the highest step below `high`)."""
    if p.kind == "choice":
        return max(p.choices)
    step = p.step or 1
    return int(p.low + (p.high - p.low) // step * step)  # type: ignore[operator]


def _option_problem(default: object, value: object) -> str | None:
    """What is wrong with `value` for a sampler/pruner option whose default is `default`."""
    if not isinstance(value, (int, float, str, bool)) and value is not None:
        return "must be a number, text or true/false"
    if isinstance(value, float) and not is_number(value):
        return f"must be a finite number, got {value!r}"
    wanted = _option_type(default)
    if wanted and value is not None and not _option_ok(default, value):
        return f"must be {wanted}, got {value!r}"
    return None


def _option_type(default: object) -> str:
    """What a sampler/pruner option whose default is `default` takes ("" if not known)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    return ""


def _option_ok(default: object, value: object) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return is_integer(value)
    return is_number(value)


@functools.lru_cache(maxsize=4)
def _cached_dataset(key: str, file_version: tuple[int, int] | None) -> Dataset:
    return load_dataset(**json.loads(key))


def study_dataset(options: Mapping[str, Any]) -> Dataset:
    """`load_dataset(**options)`, loaded once for validating and running a study (a Dataset's
    arrays are read-only, so it can be shared); a data file is read again when it changes."""
    try:
        key = json.dumps(dict(options), sort_keys=True)
    except TypeError:
        return load_dataset(**options)
    path = Path(str(options.get("name", "")))
    stat = path.stat() if path.suffix.lower() in (".csv", ".npz") and path.is_file() else None
    return _cached_dataset(key, (stat.st_mtime_ns, stat.st_size) if stat else None)


def check_workers(value: object) -> int:
    """A number of worker processes: an integer from 1 to 4 × the cores, or "auto" (the number
    of cores)."""
    cores = os.cpu_count() or 1
    if value == "auto":
        return cores
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not (is_integer(value) and 1 <= value <= 4 * cores):  # type: ignore[operator]
        raise SpecError(
            f"must be an integer from 1 to {4 * cores} (4 × the {cores} cores) or auto, "
            f"got {value!r}"
        )
    return int(value)  # type: ignore[call-overload]
