"""The array cache: scikit-learn's datasets and splits read back exactly as made, a warm cache
loads without importing scikit-learn, and a bad cache file is made again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpexp.data import Dataset, load_dataset
from hpexp.data.cache import cached_arrays, digest

ARRAYS = ("X_train", "Y_train", "X_val", "Y_val", "X_test", "Y_test", "x_mean", "x_std")
SKLEARN_BACKED = {  # name: options (small sizes for the generated ones)
    "iris": {},
    "digits": {},
    "breast_cancer": {"test_fraction": 0.0},
    "wine": {"seed": 3},
    "diabetes": {},
    "moons": {"n_samples": 120, "seed": np.int64(4)},
    "circles": {"n_samples": 120, "factor": 0.3},
    "friedman": {"n_samples": 150, "n_features": 6},
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("HPEXP_CACHE_DIR", str(folder))
    return folder


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert (a.task, a.feature_names, a.class_names, a.target_name, a.source) == (
        b.task,
        b.feature_names,
        b.class_names,
        b.target_name,
        b.source,
    )
    if a.target_mean is not None:
        np.testing.assert_array_equal(a.target_mean, b.target_mean)


@pytest.mark.parametrize("name", sorted(SKLEARN_BACKED))
def test_a_cached_dataset_equals_the_one_made_by_scikit_learn(name: str, cache: Path) -> None:
    made = load_dataset(name, **SKLEARN_BACKED[name])
    files = sorted(p.name.split("-")[0] for p in cache.glob("*.npz"))
    assert files == ["sklearn", "split"]
    assert not list(cache.glob("*.tmp"))
    again = load_dataset(name, **SKLEARN_BACKED[name])
    assert_same(made, again)
    assert len(list(cache.glob("*.npz"))) == 2  # read, not written again


def test_other_options_are_cached_apart(cache: Path) -> None:
    a = load_dataset("moons", n_samples=120, seed=1)
    b = load_dataset("moons", n_samples=120, seed=2)
    c = load_dataset("moons", n_samples=120, seed=1, val_fraction=0.3)
    assert not np.array_equal(a.X_train, b.X_train)
    assert c.m_val != a.m_val
    assert_same(a, load_dataset("moons", n_samples=120, seed=1))


def test_a_warm_cache_loads_without_importing_scikit_learn(cache: Path) -> None:
    made = load_dataset("iris", seed=2)
    code = (
        "import sys, numpy as np\n"
        "from hpexp.data import load_dataset\n"
        "ds = load_dataset('iris', seed=2)\n"
        "np.save(sys.argv[1], ds.X_train)\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache / "x.npy")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HPEXP_CACHE_DIR": str(cache)},
    )
    assert out.stdout.strip() == "False", out.stderr
    np.testing.assert_array_equal(np.load(cache / "x.npy"), made.X_train)


@pytest.mark.parametrize(
    "damage",
    ["garbage", "duplicate rows", "wrong sizes", "floats"],
)
def test_a_bad_split_file_is_made_again(cache: Path, damage: str) -> None:
    made = load_dataset("wine")
    [split] = cache.glob("split-*.npz")
    with np.load(split) as npz:
        rows = {k: npz[k] for k in npz.files}
    if damage == "garbage":
        split.write_bytes(b"not a zip file")
    else:
        if damage == "duplicate rows":
            rows["val"] = rows["val"].copy()
            rows["val"][0] = rows["train"][0]
        elif damage == "wrong sizes":
            rows["val"], rows["train"] = rows["val"][1:], np.append(rows["train"], rows["val"][0])
        else:
            rows["train"] = rows["train"].astype(np.float64)
        np.savez(split, **rows)
    assert_same(made, load_dataset("wine"))
    with np.load(split) as npz:  # the bad file was replaced by a good one
        fixed = [npz[k] for k in ("train", "val", "test")]
    assert [len(part) for part in fixed] == [made.m_train, made.m_val, made.m_test]
    assert all(part.dtype.kind == "i" for part in fixed)
    np.testing.assert_array_equal(np.sort(np.concatenate(fixed)), np.arange(178))


def test_an_unwritable_cache_only_costs_the_remaking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("HPEXP_CACHE_DIR", str(blocker / "cache"))  # cannot be a folder
    calls = []

    def make() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"a": np.arange(3)}

    for _ in range(2):
        np.testing.assert_array_equal(cached_arrays("t", {"k": 1}, make)["a"], np.arange(3))
    assert len(calls) == 2


def test_keys_are_canonical() -> None:
    assert digest({"b": 1, "a": np.int64(2)}) == digest({"a": 2, "b": 1})
    assert digest({"a": 2}) != digest({"a": 3})
    with pytest.raises(TypeError, match="cache key"):
        digest({"a": object()})
