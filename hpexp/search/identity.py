"""A study's identity: everything that changes what a trial does, and its fingerprint.

The identity is stored with the study when it is created (Optuna study attribute `identity`,
and the MLflow study run's tag `hpexp.fingerprint`). Running the study again with a study file
or `--set` that changes any of it is refused, naming the fields that differ: the new trials
would not be comparable with the old ones; so would trials whose seeds became random numbers
another way (`random_streams`, `hpexp.nn.streams.SCHEME`). Budget (`n_trials`, `timeout`) and
presentation (`description`, tracking) may change freely. A study made by `--around-best` also
has the base study's name and fingerprint, its best trial and that trial's configuration in its
identity (`around_best`), so it is never resumed around another best.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpexp.errors import SpecError
from hpexp.nn.streams import SCHEME
from hpexp.search.spec import StudySpec

__all__ = ["IDENTITY_FIELDS", "check_identity", "differences", "fingerprint", "identity"]

#: The study-file fields a trial's outcome depends on.
IDENTITY_FIELDS = (
    "dataset",
    "fixed",
    "search",
    "objective",
    "sampler",
    "pruner",
    "repeats",
    "seed",
    "enqueue",
)


def identity(spec: StudySpec) -> dict[str, Any]:
    """The identity document: plain JSON values, data files by content hash, not by path."""
    search = {
        name: {
            k: v for k, v in dataclasses.asdict(p).items() if k != "name" and v not in ((), None)
        }
        for name, p in spec.search.items()
    }
    doc = {
        "dataset": _dataset(spec.dataset),
        "fixed": dict(spec.fixed),
        "search": search,
        "objective": [dataclasses.asdict(o) for o in spec.objectives],
        "sampler": dict(spec.sampler),
        "pruner": dict(spec.pruner),
        "repeats": spec.repeats,
        "seed": spec.seed,
        "enqueue": [dict(e) for e in spec.enqueue],
        "random_streams": SCHEME,
    }
    if spec.around_best:  # a study around another's best: which study, trial, configuration
        doc["around_best"] = dict(spec.around_best)
    return json.loads(json.dumps(doc, sort_keys=True, default=list))


def fingerprint(doc: Mapping[str, Any]) -> str:
    """A short hash of an identity document."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(stored: Any, current: Any, path: str = "") -> list[str]:
    """Dotted paths where two identity documents differ (`fixed.optimizer`, `seed`)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(current), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in stored or key not in current:
                out.append(where)
            else:
                out.extend(differences(stored[key], current[key], where))
        return out
    return [] if stored == current else [path or "identity"]


def check_identity(spec: StudySpec, stored: Mapping[str, Any] | None) -> None:
    """Refuse to run `spec` on a study created with another identity (`stored`)."""
    if not stored:
        return
    diff = differences(dict(stored), identity(spec))
    if not diff:
        return
    shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
    raise SpecError(
        f"{spec.source}: study '{spec.name}' already exists with a different {shown}; "
        f"its trials would not be comparable. Give this setup another name "
        f"(name: or --set name=...), or start over by deleting the study's storage"
    )


def _dataset(options: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(options)
    name = str(doc.get("name", ""))
    if name.lower().endswith((".csv", ".npz")) and Path(name).is_file():
        digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()[:16]
        doc["name"] = Path(name).name
        doc["sha256"] = digest
    return doc
