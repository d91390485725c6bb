"""Built-in datasets: layout, splits, standardization, seeds, options and mnist1d's cache."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_friedman1

from hpexp.data import DATASETS, Dataset, describe_datasets, load_dataset, mnist1d_cache
from hpexp.errors import DataError

# small sizes keep the generated datasets fast; mnist1d has its own tests below
SMALL = {"planar": 200, "moons": 200, "circles": 200, "spirals": 300, "friedman": 300}
EXPECTED = {  # name: (task, n_x, n_y, total samples with the small sizes)
    "planar": ("binary", 2, 1, 200),
    "moons": ("binary", 2, 1, 200),
    "circles": ("binary", 2, 1, 200),
    "spirals": ("multiclass", 2, 3, 300),
    "friedman": ("regression", 10, 1, 300),
    "digits": ("multiclass", 64, 10, 1797),
    "breast_cancer": ("binary", 30, 1, 569),
    "wine": ("multiclass", 13, 3, 178),
    "iris": ("multiclass", 4, 3, 150),
    "diabetes": ("regression", 10, 1, 442),
}
GENERATED = ["planar", "moons", "circles", "spirals", "friedman"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never write to the user's cache directory."""
    monkeypatch.setenv("HPEXP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hpexp-cache"))


def load_small(name: str, **options: object) -> Dataset:
    if name in SMALL:
        options.setdefault("n_samples", SMALL[name])
    return load_dataset(name, **options)


def test_registry_lists_every_dataset() -> None:
    assert set(DATASETS) == set(EXPECTED) | {"mnist1d"}
    assert list(DATASETS) == sorted(DATASETS)
    descriptions = describe_datasets()
    assert set(descriptions) == set(DATASETS)
    assert "n_samples=400" in descriptions["planar"]
    assert descriptions["spirals"].startswith("multiclass")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_and_shapes(name: str) -> None:
    task, n_x, n_y, m = EXPECTED[name]
    ds = load_small(name)
    assert ds.name == name and ds.task == task
    assert (ds.n_x, ds.n_y) == (n_x, n_y)
    assert ds.m_train + ds.m_val + ds.m_test == m
    assert ds.m_val == round(0.2 * m) and ds.m_test == round(0.2 * m)
    for X, Y in [(ds.X_train, ds.Y_train), (ds.X_val, ds.Y_val), (ds.X_test, ds.Y_test)]:
        assert X.dtype == np.float64 and Y.dtype == np.float64
        assert X.shape[0] == n_x and Y.shape[0] == n_y and X.shape[1] == Y.shape[1]
        assert np.isfinite(X).all() and np.isfinite(Y).all()
        assert not X.flags.writeable
    assert len(ds.feature_names) == n_x
    assert ds.x_mean.shape == (n_x, 1) and ds.x_std.shape == (n_x, 1)
    if task == "regression":
        assert ds.class_names == ()
        assert ds.target_mean is not None and ds.target_mean.shape == (n_y, 1)
    else:
        assert ds.n_classes == (2 if task == "binary" else n_y)
        assert ds.target_mean is None and ds.target_std is None
    assert name in ds.summary() and f"m_train={ds.m_train}" in repr(ds)


def test_names_from_sklearn() -> None:
    digits = load_dataset("digits")
    assert digits.class_names == tuple(str(d) for d in range(10))
    assert digits.feature_names[:2] == ("pixel_0_0", "pixel_0_1")
    assert load_dataset("iris").class_names == ("setosa", "versicolor", "virginica")
    assert load_dataset("breast_cancer").class_names == ("malignant", "benign")
    assert load_dataset("diabetes").feature_names[:3] == ("age", "sex", "bmi")


@pytest.mark.parametrize("name", ["digits", "iris", "spirals"])
def test_one_hot(name: str) -> None:
    ds = load_small(name)
    for Y in (ds.Y_train, ds.Y_val, ds.Y_test):
        assert set(np.unique(Y)) == {0.0, 1.0}
        np.testing.assert_array_equal(Y.sum(axis=0), 1.0)


def test_binary_labels_are_one_row_of_zeros_and_ones() -> None:
    ds = load_small("moons")
    assert ds.Y_train.shape == (1, ds.m_train)
    assert set(np.unique(ds.Y_train)) == {0.0, 1.0}


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", "spirals"])
def test_stratified_splits(name: str) -> None:
    ds = load_small(name)

    def proportions(Y: np.ndarray) -> np.ndarray:
        counts = np.vstack([1 - Y, Y]).sum(axis=1) if Y.shape[0] == 1 else Y.sum(axis=1)
        return counts / counts.sum()

    train = proportions(ds.Y_train)
    for Y in (ds.Y_val, ds.Y_test):
        # stratification keeps each class's share within one sample of the training share
        assert np.abs(proportions(Y) - train).max() <= 1.0 / Y.shape[1] + 1e-9


def test_standardization_is_fitted_on_train_only() -> None:
    ds = load_dataset("wine")
    np.testing.assert_allclose(ds.X_train.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.std(axis=1), 1.0, atol=1e-12)
    assert np.abs(ds.X_val.mean(axis=1)).max() > 1e-3  # val was not refitted
    raw = load_dataset("wine", standardize=False)
    np.testing.assert_array_equal(raw.x_mean, 0.0)
    np.testing.assert_array_equal(raw.x_std, 1.0)
    np.testing.assert_allclose(raw.X_train, ds.X_train * ds.x_std + ds.x_mean, atol=1e-9)
    np.testing.assert_allclose(raw.X_train.mean(axis=1, keepdims=True), ds.x_mean)


def test_regression_targets_are_standardized_on_train() -> None:
    ds = load_small("friedman")
    np.testing.assert_allclose(ds.Y_train.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.Y_train.std(), 1.0, atol=1e-12)
    _, y = make_friedman1(n_samples=300, noise=1.0, random_state=0)
    restored = [ds.to_original_targets(Y) for Y in (ds.Y_train, ds.Y_val, ds.Y_test)]
    assert restored[1].shape == ds.Y_val.shape
    np.testing.assert_allclose(np.sort(np.hstack(restored)[0]), np.sort(y))


@pytest.mark.parametrize("name", [*GENERATED, "digits"])
def test_same_seed_same_data_other_seed_other_data(name: str) -> None:
    a, b, c = load_small(name, seed=3), load_small(name, seed=3), load_small(name, seed=4)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.Y_val, b.Y_val)
    assert a.X_train.shape == c.X_train.shape
    assert not np.array_equal(a.X_train, c.X_train)


def test_planar_flower_geometry() -> None:
    ds = load_dataset("planar", standardize=False, noise=0.0, test_fraction=0.0)
    X = np.hstack([ds.X_train, ds.X_val])
    assert X.shape == (2, 400)
    radius = np.hypot(X[0], X[1])
    assert radius.max() <= 4.0 + 1e-9 and radius.max() > 3.9  # petals of length a = 4


def test_spirals_options() -> None:
    two = load_dataset("spirals", n_classes=2, n_samples=100)
    assert two.task == "binary" and two.n_y == 1
    five = load_dataset("spirals", n_classes=5, n_samples=500)
    assert five.task == "multiclass" and five.n_y == 5


def test_test_fraction_zero_gives_empty_test_split() -> None:
    ds = load_dataset("iris", test_fraction=0.0, val_fraction=0.3)
    assert ds.X_test.shape == (4, 0) and ds.Y_test.shape == (3, 0)
    assert (ds.m_train, ds.m_val) == (105, 45)


def test_options_are_recorded_and_reload_the_same_data() -> None:
    ds = load_dataset("moons", n_samples=120, seed=7)
    assert ds.options == {
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "seed": 7,
        "standardize": True,
        "n_samples": 120,
        "noise": 0.2,
    }
    again = load_dataset(ds.name, **ds.options)
    np.testing.assert_array_equal(again.X_train, ds.X_train)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("digitz", {}, "unknown dataset 'digitz' (did you mean 'digits'?); choose one of: "),
        ("moons", {"noize": 0.1}, "unknown option 'noize' for dataset 'moons'; valid options:"),
        ("iris", {"n_samples": 10}, "valid options: seed, standardize, test_fraction"),
        ("iris", {"val_fraction": 0}, "val_fraction for dataset 'iris' must be > 0"),
        ("iris", {"val_fraction": 0.6, "test_fraction": 0.4}, "must be < 1"),
        ("iris", {"test_fraction": -0.1}, "test_fraction for dataset 'iris' must be >= 0"),
        ("iris", {"seed": 1.5}, "seed for dataset 'iris' must be an integer"),
        ("iris", {"seed": True}, "seed for dataset 'iris' must be an integer"),
        ("iris", {"standardize": "yes"}, "standardize for dataset 'iris' must be true or false"),
        ("planar", {"n_samples": "many"}, "n_samples for dataset 'planar' must be an integer"),
        ("circles", {"factor": 1.0}, "factor for dataset 'circles' must be < 1"),
        ("spirals", {"n_samples": 9}, "dataset 'spirals' has 9 samples, too few"),
        ("mnist1d", {"test_fraction": 0.3}, "own test split"),
    ],
    ids=[
        "unknown-name",
        "unknown-option",
        "option-of-another-dataset",
        "val-zero",
        "fractions-sum",
        "negative-test",
        "float-seed",
        "bool-seed",
        "string-bool",
        "bad-int",
        "factor-range",
        "too-small",
        "mnist1d-test-fraction",
    ],
)
def test_bad_names_and_options(name: str, options: dict[str, object], expected: str) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(name, **options)
    assert expected in str(info.value)


def test_unknown_name_lists_choices_and_files() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("nope")
    message = str(info.value)
    assert "breast_cancer, circles" in message and ".csv or .npz" in message


def test_numbers_from_yaml_are_accepted() -> None:
    ds = load_dataset("moons", n_samples=100.0, noise=0, seed=np.int64(2))
    assert ds.m_train + ds.m_val + ds.m_test == 100


@pytest.mark.slow
def test_mnist1d_shapes_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPEXP_CACHE_DIR", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    ds = load_dataset("mnist1d")
    drawn = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    assert drawn == (np.random.random(), random.random())  # global RNGs untouched
    assert ds.task == "multiclass" and ds.class_names == tuple("0123456789")
    assert (ds.n_x, ds.n_y) == (40, 10)
    assert (ds.m_train, ds.m_val, ds.m_test) == (3200, 800, 1000)
    cached = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(cached) == 1
    assert not list(tmp_path.glob("*.tmp"))

    def no_generation() -> None:
        raise AssertionError("mnist1d was generated again instead of read from the cache")

    monkeypatch.setattr(mnist1d_cache, "_generate", no_generation)
    again = load_dataset("mnist1d")
    np.testing.assert_array_equal(again.X_test, ds.X_test)
    np.testing.assert_array_equal(again.Y_train, ds.Y_train)

    other = load_dataset("mnist1d", val_fraction=0.25, seed=1, test_fraction=0.2)
    assert (other.m_train, other.m_val, other.m_test) == (3000, 1000, 1000)
    raw_test = other.X_test * other.x_std + other.x_mean
    np.testing.assert_allclose(raw_test, ds.X_test * ds.x_std + ds.x_mean, atol=1e-12)


def test_mnist1d_bad_cache_file_is_regenerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPEXP_CACHE_DIR", str(tmp_path))
    fake = {
        "x": np.zeros((20, 40)),
        "y": np.arange(20) % 10,
        "x_test": np.ones((10, 40)),
        "y_test": np.arange(10),
    }
    monkeypatch.setattr(mnist1d_cache, "_generate", lambda: fake)
    path = tmp_path / f"mnist1d-{mnist1d_cache._cache_key()}.npz"
    path.write_bytes(b"not a zip file")
    arrays = mnist1d_cache.load_mnist1d_arrays()
    np.testing.assert_array_equal(arrays["x_test"], fake["x_test"])
    with np.load(path, allow_pickle=False) as npz:  # the bad file was replaced
        np.testing.assert_array_equal(npz["y"], fake["y"])


def test_mnist1d_args_match_the_package_defaults() -> None:
    data = pytest.importorskip("mnist1d.data")
    defaults = data.get_dataset_args(as_dict=True)
    defaults.pop("url", None)
    assert defaults == mnist1d_cache.MNIST1D_ARGS
