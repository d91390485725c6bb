"""`load_dataset`: one entry point for built-in datasets and user data files."""

from __future__ import annotations

import os
from pathlib import Path

from hpexp.data.builtin import DATASETS, REGISTRY, load_builtin
from hpexp.data.dataset import Dataset
from hpexp.data.files import FILE_SUFFIXES, load_file
from hpexp.errors import DataError
from hpexp.registry import unknown_name

__all__ = ["load_dataset"]


def load_dataset(name: str | os.PathLike[str], **options: object) -> Dataset:
    """Load a built-in dataset by name, or a .csv / .npz file by path, split and standardized.

    Every dataset takes val_fraction (0.2, > 0), test_fraction (0.2, may be 0), seed (0) and
    standardize (True); see `describe_datasets` for each dataset's own options and
    `hpexp.data.files` for the file options (target, features, task). The splits are seeded and,
    for classification, stratified. Returns a `Dataset` with X (n_x, m) and Y (n_y, m) per split.
    Raises `DataError` for an unknown name, a missing or malformed file, or a bad option.
    """
    if isinstance(name, os.PathLike):
        return load_file(name, options)
    if not isinstance(name, str):
        raise DataError(f"dataset must be a name or a path to a .csv or .npz file (got {name!r})")
    if name in REGISTRY:
        return load_builtin(name, options)
    if name.lower().endswith(FILE_SUFFIXES):
        return load_file(name, options)
    if Path(name).is_file():
        return load_file(name, options)  # raises: unsupported file type
    raise DataError(
        f"{unknown_name(name, DATASETS, 'dataset')}, or give a path to a .csv or .npz file"
    )
