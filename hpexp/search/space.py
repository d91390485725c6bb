"""From a trial to a network: suggest the searched values, then resolve every setting.

`suggest(trial, spec)` asks Optuna for the searched hyperparameters (per-layer units only for
layers that exist); `resolve(spec, params, task)` fills in fixed values and defaults and returns
the MLP arguments and the TrainConfig for one training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from hpexp.nn.train import TrainConfig
from hpexp.search.hyperparams import HYPERPARAMETERS, OUTPUT_FOR_TASK
from hpexp.search.spec import SearchParam, StudySpec

__all__ = ["TrialSetup", "flatten", "fold", "grid_space", "resolve", "suggest"]

TRAIN_KEYS = set(TrainConfig.names()) - {"seed"}


def _suggest_one(trial: optuna.Trial, name: str, p: SearchParam) -> Any:
    if p.kind == "float":
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)  # type: ignore[arg-type]
    if p.kind == "int":
        return trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step or 1)  # type: ignore[arg-type]
    return trial.suggest_categorical(name, list(p.choices))


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Searched values as Optuna records them (per-layer ones as name_1, name_2, ...)."""
    params: dict[str, Any] = {}
    depth = spec.setting("hidden_layers")
    if "hidden_layers" in spec.search:
        depth = params["hidden_layers"] = _suggest_one(
            trial, "hidden_layers", spec.search["hidden_layers"]
        )
    for name, p in spec.search.items():
        if name == "hidden_layers":
            continue
        if p.per_layer:
            for l in range(1, depth + 1):
                params[f"{name}_{l}"] = _suggest_one(trial, f"{name}_{l}", p)
        else:
            params[name] = _suggest_one(trial, name, p)
    return params


def flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Enqueue-style values (hidden_units: [20, 7, 5]) in Optuna's per-layer naming."""
    out = {}
    for name, value in values.items():
        if isinstance(value, list):
            out.update({f"{name}_{l}": v for l, v in enumerate(value, start=1)})
        else:
            out[name] = value
    return out


def fold(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration as a study file's `fixed:` mapping: the study's fixed values,
    then the trial's `params` in search order, per-layer ones (hidden_units_1, _2, ...) back in
    one list beside the depth they need (hidden_layers). The inverse of `flatten`."""
    out = dict(spec.fixed)
    depth = params.get("hidden_layers", spec.setting("hidden_layers"))
    for name, p in spec.search.items():
        if not p.per_layer:
            out[name] = params[name]
        elif depth:  # no hidden layer: nothing to set per layer
            out["hidden_layers"] = depth
            out[name] = [params[f"{name}_{l}"] for l in range(1, depth + 1)]
    return out


def grid_space(spec: StudySpec) -> dict[str, list]:
    """The grid sampler's space: every choice list, per-layer ones up to the deepest network."""
    depths = spec.search["hidden_layers"].choices if "hidden_layers" in spec.search else ()
    max_depth = max(depths, default=spec.setting("hidden_layers"))
    space: dict[str, list] = {}
    for name, p in spec.search.items():
        if p.per_layer:
            space.update({f"{name}_{l}": list(p.choices) for l in range(1, max_depth + 1)})
        else:
            space[name] = list(p.choices)
    return space


@dataclass(frozen=True)
class TrialSetup:
    """Everything one training run needs: the MLP arguments, the training config, and the full
    set of hyperparameter values (searched, fixed and defaults) under the study-file names."""

    model: dict[str, Any]
    train: TrainConfig
    values: dict[str, Any]


def _per_layer(values: dict[str, Any], name: str, depth: int) -> list:
    if f"{name}_1" in values:
        return [values[f"{name}_{l}"] for l in range(1, depth + 1)]
    value = values[name]
    return list(value) if isinstance(value, list) else [value] * depth


def resolve(
    spec: StudySpec, params: dict[str, Any], task: str, n_x: int, n_y: int, seed: int
) -> TrialSetup:
    """Merge defaults < fixed < searched values into MLP kwargs and a TrainConfig."""
    values: dict[str, Any] = {n: h.default for n, h in HYPERPARAMETERS.items()}
    values.update(spec.fixed)
    values.update(params)
    if values["output"] is None:
        values["output"] = OUTPUT_FOR_TASK[task]
    depth = values["hidden_layers"]
    units = _per_layer(values, "hidden_units", depth)
    activations = _per_layer(values, "activation", depth)
    for name, per_layer in (("hidden_units", units), ("activation", activations)):
        if f"{name}_1" in values or (name in spec.search and spec.search[name].per_layer):
            values[name] = per_layer  # searched layer by layer: record the whole list
    model = {
        "layer_dims": [n_x, *units, n_y],
        "activation": activations,
        "output": values["output"],
        "init": values["init"],
        "seed": seed,
        "dtype": values["dtype"],
    }
    train = TrainConfig(**{k: values[k] for k in TRAIN_KEYS}, seed=seed)
    return TrialSetup(model, train, values)
