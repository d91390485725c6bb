"""Datasets for hpexp: built-in names and user files, split and standardized.

``load_dataset(name, **options)`` returns a `Dataset` whose arrays use the network's layout,
one sample per column: X (n_x, m), Y (n_y, m). `DATASETS` lists the built-in names and
`describe_datasets()` describes them with their options.
"""

from hpexp.data.builtin import DATASETS, describe_datasets
from hpexp.data.dataset import TASKS, Dataset
from hpexp.data.load import load_dataset
from hpexp.data.options import SPLIT_DEFAULTS
from hpexp.data.prepare import from_arrays

__all__ = [
    "DATASETS",
    "SPLIT_DEFAULTS",
    "TASKS",
    "Dataset",
    "describe_datasets",
    "from_arrays",
    "load_dataset",
]
