"""The study engine: study files, search space, objective and the Optuna runner."""

from hpexp.search.result import StudyResult
from hpexp.search.runner import list_studies, load_study, run_study
from hpexp.search.spec import StudySpec, load_spec

__all__ = ["StudyResult", "StudySpec", "list_studies", "load_spec", "load_study", "run_study"]
