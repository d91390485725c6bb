"""MNIST-1D generated offline with the `mnist1d` package, cached as .npz.

The arrays come from ``mnist1d.data.make_dataset`` with the package's default arguments
(`MNIST1D_ARGS`): 5000 signals of length 40, 10 classes, split 4000 train / 1000 test. Generation
takes about a second; the result is cached (`hpexp.data.cache`) in a file named after a hash of
the arguments and the package version. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import random
from typing import Any

import numpy as np

from hpexp.data.cache import cached_arrays, digest, package_version
from hpexp.errors import DataError

__all__ = ["MNIST1D_ARGS", "load_mnist1d_arrays"]

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


def load_mnist1d_arrays() -> dict[str, np.ndarray]:
    """The MNIST-1D arrays, row-per-sample: x (4000, 40), y (4000,), x_test (1000, 40), y_test.

    Served from the cache when present; otherwise generated and cached (best effort: an
    unwritable cache directory only costs the regeneration next time).
    """
    return cached_arrays("mnist1d", _cache_key_parts(), _generate, _shapes_ok)


def _package_version() -> str:
    version = package_version("mnist1d")
    if not version:
        raise DataError(
            "dataset 'mnist1d' needs the mnist1d package; install it with: pip install mnist1d"
        )
    return version


def _cache_key_parts() -> dict[str, Any]:
    return {"args": MNIST1D_ARGS, "mnist1d": _package_version()}


def _cache_key() -> str:
    """The cache file's hash: of the arguments and the package version."""
    return digest(_cache_key_parts())


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


def _shapes_ok(arrays: dict[str, np.ndarray]) -> bool:
    """Whether a cache file holds the four arrays, with MNIST-1D's shapes."""
    if any(key not in arrays for key in _KEYS):
        return False
    n = MNIST1D_ARGS["final_seq_length"]
    x, y, x_test, y_test = (arrays[key] for key in _KEYS)
    return (
        x.ndim == 2
        and x_test.ndim == 2
        and x.shape[1] == n
        and x_test.shape[1] == n
        and y.shape == (x.shape[0],)
        and y_test.shape == (x_test.shape[0],)
    )
