"""MNIST-1D generated offline with the `mnist1d` package, cached as .npz.

The arrays come from ``mnist1d.data.make_dataset`` with the package's default arguments
(`MNIST1D_ARGS`): 5000 signals of length 40, 10 classes, split 4000 train / 1000 test. Generation
takes about a second; the result is cached under ``$HPEXP_CACHE_DIR`` (default
``~/.cache/hpexp``) in a file named after a hash of the arguments and the package version.
Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hpexp.errors import DataError

__all__ = ["MNIST1D_ARGS", "cache_dir", "load_mnist1d_arrays"]

#: Arguments of mnist1d's default dataset (``get_dataset_args()`` without the download url).
MNIST1D_ARGS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}

_KEYS = ("x", "y", "x_test", "y_test")


def cache_dir() -> Path:
    """``$HPEXP_CACHE_DIR`` if set, else ``~/.cache/hpexp``."""
    return Path(os.environ.get("HPEXP_CACHE_DIR") or "~/.cache/hpexp").expanduser()


def load_mnist1d_arrays() -> dict[str, np.ndarray]:
    """The MNIST-1D arrays, row-per-sample: x (4000, 40), y (4000,), x_test (1000, 40), y_test.

    Served from the cache when present; otherwise generated and cached (best effort: an
    unwritable cache directory only costs the regeneration next time).
    """
    path = cache_dir() / f"mnist1d-{_cache_key()}.npz"
    arrays = _read_cache(path)
    if arrays is None:
        arrays = _generate()
        _write_cache(path, arrays)
    return arrays


def _package_version() -> str:
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError:
        raise DataError(
            "dataset 'mnist1d' needs the mnist1d package; install it with: pip install mnist1d"
        ) from None


def _cache_key() -> str:
    blob = json.dumps({"args": MNIST1D_ARGS, "mnist1d": _package_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _generate() -> dict[str, np.ndarray]:
    """Run mnist1d's generator without touching global RNG state or printing."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
        from mnist1d.utils import ObjectView
    except ImportError as exc:
        raise DataError(
            f"dataset 'mnist1d' needs the mnist1d package ({exc}); install it with: "
            "pip install mnist1d"
        ) from exc
    args = get_dataset_args(as_dict=True)
    args.update(MNIST1D_ARGS)
    np_state, py_state = np.random.get_state(), random.getstate()  # it seeds the global RNGs
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            data = make_dataset(ObjectView(args))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": np.asarray(data["x"], dtype=np.float64),
        "y": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float64),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None if the file is missing or not a valid cache file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in _KEYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    n = MNIST1D_ARGS["final_seq_length"]
    x, y, x_test, y_test = (arrays[key] for key in _KEYS)
    if (
        x.ndim != 2
        or x_test.ndim != 2
        or x.shape[1] != n
        or x_test.shape[1] != n
        or y.shape != (x.shape[0],)
        or y_test.shape != (x_test.shape[0],)
    ):
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temporary file, then rename); give up quietly on OS errors."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, x=arrays["x"], y=arrays["y"], x_test=arrays["x_test"], y_test=arrays["y_test"]
            )
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
