"""The study engine: study files, search space, objective and the Optuna runner.

It knows nothing of MLflow or reports: the composing module `hpexp.study` wires it to them.
"""

from hpexp.search.runner import finished_count, list_studies, open_study, optimize, reopen_study
from hpexp.search.spec import StudySpec, load_spec

__all__ = [
    "StudySpec",
    "finished_count",
    "list_studies",
    "load_spec",
    "open_study",
    "optimize",
    "reopen_study",
]
