"""Study files: YAML (or a dict) -> a validated, frozen `StudySpec`.

Validation is strict and happens before anything is created: unknown keys, wrong types, empty
or inverted ranges, unknown names and missing data files raise `SpecError` with one line that
names the file, the field and the fix.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import math
import os
import re
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
from hpexp.nn.metrics import METRICS as _METRICS
from hpexp.search.hyperparams import HYPERPARAMETERS, OUTPUT_FOR_TASK, check_value
from hpexp.search.places import name_problem
from hpexp.search.yaml_input import load_yaml

__all__ = [
    "METRICS",
    "PRUNERS",
    "SAMPLERS",
    "Objective",
    "SearchParam",
    "StudySpec",
    "check_workers",
    "load_spec",
]

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
# Metrics an objective may use, with their natural direction: those measured on the validation
# split (val_accuracy, ...) and those that describe the trained network (n_params, ...).
OBJECTIVE_METRICS = {(f"val_{m.name}" if m.split else m.name): m for m in _METRICS.values()}
METRICS = {name: m.direction for name, m in OBJECTIVE_METRICS.items()}
CLASSIFICATION_ONLY = {n for n, m in OBJECTIVE_METRICS.items() if "regression" not in m.tasks}
REGRESSION_ONLY = {n for n, m in OBJECTIVE_METRICS.items() if m.tasks == ("regression",)}
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_STORAGE = "optuna.journal"
TOP_KEYS = (
    "name",
    "description",
    "dataset",
    "fixed",
    "search",
    "objective",
    "sampler",
    "pruner",
    "budget",
    "repeats",
    "seed",
    "storage",
    "tracking",
    "enqueue",
    "workers",
)
MAX_SEED = 2**32 - 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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
        origin, base = str(path), path.parent
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
            where = f" (line {mark.line + 1})" if mark else ""
            raise SpecError(f"{path}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
        if not isinstance(doc, dict):
            raise SpecError(f"{path}: a study file must be a mapping of keys such as name, dataset")
    for item in overrides:
        _apply_override(doc, item, origin)
    return _Validator(origin, base).study(doc)


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
    def __init__(self, origin: str, base: Path) -> None:
        self.origin, self.base = origin, base

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.origin}: {where}: {message}")

    def keys(
        self, where: str, node: object, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        allowed = list(allowed)
        if not isinstance(node, dict):
            raise self.fail(where, f"must be a mapping with keys {', '.join(allowed)}")
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
                raise self.fail(f"{where}.{key}" if where else str(key), f"unknown key; {hint}")
        for key in required:
            if key not in node:
                raise self.fail(where or key, f"missing required key '{key}'")
        return node

    def study(self, doc: dict[str, Any]) -> StudySpec:
        self.keys("", doc, TOP_KEYS, required=("name", "dataset"))
        name = doc["name"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise self.fail("name", "must be letters, digits, '_', '.' or '-' (e.g. quickstart)")
        if name_problem(name):
            raise self.fail("name", str(name_problem(name)))
        description = doc.get("description") or ""
        if not isinstance(description, str):
            raise self.fail("description", "must be text")
        dataset, task = self.dataset(doc["dataset"])
        searched_depth = isinstance(doc.get("search"), dict) and "hidden_layers" in doc["search"]
        fixed = self.fixed(doc.get("fixed") or {}, task, searched_depth)
        search = self.search(doc.get("search"), fixed)
        objectives = self.objectives(doc.get("objective"), task)
        sampler = self.component("sampler", doc.get("sampler") or {}, SAMPLERS, "tpe")
        default_pruner = "none" if len(objectives) > 1 else "median"
        pruner = self.component("pruner", doc.get("pruner") or {}, PRUNERS, default_pruner)
        if len(objectives) > 1 and pruner["name"] != "none":
            raise self.fail("pruner", "pruning needs a single objective; use {name: none}")
        if sampler["name"] == "grid":
            self.grid_ready(search)
        budget = doc.get("budget")
        default_budget = {"n_trials": 20 if search else 1}
        budget = self.keys(
            "budget", default_budget if budget is None else budget, ("n_trials", "timeout")
        )
        n_trials, timeout = budget.get("n_trials"), budget.get("timeout")
        if not search and n_trials != 1:
            raise self.fail(
                "budget.n_trials",
                "a study without search: trains its fixed configuration once; set n_trials: 1 "
                "(repeats: N trains it with N seeds)",
            )
        if n_trials is not None and not (_is_int(n_trials) and n_trials > 0):
            raise self.fail("budget.n_trials", f"must be an integer > 0, got {n_trials!r}")
        if timeout is not None and not (_is_num(timeout) and timeout > 0):
            raise self.fail(
                "budget.timeout", f"must be a finite number of seconds > 0, got {timeout!r}"
            )
        if n_trials is None and timeout is None:
            raise self.fail("budget", "set n_trials, timeout or both")
        repeats = doc.get("repeats", 1)
        if not (_is_int(repeats) and repeats >= 1):
            raise self.fail("repeats", f"must be an integer >= 1, got {repeats!r}")
        seed = doc.get("seed", 0)
        if not (_is_int(seed) and 0 <= seed <= MAX_SEED):
            raise self.fail("seed", f"must be an integer in [0, {MAX_SEED}], got {seed!r}")
        storage = doc.get("storage") or DEFAULT_STORAGE
        if not isinstance(storage, str):
            raise self.fail("storage", "must be a URL (sqlite:///..., postgresql://...) or a path")
        tracking = self.keys("tracking", doc.get("tracking") or {}, ("uri", "experiment"))
        uri = tracking.get("uri") or DEFAULT_TRACKING_URI
        experiment = tracking.get("experiment") or name
        if not isinstance(uri, str) or not isinstance(experiment, str):
            raise self.fail("tracking", "uri and experiment must be text")
        problem = name_problem(experiment)
        if problem:
            raise self.fail("tracking.experiment", problem)
        enqueue = self.enqueue(doc.get("enqueue") or [], search)
        self.model_size(fixed, search, enqueue, study_dataset(dataset))
        try:
            workers = check_workers(doc.get("workers", 1))
        except SpecError as e:
            raise self.fail("workers", str(e)) from None
        return StudySpec(
            name=name,
            description=description.strip(),
            dataset=dataset,
            fixed=fixed,
            search=search,
            objectives=objectives,
            sampler=sampler,
            pruner=pruner,
            n_trials=n_trials,
            timeout=float(timeout) if timeout is not None else None,
            repeats=repeats,
            seed=seed,
            storage=storage,
            tracking_uri=uri,
            experiment=experiment,
            enqueue=enqueue,
            workers=workers,
            source=self.origin,
            raw=doc,
        )

    def dataset(self, node: object) -> tuple[dict[str, Any], str]:
        if isinstance(node, str):
            node = {"name": node}
        if not isinstance(node, dict) or "name" not in node:
            raise self.fail("dataset", "give {name: digits, ...options} or a .csv/.npz path")
        options = dict(node)
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
        except DataError as e:
            raise self.fail("dataset", str(e)) from None
        except TypeError as e:
            raise self.fail("dataset", str(e)) from None
        return options, ds.task

    def fixed(self, node: object, task: str, searched_depth: bool = False) -> dict[str, Any]:
        for key in node if isinstance(node, dict) else ():
            base, _, layer = str(key).rpartition("_")
            if layer.isdigit() and base in HYPERPARAMETERS and HYPERPARAMETERS[base].per_layer:
                raise self.fail(
                    f"fixed.{key}",
                    f"per-layer values go in one list, {base}: [first, second, ...], with "
                    "hidden_layers set to its length (hpexp best STUDY --yaml prints this form)",
                )
        node = self.keys("fixed", node, HYPERPARAMETERS)
        fixed = dict(node)
        for name, value in fixed.items():
            problem = check_value(name, value)
            if problem:
                raise self.fail(f"fixed.{name}", problem)
            if isinstance(value, list) and HYPERPARAMETERS[name].per_layer:
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
        output = fixed.get("output")
        if output is not None and output != OUTPUT_FOR_TASK[task]:
            raise self.fail(
                "fixed.output",
                f"a {task} dataset needs output {OUTPUT_FOR_TASK[task]!r}, not {output!r}",
            )
        return fixed

    def search(self, node: object, fixed: dict[str, Any]) -> dict[str, SearchParam]:
        """The searched hyperparameters; none (no `search:`, or `search: {}`) trains the fixed
        configuration alone."""
        if node is None:
            return {}
        if not isinstance(node, dict):
            raise self.fail(
                "search",
                "must map hyperparameter names to ranges, e.g. "
                "learning_rate: {float: [1.0e-4, 1.0], log: true}",
            )
        params = {}
        for name, entry in node.items():
            where = f"search.{name}"
            if name not in HYPERPARAMETERS:
                close = difflib.get_close_matches(str(name), HYPERPARAMETERS, n=1)
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else (
                        "searchable: "
                        + ", ".join(h for h in HYPERPARAMETERS if HYPERPARAMETERS[h].searchable)
                    )
                )
                raise self.fail(where, f"unknown hyperparameter; {hint}")
            h = HYPERPARAMETERS[name]
            if not h.searchable:
                raise self.fail(where, "cannot be searched; set it under fixed:")
            if name in fixed:
                raise self.fail(where, "is also under fixed:; keep it in one place")
            params[name] = self.search_param(where, name, entry)
        return params

    def search_param(self, where: str, name: str, entry: object) -> SearchParam:
        h = HYPERPARAMETERS[name]
        entry = self.keys(where, entry, ("float", "int", "choice", "log", "step", "per_layer"))
        kinds = [k for k in ("float", "int", "choice") if k in entry]
        if len(kinds) != 1:
            raise self.fail(
                where,
                "give exactly one of {float: [low, high]}, {int: [low, high]}, "
                "{choice: [a, b, ...]}",
            )
        kind = kinds[0]
        per_layer = entry.get("per_layer", False)
        if not isinstance(per_layer, bool):
            raise self.fail(f"{where}.per_layer", "must be true or false")
        if per_layer and not h.per_layer:
            raise self.fail(f"{where}.per_layer", "only hidden_units and activation are per layer")
        log = entry.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log", "must be true or false")
        if kind == "choice":
            choices = entry["choice"]
            if not isinstance(choices, list) or not choices:
                raise self.fail(f"{where}.choice", "must be a non-empty list of values")
            if len({repr(c) for c in choices}) != len(choices):
                raise self.fail(f"{where}.choice", "lists a value twice; remove the duplicate")
            for c in choices:
                problem = check_value(name, c)
                if problem or isinstance(c, list):
                    raise self.fail(f"{where}.choice", problem or f"{c!r} must be a single value")
            if log or "step" in entry:
                raise self.fail(where, "log and step apply to float/int ranges, not to choice")
            return SearchParam(name, "choice", choices=tuple(choices), per_layer=per_layer)
        if h.kind == "choice":
            raise self.fail(where, f"takes names ({h.rule()}); use {{choice: [...]}}")
        if kind == "float" and h.kind == "int":
            raise self.fail(where, "takes whole numbers; use {int: [low, high]}")
        bounds = entry[kind]
        numeric = _is_int if kind == "int" else _is_num
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(numeric(b) for b in bounds)):
            raise self.fail(
                f"{where}.{kind}",
                f"must be [low, high] with two {kind} numbers, both finite; "
                f"got {reprlib.repr(bounds)}",
            )
        low, high = bounds
        if low >= high:
            raise self.fail(
                f"{where}.{kind}",
                f"empty or inverted range [{low}, {high}]; low must be below high",
            )
        for b in bounds:
            problem = check_value(name, b)
            if problem:
                raise self.fail(f"{where}.{kind}", problem)
        if log and low <= 0:
            raise self.fail(f"{where}.log", f"a log range needs low > 0, got {low}")
        step = entry.get("step")
        if step is not None and (not (numeric(step) and step > 0) or log):
            raise self.fail(
                f"{where}.step",
                f"must be a finite {kind} > 0 (and not with log: true), got {step!r}",
            )
        return SearchParam(name, kind, low=low, high=high, log=log, step=step, per_layer=per_layer)

    def grid_ready(self, search: dict[str, SearchParam]) -> None:
        for p in search.values():
            if p.kind != "choice":
                raise self.fail(
                    f"search.{p.name}",
                    "the grid sampler needs every search entry as {choice: [...]}",
                )

    def objectives(self, node: object, task: str) -> tuple[Objective, ...]:
        default = "val_accuracy" if task != "regression" else "val_rmse"
        items = node if isinstance(node, list) else [node or {"metric": default}]
        if not items:
            raise self.fail("objective", "give at least one {metric: ..., direction: ...}")
        out = []
        for i, item in enumerate(items):
            where = "objective" if len(items) == 1 else f"objective[{i}]"
            item = self.keys(where, item, ("metric", "direction"), required=("metric",))
            metric = item["metric"]
            if not isinstance(metric, str) or metric not in METRICS:
                raise self.fail(
                    f"{where}.metric",
                    f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}",
                )
            if task == "regression" and metric in CLASSIFICATION_ONLY:
                raise self.fail(
                    f"{where}.metric",
                    f"{metric} needs a classification dataset; "
                    "use val_rmse, val_r2, val_mae or val_mse",
                )
            if task != "regression" and metric in REGRESSION_ONLY:
                raise self.fail(
                    f"{where}.metric",
                    f"{metric} needs a regression dataset; use val_accuracy or val_cost",
                )
            direction = item.get("direction", METRICS[metric])
            if direction not in ("maximize", "minimize"):
                raise self.fail(f"{where}.direction", "must be maximize or minimize")
            out.append(Objective(metric, direction))
        if len({o.metric for o in out}) != len(out):
            raise self.fail("objective", "lists a metric twice")
        if not OBJECTIVE_METRICS[out[0].metric].split:
            raise self.fail("objective", "the first objective must be a validation metric")
        return tuple(out)

    def component(self, where: str, node: object, names: tuple[str, ...], default: str):
        if isinstance(node, str):
            node = {"name": node}
        if not isinstance(node, dict):
            raise self.fail(where, f"must be {{name: ..., options}}; names: {', '.join(names)}")
        options = dict(node)
        name = options.pop("name", default)
        if name not in names:
            raise self.fail(
                f"{where}.name", f"unknown {where} {name!r}; choose one of: {', '.join(names)}"
            )
        from hpexp.search.factories import constructor

        cls = constructor(where, name)
        signature = inspect.signature(cls).parameters
        accepted = [p for p in signature if p not in ("self", "search_space")]
        for key, value in options.items():
            if key not in accepted:
                raise self.fail(
                    f"{where}.{key}",
                    f"not an option of the {name} {where}; "
                    f"options: {', '.join(accepted) or 'none'}",
                )
            if not isinstance(value, (int, float, str, bool)) and value is not None:
                raise self.fail(f"{where}.{key}", "must be a number, text or true/false")
            if isinstance(value, float) and not _is_num(value):
                raise self.fail(f"{where}.{key}", f"must be a finite number, got {value!r}")
            default = signature[key].default
            wanted = _option_type(default)
            if wanted and value is not None and not _option_ok(default, value):
                raise self.fail(f"{where}.{key}", f"must be {wanted}, got {value!r}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls({}, **options) if name == "grid" else cls(**options)
        except (ValueError, TypeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise self.fail(where, f"invalid {name} {where} options: {reason}") from None
        return {"name": name, **options}

    def enqueue(self, node: object, search: dict[str, SearchParam]) -> tuple[dict[str, Any], ...]:
        if not isinstance(node, list):
            raise self.fail("enqueue", "must be a list of {hyperparameter: value} mappings")
        out = []
        for i, item in enumerate(node):
            where = f"enqueue[{i}]"
            item = self.keys(where, item, search)
            for name, value in item.items():
                problem = check_value(name, value)
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
            if (
                isinstance(units, list)
                and "hidden_layers" in item
                and item["hidden_layers"] != len(units)
            ):
                raise self.fail(f"{where}.hidden_units", "must list one value per hidden layer")
            out.append(dict(item))
        return tuple(out)

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
            if not where:
                where = (
                    " and ".join(
                        f"{'search' if name in search else 'fixed'}.{name}"
                        for name in ("hidden_layers", "hidden_units")
                        if name in search or name in fixed
                    )
                    or "fixed.hidden_units"
                )
            what = (
                f"training the largest network it allows ({depth} hidden layer(s) of up to "
                f"{units} units, n_x={ds.n_x}, n_y={ds.n_y}) with {optimizer}"
            )
            try:
                check_model_size(n, dtype, copies=training_copies(optimizer), what=what)
            except ConfigError as e:
                raise self.fail(where, str(e)) from None


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

    def setting(name: str) -> Any:
        return fixed.get(name, HYPERPARAMETERS[name].default)

    searched_units = _top(search["hidden_units"]) if "hidden_units" in search else None
    units: Any = item.get("hidden_units", setting("hidden_units"))
    if "hidden_units" not in item and searched_units is not None:
        units = searched_units
    # per-layer values listed (fixed, or enqueued: later layers take searched values)
    prefix = list(units) if isinstance(units, list) else []
    rest = int(units) if not prefix else (searched_units or max(prefix))

    if "hidden_layers" in item:
        depths = [item["hidden_layers"]]
    elif "hidden_layers" not in search:
        depths = [setting("hidden_layers")]
    elif search["hidden_layers"].kind == "choice":
        depths = list(search["hidden_layers"].choices)
    else:
        p = search["hidden_layers"]
        step, top = int(p.step or 1), _top(p)
        # past the listed layers the count grows linearly with the depth, so the largest is
        # at the deepest end or among the few depths next to the listed layers
        low = int(p.low)  # type: ignore[arg-type]
        depths = [*range(low, min(top, len(prefix) + 1 + step) + 1, step), top]

    if "optimizer" in item:
        optimizers = [item["optimizer"]]
    elif "optimizer" in search:
        optimizers = list(search["optimizer"].choices)
    else:
        optimizers = [setting("optimizer")]

    best = (-1, 0)
    for depth in depths:
        listed = prefix[:depth]
        k = depth - len(listed)  # layers of `rest` units after the listed ones
        if k == 0:
            n = count_parameters([n_x, *listed, n_y])
        else:
            n = count_parameters([n_x, *listed, rest]) + (k - 1) * (rest * rest + rest)
            n += rest * n_y + n_y
        best = max(best, (n, depth))
    widest = max([*prefix[: best[1]], rest if best[1] > len(prefix) else 0], default=0)
    return best[0], best[1], widest, max(optimizers, key=training_copies)


def _top(p: SearchParam) -> int:
    """The largest value an int search entry can suggest (the highest step below `high`)."""
    if p.kind == "choice":
        return max(p.choices)
    step = p.step or 1
    return int(p.low + (p.high - p.low) // step * step)  # type: ignore[operator]


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
        return _is_int(value)
    return _is_num(value)


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
    if not (_is_int(value) and 1 <= value <= 4 * cores):  # type: ignore[operator]
        raise SpecError(
            f"must be an integer from 1 to {4 * cores} (4 × the {cores} cores) or auto, "
            f"got {value!r}"
        )
    return int(value)  # type: ignore[call-overload]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    """A finite real number: not a bool, not .nan, not ±.inf."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
