"""`hpexp predict` on tampered or damaged model files: one line, exit 2, bounded memory and time.

A saved model is two files that may come from anywhere. Each case below edits one of them the
way a careless or hostile hand might, then runs the real command in a fresh process whose
address space is capped (RLIMIT_AS) and whose run time is bounded: the command must refuse the
file with exactly one line on stderr that names the file and the field, exit with code 2 and
never print a traceback, allocating nothing the files' contents size on the way.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpexp
from tests.conftest import raw_rows, trained

ADDRESS_SPACE = 2 * 2**30  # bytes the command may map: far below any huge case
TIMEOUT = 30  # seconds
SOON = 15  # seconds a refusal may take, process start included, on a loaded machine


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained iris model saved as model.npz + model.json, and rows.csv to predict."""
    folder = tmp_path_factory.mktemp("hostile")
    ds, model = trained("iris")
    hpexp.save_model(model, folder / "model")
    raw_rows(ds).to_csv(folder / "rows.csv", index=False)
    return folder


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    """A fresh copy of the saved model and rows in tmp_path, to tamper with."""
    for name in ("model.npz", "model.json", "rows.csv"):
        shutil.copyfile(original / name, tmp_path / name)
    return tmp_path


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def predict(folder: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `hpexp predict model rows.csv` in `folder` under the memory cap; (process, seconds)."""
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        # one BLAS thread: each thread's buffers count against the address-space cap
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("HPEXP_MAX_MODEL_BYTES", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hpexp", "predict", "model", "rows.csv"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_cap_memory,
    )
    return proc, time.monotonic() - start


# -- editing the files ----------------------------------------------------------------------------


def edit_json(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = folder / "model.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def edit_arrays(folder: Path, change: Callable[[dict[str, np.ndarray]], object]) -> None:
    path = folder / "model.npz"
    with np.load(path, allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    change(arrays)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def set_metadata(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["metadata"].__setitem__(key, value)


def set_model(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["model"].__setitem__(key, value)


def set_array(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[..., None]:
    return lambda arrays: arrays.__setitem__(key, value(arrays[key]))


def with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[3] = np.nan
    return a


def with_inf(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[0] = -np.inf
    return a


def huge(dims: list[int]) -> Callable[[dict[str, Any]], None]:
    """layer_dims edited to `dims` (iris: 4 inputs, 3 classes), activations to match."""

    def change(doc: dict[str, Any]) -> None:
        doc["model"]["layer_dims"] = dims
        doc["model"]["activation"] = ["tanh"] * (len(dims) - 2)

    return change


def nested_text(depth: int) -> Callable[[Path], None]:
    """The metadata's "params" replaced, as text, by `depth` nested lists."""

    def change(folder: Path) -> None:
        path = folder / "model.json"
        doc = json.loads(path.read_text())
        doc["metadata"]["params"] = "PLACEHOLDER"
        text = json.dumps(doc).replace('"PLACEHOLDER"', "[" * depth + "]" * depth)
        path.write_text(text)

    return change


def write_bytes(name: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content(path.read_bytes()))

    return change


# Each case: how the files are edited, and what the one line must say (besides the file name).
JSON_CASES: dict[str, tuple[Callable[[dict[str, Any]], object], list[str]]] = {
    "missing_key": (lambda doc: doc["model"].pop("layer_dims"), ["missing key 'layer_dims'"]),
    "missing_top_key": (lambda doc: doc.pop("metadata"), ["missing key 'metadata'"]),
    "extra_top_key": (lambda doc: doc.__setitem__("weights", [1, 2]), ["unknown key 'weights'"]),
    "extra_argument": (set_model("bias", True), ["model: unknown key 'bias'"]),
    "metadata_as_list": (lambda doc: doc.__setitem__("metadata", [1, 2]), ["metadata: "]),
    "text_in_x_mean": (set_metadata("x_mean", ["abc", 1, 2, 3]), ["metadata.x_mean", "'abc'"]),
    "nan_in_x_std": (set_metadata("x_std", [float("nan"), 1, 1, 1]), ["metadata.x_std"]),
    "zero_in_x_std": (set_metadata("x_std", [0, 1, 1, 1]), ["metadata.x_std", "> 0"]),
    "short_x_mean": (set_metadata("x_mean", [0.0, 1.0]), ["metadata.x_mean", "needs 4"]),
    "feature_names_object": (set_metadata("feature_names", {"a": 1}), ["feature_names"]),
    "class_names_short": (set_metadata("class_names", ["a"]), ["class_names", "needs 3"]),
    "layer_dims_text": (set_model("layer_dims", "4,8,3"), ["model.layer_dims"]),
    "layer_dims_float": (set_model("layer_dims", [4, 8.5, 3]), ["model.layer_dims"]),
    "layer_dims_negative": (set_model("layer_dims", [4, -8, 3]), ["model.layer_dims"]),
    "activation_unknown": (set_model("activation", ["swish"]), ["model.activation"]),
    "activation_count": (set_model("activation", ["tanh", "tanh"]), ["model.activation"]),
    "dtype_unknown": (set_model("dtype", "float16"), ["model.dtype"]),
    "seed_text": (set_model("seed", "one"), ["model.seed"]),
    "output_list": (set_model("output", ["softmax"]), ["model.output"]),
    "model_as_list": (lambda doc: doc.__setitem__("model", [4, 8, 3]), ["model: "]),
    "wrong_format": (lambda doc: doc.__setitem__("format", "other/1"), ["not an hpexp model"]),
}
NPZ_CASES: dict[str, tuple[Callable[[dict[str, np.ndarray]], object], list[str]]] = {
    "text_weights": (
        set_array("W1", lambda a: np.full(a.shape, "abc")),
        ["W1", "non-numeric", "<U3"],
    ),
    "object_weights": (set_array("W1", lambda a: np.array([None])), ["W1", "non-numeric"]),
    "complex_weights": (set_array("W2", lambda a: a.astype(complex)), ["W2", "non-numeric"]),
    "nan_weights": (set_array("W2", with_nan), ["W2", "NaN"]),
    "inf_bias": (set_array("b1", with_inf), ["b1", "NaN or infinite"]),
    "shape_mismatch": (set_array("W1", lambda a: np.zeros((9, 4))), ["W1", "(9, 4)", "(8, 4)"]),
    "transposed": (set_array("W2", lambda a: a.T.copy()), ["W2", "shape"]),
    "missing_array": (lambda arrays: arrays.pop("b2"), ["b2", "missing"]),
    "extra_array": (lambda arrays: arrays.__setitem__("W3", np.zeros((3, 3))), ["W3", "unknown"]),
}
FILE_CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "deeply_nested_json": (nested_text(100_000), ["model.json", "nests"]),
    "nested_json_under_recursion_limit": (nested_text(200), ["model.json", "nests"]),
    "truncated_npz": (write_bytes("model.npz", lambda b: b[: len(b) // 2]), ["model.npz"]),
    "garbage_npz": (write_bytes("model.npz", lambda b: os.urandom(len(b))), ["model.npz"]),
    "empty_npz": (write_bytes("model.npz", lambda b: b""), ["model.npz"]),
    "garbage_json": (write_bytes("model.json", lambda b: b"\xff\xfe\x00garbage"), ["model.json"]),
    "duplicate_json_key": (
        write_bytes("model.json", lambda b: b.replace(b'"format"', b'"format": 1, "format"', 1)),
        ["model.json", "repeats the key 'format'"],
    ),
    "overflow_in_float32": (
        lambda folder: (
            edit_json(folder, set_model("dtype", "float32")),
            edit_arrays(folder, set_array("W1", lambda a: np.full(a.shape, 1e300))),
        ),
        ["model.npz", "W1", "infinite", "as float32"],
    ),
    "npz_data_cut_short": (lambda folder: _cut_array_data(folder / "model.npz"), ["model.npz"]),
}
# layer_dims that would need more memory than the cap (and, the first two, than the size limit)
HUGE_CASES: dict[str, tuple[list[int], list[str]]] = {
    "layer_dims_30000": ([4, 30000, 30000, 3], ["model.layer_dims", "HPEXP_MAX_MODEL_BYTES"]),
    "layer_dims_200000": ([4, 200000, 200000, 3], ["model.layer_dims", "HPEXP_MAX_MODEL_BYTES"]),
    "deep_layer_dims": ([4, *[5000] * 30, 3], ["model.layer_dims", "HPEXP_MAX_MODEL_BYTES"]),
    # within the size limit, but the .npz does not hold such arrays: refused from the headers
    "layer_dims_under_limit": ([4, 50_000_000, 3], ["model.npz", "W1", "(50000000, 4)"]),
}


def _cut_array_data(path: Path) -> None:
    """Rewrite the .npz so that W1's header promises more data than the member holds."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["W1.npy"] = members["W1.npy"][:-16]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def refused(proc: subprocess.CompletedProcess[str], seconds: float, words: list[str]) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    line = lines[0]
    assert line.startswith("hpexp: error: model file '"), line
    assert "model.json" in line or "model.npz" in line, line
    for word in words:
        assert word in line, line
    assert proc.stdout == ""
    assert seconds < SOON, f"took {seconds:.1f} s"
    return line


@pytest.mark.slow
@pytest.mark.parametrize("case", list(JSON_CASES))
def test_tampered_json_is_one_line(case: str, copy: Path) -> None:
    change, words = JSON_CASES[case]
    edit_json(copy, change)
    refused(*predict(copy), ["model.json", *words])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_tampered_npz_is_one_line(case: str, copy: Path) -> None:
    change, words = NPZ_CASES[case]
    edit_arrays(copy, change)
    refused(*predict(copy), ["model.npz", *words])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_damaged_file_is_one_line(case: str, copy: Path) -> None:
    change, words = FILE_CASES[case]
    change(copy)
    refused(*predict(copy), words)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HUGE_CASES))
def test_huge_layer_dims_are_refused_before_allocating(case: str, copy: Path) -> None:
    dims, words = HUGE_CASES[case]
    edit_json(copy, huge(dims))
    line = refused(*predict(copy), words)
    if "HPEXP_MAX_MODEL_BYTES" in words:
        assert "GiB" in line and "limit" in line


@pytest.mark.slow
def test_the_untampered_copy_predicts(copy: Path) -> None:
    """The cap and the environment leave room for a real prediction: the cases above fail
    because of the files, not because of the sandbox."""
    proc, seconds = predict(copy)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith("prediction,proba_setosa")
    assert len(proc.stdout.splitlines()) > 10
    assert seconds < SOON


def test_raised_limit_still_checks_the_arrays(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the size limit raised, a huge architecture is still refused from the .npz headers,
    before the weights are read."""
    edit_json(copy, huge([4, 600_000_000, 3]))  # 36 GiB of float64
    monkeypatch.setenv("HPEXP_MAX_MODEL_BYTES", "64G")
    with pytest.raises(hpexp.DataError, match=r"model\.npz.*W1.*\(600000000, 4\)"):
        hpexp.load_model(copy / "model")


def test_load_model_builds_from_the_arrays(copy: Path, original: Path) -> None:
    """No random initialization: what is loaded is exactly what was saved, in the saved dtype."""
    loaded = hpexp.load_model(copy / "model")
    with np.load(original / "model.npz", allow_pickle=False) as stored:
        for key in stored.files:
            np.testing.assert_array_equal(loaded.parameters[key], stored[key])
            assert loaded.parameters[key].flags.c_contiguous


def test_integer_weights_are_numbers(copy: Path) -> None:
    """Whole-number arrays are numeric: they load, as the model's dtype."""
    edit_arrays(copy, set_array("b1", lambda a: np.zeros(a.shape, dtype=np.int32)))
    loaded = hpexp.load_model(copy / "model")
    assert loaded.parameters["b1"].dtype == np.float64
    assert not loaded.parameters["b1"].any()
