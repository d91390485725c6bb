"""A dataset's fingerprint: its name, options and a hash of the arrays a study trains on.

The hash covers every split's X and Y after splitting and standardizing (shape, dtype and
bytes), the standardization statistics and the feature and class names, so an edited data file,
a changed split or a new library version that prepares the data differently all change it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from hpexp.data.dataset import Dataset

__all__ = ["dataset_fingerprint"]

_ARRAYS = (
    "X_train",
    "Y_train",
    "X_val",
    "Y_val",
    "X_test",
    "Y_test",
    "x_mean",
    "x_std",
    "target_mean",
    "target_std",
)


def dataset_fingerprint(ds: Dataset) -> dict[str, Any]:
    """{"name", "options", "sha256"} of `ds` (plain JSON values)."""
    digest = hashlib.sha256()
    for field in _ARRAYS:
        array = getattr(ds, field)
        if array is None:
            digest.update(f"{field}:none;".encode())
            continue
        a = np.ascontiguousarray(array)
        digest.update(f"{field}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.tobytes())
    names = [ds.task, list(ds.feature_names), list(ds.class_names), ds.target_name]
    digest.update(json.dumps(names).encode())
    options = json.loads(json.dumps(ds.options, sort_keys=True, default=str))
    return {"name": ds.name, "options": options, "sha256": digest.hexdigest()}
