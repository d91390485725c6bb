"""Arrays that can always be made again, cached as .npz files.

The cache lives in ``$HPEXP_CACHE_DIR`` (default ``~/.cache/hpexp``). It holds what a generator
or scikit-learn computed (MNIST-1D's signals, scikit-learn's datasets, a split's row indices),
under a name and a hash of everything the result depends on (arguments, package versions). A
file that is missing, unreadable or fails its check is made again and rewritten; files are
written atomically (a temporary file, then a rename), so processes that share the folder never
read half a file, and a folder that cannot be written only costs the remaking. Files are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "cached_arrays", "digest", "package_version"]

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """``$HPEXP_CACHE_DIR`` if set, else ``~/.cache/hpexp``."""
    return Path(os.environ.get("HPEXP_CACHE_DIR") or "~/.cache/hpexp").expanduser()


def package_version(distribution: str) -> str:
    """The installed version of `distribution` ("" when it is not installed)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def digest(key: object) -> str:
    """16 hex digits of the SHA-256 of `key` as canonical JSON (NumPy scalars as numbers)."""
    blob = json.dumps(key, sort_keys=True, default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_arrays(
    name: str,
    key: object,
    make: Callable[[], Arrays],
    check: Callable[[Arrays], bool] = lambda arrays: True,
) -> Arrays:
    """The arrays `make()` returns, read from ``<cache_dir>/<name>-<digest(key)>.npz`` when that
    file holds them (every array `check` accepts), else made and written there."""
    path = cache_dir() / f"{name}-{digest(key)}.npz"
    arrays = _read(path)
    if arrays is None or not check(arrays):
        arrays = {k: np.asarray(v) for k, v in make().items()}
        _write(path, arrays)
    return arrays


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot use {type(value).__name__} in a cache key")


def _read(path: Path) -> Arrays | None:
    """The file's arrays, or None if it is missing or not a readable .npz file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def _write(path: Path, arrays: Arrays) -> None:
    """Write atomically (a temporary file, then a rename); give up quietly on OS errors."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
