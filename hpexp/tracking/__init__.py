"""MLflow tracking: the study's parent run, one child run per trial, artifacts, pyfunc model."""

from hpexp.tracking.tracker import STATUS_FOR_STATE, StudyTracker

__all__ = ["STATUS_FOR_STATE", "StudyTracker"]
