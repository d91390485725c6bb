"""hpexp: hyperparameter search for a NumPy L-layer network, run by Optuna, tracked in MLflow.

    import hpexp
    model = hpexp.MLP([64, 32, 10], activation="relu", output="softmax")
    history = hpexp.train(model, X, Y, learning_rate=0.1, iterations=500)
    result = hpexp.run_study("studies/quickstart.yaml")

The core (`MLP`, `train`, ...) imports only numpy; the study API loads Optuna and MLflow on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpexp.data import Dataset, load_dataset
from hpexp.errors import ConfigError, DataError, HpexpError, SpecError
from hpexp.nn import (
    MLP,
    History,
    TrainConfig,
    evaluate,
    gradient_check,
    load_model,
    save_model,
    train,
)

__version__ = "0.1.0"

# Names served lazily from the study engine, so `import hpexp` stays fast and light.
_LAZY = {
    "StudyResult": "hpexp.result",
    "StudySpec": "hpexp.search",
    "load_spec": "hpexp.search",
    "run_study": "hpexp.study",
    "load_study": "hpexp.study",
    "sync_study": "hpexp.study",
    "check_study": "hpexp.study",
    "report_study": "hpexp.study",
    "work_study": "hpexp.study",
    "list_studies": "hpexp.search",
    "reproduce": "hpexp.reproduction",
    "Reproduction": "hpexp.reproduction",
    "reevaluate": "hpexp.reevaluation",
}

__all__ = [
    "MLP",
    "ConfigError",
    "DataError",
    "Dataset",
    "History",
    "HpexpError",
    "Reproduction",
    "SpecError",
    "StudyResult",
    "StudySpec",
    "TrainConfig",
    "__version__",
    "check_study",
    "evaluate",
    "gradient_check",
    "list_studies",
    "load_dataset",
    "load_model",
    "load_spec",
    "load_study",
    "reevaluate",
    "report_study",
    "reproduce",
    "run_study",
    "save_model",
    "sync_study",
    "train",
    "work_study",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpexp' has no attribute {name!r}")
