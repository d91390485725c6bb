"""Reproduce one trial exactly: train it again from what the study recorded, and compare.

The trial is retrained with its recorded parameters, the seeds of (study seed, trial number,
repeat) and the study's data, checked first against the fingerprint recorded when the study was
created. A pruned trial is stopped where it was (the pruner's decisions are replayed: no at every
reported step but the last), so its learning curve can be compared too. On the same machine
everything must match bit for bit: the objective value(s), the final metrics (all but the
training time), the learning curve reported to Optuna, the curves, the trial's record (seeds,
iterations, how it ended) and the saved network's weights.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpexp.data import Dataset
from hpexp.data.fingerprint import dataset_fingerprint
from hpexp.errors import DataError, HpexpError
from hpexp.nn import MLP, load_model
from hpexp.result import StudyResult
from hpexp.search.objective import ModelFiles, Objective
from hpexp.search.runner import quiet_optuna
from hpexp.search.spec import study_dataset
from hpexp.search.states import trial_status

__all__ = ["Reproduction", "reproduce"]

#: Metrics that measure the machine, not the training: never compared.
UNCOMPARED = ("train_seconds",)


@dataclass(frozen=True)
class Reproduction:
    """The outcome of `reproduce`: what differs (nothing when it matches) and warnings."""

    study: str
    trial: int
    status: str
    differences: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        head = f"study '{self.study}' trial {self.trial} ({self.status})"
        if self.matches:
            return f"{head}: reproduced bit for bit"
        lines = [f"{head}: {len(self.differences)} difference(s)"]
        return "\n".join(lines + [f"  {d}" for d in self.differences])


def reproduce(
    study: str | StudyResult,
    trial: int | str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
) -> Reproduction:
    """Retrain trial `trial` (its number, or the MLflow run id of one of the study's trials)
    of `study` (a name or a StudyResult) and compare it with its record. Raises DataError when
    the data no longer matches the study's fingerprint, HpexpError for an unknown trial or one
    that cannot be reproduced (interrupted, a duplicate, still running)."""
    if isinstance(study, StudyResult):
        result = study
    else:
        from hpexp.study import load_study

        result = load_study(study, storage=storage, tracking_uri=tracking_uri)
    frozen = result.study.get_trials(deepcopy=False)[trial_number(result, trial)]
    status = trial_status(frozen)
    if status not in ("complete", "pruned") and not _diverged(frozen):
        raise HpexpError(
            f"trial {frozen.number} of study '{result.name}' is {status}: only complete, "
            "pruned and diverged trials have a record to reproduce; choose another trial "
            f"(hpexp show {result.name} --all)"
        )
    ds, warning = checked_dataset(result)
    with quiet_optuna():
        again, model = _retrain(result, frozen, ds)
    found = differences(frozen, again)
    if model is not None and result.models.exists(frozen.number):
        found += _weights(load_model(result.models.path(frozen.number)), model)
    warnings = (warning,) if warning else ()
    return Reproduction(result.name, frozen.number, status, tuple(found), warnings)


def trial_number(result: StudyResult, trial: int | str) -> int:
    """The number of `trial`: a trial number, or the MLflow run id of one of the study's trials."""
    count = len(result.study.get_trials(deepcopy=False))
    text = str(trial).strip()
    if text.isdigit() and int(text) < count:
        return int(text)
    if not text.isdigit():
        numbers = {run_id: n for n, run_id in result.run_ids().items()}
        if text in numbers:
            return numbers[text]
    raise HpexpError(
        f"trial '{trial}': study '{result.name}' has no such trial; give a trial number "
        f"(0 to {count - 1}) or the MLflow run id of one of its trials "
        f"(hpexp show {result.name} --all)"
    )


def checked_dataset(result: StudyResult) -> tuple[Dataset, str | None]:
    """The study's data, checked against the fingerprint recorded at its creation; and a
    warning when the study has none (it was created before fingerprints were recorded)."""
    try:
        ds = study_dataset(result.spec.dataset)
    except DataError as e:
        raise DataError(f"study '{result.name}': dataset: {e}") from None
    recorded = result.study.user_attrs.get("dataset_fingerprint")
    if not isinstance(recorded, dict):
        return ds, (
            f"study '{result.name}' has no dataset fingerprint (it was created before hpexp "
            "recorded one): its data cannot be verified"
        )
    now = dataset_fingerprint(ds)
    if now["sha256"] != recorded.get("sha256"):
        raise DataError(
            f"study '{result.name}': dataset '{recorded.get('name')}' no longer matches the "
            f"fingerprint recorded when the study was created (sha256 "
            f"{str(recorded.get('sha256'))[:12]}..., now {now['sha256'][:12]}...); restore "
            "the data the study was run on to reproduce its trials"
        )
    return ds, None


def _diverged(trial: FrozenTrial) -> bool:
    reason = str(trial.user_attrs.get("fail_reason", ""))
    return trial.state == TrialState.FAIL and reason.startswith("diverged")


class _Replay(optuna.pruners.BasePruner):
    """Prunes at `step` (the last step a pruned trial reported) and nowhere else."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.step is not None and trial.last_step == self.step


class _Numbered:
    """An Optuna trial that answers `number` with the number of the trial reproduced."""

    def __init__(self, trial: optuna.Trial, number: int) -> None:
        self._trial, self.number = trial, number

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def _retrain(result: StudyResult, frozen: FrozenTrial, ds: Dataset) -> tuple[FrozenTrial, Any]:
    """Train the trial again in a study in memory; its model (if it completed) is read back
    from a temporary folder, never written over the study's own."""
    steps = frozen.intermediate_values
    prune_at = max(steps) if frozen.state == TrialState.PRUNED and steps else None
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        directions=result.spec.directions,  # type: ignore[arg-type]
        pruner=_Replay(prune_at),
    )
    trial = study.ask()
    with tempfile.TemporaryDirectory(prefix="hpexp-reproduce-") as tmp:
        models = ModelFiles(Path(tmp))
        objective = Objective(result.spec, ds, models)
        try:
            values = objective(cast(optuna.Trial, _Numbered(trial, frozen.number)), frozen.params)
            study.tell(trial, values)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except Exception:  # the objective recorded why (diverged, error: ...)
            study.tell(trial, state=TrialState.FAIL)
        model = load_model(models.path(frozen.number)) if models.exists(frozen.number) else None
    return study.trials[0], model


def differences(before: FrozenTrial, after: FrozenTrial) -> list[str]:
    """What differs between a trial as recorded and as reproduced, bit for bit."""
    found = []
    if before.state != after.state:
        found.append(f"state: recorded {before.state.name}, reproduced {after.state.name}")
    if _text(before.values) != _text(after.values):
        found.append(f"value: recorded {before.values}, reproduced {after.values}")
    found += _mapping("metrics", _metrics(before), _metrics(after))
    found += _curve(before.intermediate_values, after.intermediate_values)
    found += _mapping("curves", _attr(before, "curves"), _attr(after, "curves"))
    found += _mapping("record", _attr(before, "record"), _attr(after, "record"))
    if _text(before.user_attrs.get("fail_reason")) != _text(after.user_attrs.get("fail_reason")):
        found.append(
            f"fail_reason: recorded {before.user_attrs.get('fail_reason')!r}, "
            f"reproduced {after.user_attrs.get('fail_reason')!r}"
        )
    return found


def _text(value: Any) -> str:
    """A value as exact text: floats by their shortest round-trip repr (bit for bit)."""
    return json.dumps(value, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def _attr(trial: FrozenTrial, name: str) -> dict[str, Any]:
    value = trial.user_attrs.get(name)
    return dict(value) if isinstance(value, dict) else {}


def _metrics(trial: FrozenTrial) -> dict[str, Any]:
    return {k: v for k, v in _attr(trial, "metrics").items() if k not in UNCOMPARED}


def _mapping(what: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = _text(before.get(key)), _text(after.get(key))
        if a != b:
            out.append(f"{what}.{key}: recorded {_short(a)}, reproduced {_short(b)}")
    return out


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _curve(before: dict[int, float], after: dict[int, float]) -> list[str]:
    """The learning curve reported to Optuna (intermediate values), step by step."""
    steps = sorted(set(before) | set(after))
    differ = [s for s in steps if _text(before.get(s)) != _text(after.get(s))]
    if not differ:
        return []
    s = differ[0]
    return [
        f"learning curve: {len(differ)} of {len(steps)} steps differ, first at step {s} "
        f"(recorded {before.get(s)}, reproduced {after.get(s)})"
    ]


def _weights(before: MLP, after: MLP) -> list[str]:
    a, b = before.parameters, after.parameters
    differ = [
        name
        for name in sorted(set(a) | set(b))
        if name not in a
        or name not in b
        or a[name].dtype != b[name].dtype
        or a[name].shape != b[name].shape
        or a[name].tobytes() != b[name].tobytes()
    ]
    return [f"weights: {', '.join(differ)} differ from the saved model"] if differ else []
