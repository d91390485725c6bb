"""Around the best: a study that varies one hyperparameter of a finished study's best
configuration, with several seeds per value.

`around_values(p, best)` is the grid of values tried for a searched parameter `p` whose best
value is `best` (always included, exactly; the others inside the search range, ascending):

    float, log: true    best × 1/10, 1/3, 1, 3, 10 (3 significant digits)
    int, log: true      best × 1/4, 1/2, 1, 2, 4 (rounded)
    float or int        best + k · (high − low)/8 for k = −2 … 2 (an int's gap at least 1,
                        a stepped range's a multiple of its step)
    choice              every choice, in the study's order

Values outside [low, high] are clipped to the bound; values that then coincide are tried once.

`around_spec` derives the study: the best configuration under `fixed:`, the parameter searched
over that grid by Optuna's grid sampler (one trial per value, nothing pruned), `repeats` = the
seeds. Its identity includes where it came from (`StudySpec.around_best`: the base study, its
fingerprint, the best trial and its configuration), so a study made around another best is
refused, never mixed in (see `check_around`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import optuna

from hpexp.errors import ConfigError, SpecError
from hpexp.nn.limits import check_model_size, count_parameters, describe, training_copies
from hpexp.registry import close_match
from hpexp.search.hyperparams import HYPERPARAMETERS
from hpexp.search.identity import differences, identity
from hpexp.search.places import name_problem
from hpexp.search.space import fold, resolve
from hpexp.search.spec import NAME_PATTERN, SearchParam, StudySpec, load_spec, study_dataset

__all__ = [
    "DEFAULT_SEEDS",
    "MAX_SEEDS",
    "around_name",
    "around_spec",
    "around_values",
    "check_around",
    "check_seeds",
    "searched_param",
]

DEFAULT_SEEDS = 5
#: More seeds narrow the interval by √S only, and every seed is one more network in memory.
MAX_SEEDS = 100
FLOAT_LOG_FACTORS = (1 / 10, 1 / 3, 1.0, 3.0, 10.0)
INT_LOG_FACTORS = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)
LINEAR_STEPS = (-2, -1, 0, 1, 2)  # gaps of (high − low) · LINEAR_GAP from the best
LINEAR_GAP = 1 / 8


def around_name(study: str, param: str) -> str:
    """The derived study's default name: `<study>-around-<param>`."""
    return f"{study}-around-{param}"


def around_values(p: SearchParam, best: Any) -> list[Any]:
    """The grid of values of `p` around its best value `best` (see the module's docstring)."""
    if p.kind == "choice":
        return list(p.choices)
    assert p.low is not None and p.high is not None
    step = p.step
    top = p.high if not step else p.low + math.floor((p.high - p.low) / step + 1e-9) * step
    if p.log:
        factors = FLOAT_LOG_FACTORS if p.kind == "float" else INT_LOG_FACTORS
        points = [best * f if f != 1 else None for f in factors]
    else:
        gap = (p.high - p.low) * LINEAR_GAP
        if step:
            gap = max(step, round(gap / step) * step)
        elif p.kind == "int":
            gap = max(1, int(gap))
        points = [best + k * gap if k else None for k in LINEAR_STEPS]
    values = []
    for v in points:
        if v is None:  # the best itself, exactly as the study recorded it
            values.append(best)
            continue
        if p.kind == "int":
            v = round(v)
        elif step:
            v = round(p.low + round((v - p.low) / step) * step, 12)
        else:
            v = float(f"{v:.3g}")
        values.append(min(max(v, p.low), top))
    return sorted(dict.fromkeys(values))


def _checked_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise SpecError(
            f"--around-name: {name!r} must be 1 to 100 letters, digits, '_', '.' or '-' "
            "(the default is <study>-around-<param>); give a shorter name"
        )
    if name_problem(name):
        raise SpecError(f"--around-name: {name_problem(name)}")
    return name


def _document(
    spec: StudySpec,
    name: str,
    description: str,
    fixed: dict[str, Any],
    param: str,
    values: list[Any],
    seeds: int,
) -> dict[str, Any]:
    """The derived study as a study-file document: a grid over `param`'s `values`, `seeds`
    repeats each, the rest of `spec` (dataset, objectives, seed, workers) kept."""
    objectives = [{"metric": o.metric, "direction": o.direction} for o in spec.objectives]
    return {
        "name": name,
        "description": description,
        "dataset": dict(spec.dataset),
        "fixed": fixed,
        "search": {param: {"choice": values}},
        "objective": objectives[0] if len(objectives) == 1 else objectives,
        "sampler": {"name": "grid"},
        "pruner": {"name": "none"},  # every value trains to the end: all are compared
        "budget": {"n_trials": len(values)},
        "repeats": seeds,
        "seed": spec.seed,
        "workers": spec.workers,
    }


def around_spec(
    spec: StudySpec,
    param: str,
    best: optuna.trial.FrozenTrial,
    *,
    seeds: int,
    name: str | None = None,
    base_fingerprint: str = "",
) -> StudySpec:
    """The study that trains `param` over `around_values` with `seeds` seeds per value, every
    other hyperparameter fixed at the configuration of trial `best` of study `spec`. Raises
    SpecError (one line) for a parameter the study does not search, a bad number of seeds, a
    per-layer value that differs by layer, or networks too large to train `seeds` at once."""
    p = searched_param(spec, param)
    check_seeds(seeds)
    name = _checked_name(name or around_name(spec.name, param))
    config = fold(spec, best.params)
    value, fixed = _split(spec, config, param, best.number)
    values = around_values(p, value)
    description = (
        f"{param} around the best of study '{spec.name}' (trial {best.number}: "
        f"{param}={_shown(value)}), {seeds} seeds per value"
    )
    try:
        derived = load_spec(_document(spec, name, description, fixed, param, values, seeds))
    except SpecError as e:
        reason = str(e).removeprefix("<dict>: ")
        raise SpecError(f"--around-best {param}: the derived study: {reason}") from None
    origin = {
        "study": spec.name,
        "fingerprint": base_fingerprint,
        "trial": best.number,
        "param": param,
        "config": config,
    }
    derived = dataclasses.replace(
        derived,
        storage=spec.storage,
        tracking_uri=spec.tracking_uri,
        source=spec.source,
        around_best=origin,
    )
    _check_size(derived, param, values, seeds)
    return derived


def check_around(derived: StudySpec, stored: Mapping[str, Any] | None) -> None:
    """Refuse to resume `derived` over a study of that name made otherwise (`stored`: its
    identity): around another best trial of the base study, with other seeds or values."""
    if not stored:
        return
    diff = differences(dict(stored), identity(derived))
    if not diff:
        return
    was, now = stored.get("around_best") or {}, derived.around_best
    base = f"study '{now['study']}'"
    if not was:
        why = "was not made by --around-best"
    elif was.get("trial") != now["trial"]:
        why = (
            f"was made around trial {was.get('trial')} of {base}, whose best is now "
            f"trial {now['trial']}"
        )
    elif was.get("config") != now["config"]:
        why = f"was made around another configuration of trial {now['trial']} of {base}"
    else:
        shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
        why = f"has a different {shown}"
    raise SpecError(
        f"--around-best {now['param']}: study '{derived.name}' already exists and {why}; its "
        "trials would not be comparable. Name this one with --around-name NAME, or start over "
        "by deleting the study's storage"
    )


# -- checks and pieces -----------------------------------------------------------------------


def searched_param(spec: StudySpec, param: str) -> SearchParam:
    """Study `spec`'s search entry for `param`; SpecError naming the searched ones if none."""
    if param in spec.search:
        return spec.search[param]
    searched = ", ".join(spec.search) or "none"
    close = close_match(param, spec.search)
    hint = f"did you mean '{close}'? " if close else ""
    if param in HYPERPARAMETERS and param in spec.fixed:
        hint = f"it is fixed at {spec.fixed[param]!r}; "
    raise SpecError(
        f"--around-best: study '{spec.name}' does not search {param!r}; {hint}"
        f"its searched parameters: {searched}"
    )


def check_seeds(seeds: object) -> None:
    """SpecError unless `seeds` is an integer from 2 to MAX_SEEDS."""
    ok = isinstance(seeds, int) and not isinstance(seeds, bool) and 2 <= seeds <= MAX_SEEDS
    if not ok:
        raise SpecError(
            f"--seeds: must be an integer from 2 to {MAX_SEEDS} (the spread of a value needs "
            f"two seeds at least), got {seeds!r}"
        )


def _split(
    spec: StudySpec, config: dict[str, Any], param: str, trial: int
) -> tuple[Any, dict[str, Any]]:
    """(the best value of `param`, the rest of the best configuration as `fixed:`). A per-layer
    value that is varied, or kept while the depth varies, must be one value for every layer."""
    fixed = {k: v for k, v in config.items() if k != param}
    if param == "hidden_layers":
        unset = [k for k, q in spec.search.items() if q.per_layer and k not in config]
        if unset:
            raise SpecError(
                f"--around-best {param}: the best trial ({trial}) has no hidden layer, so it "
                f"sets no {unset[0]} for deeper networks; vary another parameter"
            )
        uniform = [k for k, v in fixed.items() if isinstance(v, list)]
        why = "a network of another depth needs one value for every layer"
    elif spec.search[param].per_layer:
        if param not in config:
            raise SpecError(
                f"--around-best {param}: the best trial ({trial}) has no hidden layer, so no "
                f"{param} to vary; vary another parameter"
            )
        uniform = [param]
        why = f"--around-best gives {param} one value for every layer"
    else:
        uniform = []
    for key in uniform:
        layers = config[key]
        if len({repr(v) for v in layers}) > 1:
            raise SpecError(
                f"--around-best {param}: the best trial ({trial}) has {key} {layers}, one value "
                f"per layer, and {why}; vary another parameter"
            )
        if key != param:
            fixed[key] = layers[0]
    value = config[param]
    return (value[0] if isinstance(value, list) else value), fixed


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _check_size(spec: StudySpec, param: str, values: list[Any], seeds: int) -> None:
    """Every network of the grid, `seeds` of them trained at once, within the size limit."""
    ds = study_dataset(spec.dataset)
    for value in values:
        setup = resolve(spec, {param: value}, ds.task, ds.n_x, ds.n_y, seed=0)
        dims = setup.model["layer_dims"]
        n = count_parameters(dims)
        try:
            check_model_size(
                n * seeds,
                setup.model["dtype"],
                copies=training_copies(setup.train.optimizer),
                what=f"training {seeds} × {describe(dims)} at once",
            )
        except ConfigError as e:
            raise SpecError(f"--seeds {seeds}: {e}") from None
