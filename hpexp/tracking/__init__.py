"""MLflow tracking: a study's runs written from plain records, stores, the pyfunc model, the UI.

Only this package calls MLflow. `hpexp.tracking.projection` imports MLflow; this package's
top level does not, so checking a URI stays cheap.
"""

from hpexp.tracking.stores import RUN_STATUS

__all__ = ["RUN_STATUS"]
