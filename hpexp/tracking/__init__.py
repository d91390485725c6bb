"""MLflow tracking: the study's parent run, one child run per trial, artifacts, pyfunc model."""

import os

# MLflow draws a progress bar for every local artifact copy; a study makes many.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from hpexp.tracking.tracker import STATUS_FOR_STATE, StudyTracker

__all__ = ["STATUS_FOR_STATE", "StudyTracker"]
