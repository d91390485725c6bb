"""Saving and loading models as two plain files: parameters in .npz, the rest in .json.

`save_model(model, "best")` writes best.npz (W1, b1, ...) and best.json (architecture and
`model.metadata`). Loading uses `allow_pickle=False`: a model file can never run code.

A model file may come from anywhere, so `load_model` checks both files completely before it
allocates anything that their contents size: the JSON document's keys, types and nesting depth,
the architecture (and its size against the limit of `hpexp.nn.limits`), the metadata that
predictions read, and the name, dtype and shape of every array in the .npz, read from the array
headers. Only then are the arrays read, checked to be finite and turned into the model; the
network is built from them directly, never initialized first. Every problem is one `DataError`
that names the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpexp.errors import ConfigError, DataError
from hpexp.nn.activations import ACTIVATIONS
from hpexp.nn.init import INITS
from hpexp.nn.limits import check_model_size, count_parameters, describe
from hpexp.nn.losses import OUTPUTS
from hpexp.nn.model import DTYPES, MLP
from hpexp.nn.settings import is_integer, is_number

if TYPE_CHECKING:  # the core reads a Dataset's attributes; it does not import hpexp.data
    from hpexp.data import Dataset

__all__ = ["ModelMetadata", "load_model", "save_model"]

FORMAT = "hpexp.mlp/1"
TOP_KEYS = ("format", "model", "metadata")
MODEL_KEYS = ("layer_dims", "activation", "output", "init", "seed", "dtype")
MAX_JSON_BYTES = 64 * 2**20  # architecture and metadata only; the weights are in the .npz
MAX_JSON_DEPTH = 32  # nested lists/objects; what save_model writes is a few levels deep
_NPY_OVERHEAD = 2**16  # per array, at most: a .npy header and its zip entry
_FIX = "save the model again with save_model (hpexp best STUDY --save PATH)"


def _checked(kind: str, length: str) -> dict[str, str]:
    """A metadata field that predictions read: a list of `kind` ("names", "numbers",
    "positive") with one value per `length` ("inputs", "classes", "targets")."""
    return {"kind": kind, "length": length}


@dataclass(frozen=True)
class ModelMetadata:
    """What a saved model needs to predict from raw rows, and where it came from.

    Kept in `model.metadata` (a plain dict, saved in the model's .json file) under these keys:
    the input columns in training order and the standardization fitted on the training split,
    the task, the class names and, for regression, the target names and scale. Every key may
    be missing; other keys of `model.metadata` are free-form. Studies write it for every saved
    trial model (`of_dataset`); `hpexp.predict` reads it (`from_dict`); `load_model` checks the
    keys predictions read."""

    task: str | None = None
    feature_names: list[str] | None = field(default=None, metadata=_checked("names", "inputs"))
    x_mean: list[float] | None = field(default=None, metadata=_checked("numbers", "inputs"))
    x_std: list[float] | None = field(default=None, metadata=_checked("positive", "inputs"))
    class_names: list[str] | None = field(default=None, metadata=_checked("names", "classes"))
    target_names: list[str] | None = field(default=None, metadata=_checked("names", "targets"))
    target_mean: list[float] | None = field(default=None, metadata=_checked("numbers", "targets"))
    target_std: list[float] | None = field(default=None, metadata=_checked("positive", "targets"))
    dataset: str | None = None  # where it came from
    study: str | None = None
    trial: int | None = None
    params: dict[str, Any] | None = None

    @classmethod
    def of_dataset(cls, ds: Dataset, **origin: Any) -> ModelMetadata:
        """The metadata of a model trained on `ds`; `origin` sets study, trial and params."""

        def col(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(x) for x in np.asarray(a).ravel()]

        targets = [f"{ds.target_name}_{i}" for i in range(ds.n_y)]
        return cls(
            task=ds.task,
            dataset=ds.name,
            feature_names=list(ds.feature_names),
            x_mean=col(ds.x_mean),
            x_std=col(ds.x_std),
            class_names=list(ds.class_names),
            target_names=[ds.target_name] if ds.n_y == 1 else targets,
            target_mean=col(ds.target_mean),
            target_std=col(ds.target_std),
            **origin,
        )

    @classmethod
    def from_dict(cls, metadata: Mapping[str, Any]) -> ModelMetadata:
        """The known keys of `model.metadata`, their values as they are (not checked)."""
        return cls(**{f.name: metadata.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")


def save_model(model: MLP, path: str | os.PathLike[str]) -> Path:
    """Write PATH.npz and PATH.json (a .npz/.json suffix on `path` is ignored); return the .npz."""
    npz, meta = _paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp_npz = npz.with_name(npz.name + ".tmp.npz")
    np.savez(tmp_npz, **model.parameters)  # type: ignore[arg-type]
    doc = {"format": FORMAT, "model": model.config(), "metadata": model.metadata}
    tmp_meta = meta.with_name(meta.name + ".tmp")
    tmp_meta.write_text(json.dumps(doc, indent=2, sort_keys=True))
    os.replace(tmp_npz, npz)
    os.replace(tmp_meta, meta)
    return npz


def load_model(path: str | os.PathLike[str]) -> MLP:
    """Read a model written by `save_model` (give PATH, PATH.npz or PATH.json).

    Raises `DataError` naming the file, the field and the fix for anything that is not exactly
    what `save_model` writes (see the module's docstring)."""
    npz, meta = _paths(path)
    for f in (npz, meta):
        if not f.is_file():
            raise DataError(f"model file '{f}' not found; save_model writes PATH.npz and PATH.json")
    config, metadata = _check_document(_read_json(meta), meta)
    shapes = _shapes(config["layer_dims"])
    params = _read_arrays(npz, shapes, np.dtype(config["dtype"]))
    try:
        model = MLP(**config, parameters=params)
    except ConfigError as e:  # everything was checked above; kept as a safety net
        raise DataError(f"model file '{meta}' does not describe a valid network: {e}") from None
    model.metadata = metadata
    return model


# -- the .json file -------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_json(meta: Path) -> Any:
    size = meta.stat().st_size
    if size > MAX_JSON_BYTES:
        raise DataError(
            f"model file '{meta}' is {size:,} bytes, more than the {MAX_JSON_BYTES // 2**20} MiB "
            f"a model's architecture and metadata can take; {_FIX}"
        )
    try:
        doc = json.loads(meta.read_bytes(), object_pairs_hook=_no_duplicates)
    except OSError as e:
        raise DataError(f"model file '{meta}' cannot be read ({e.strerror or e})") from None
    except _DuplicateKey as e:
        raise DataError(f"model file '{meta}' repeats the key '{e}'; keep one; {_FIX}") from None
    except UnicodeDecodeError:
        raise DataError(f"model file '{meta}' is not UTF-8 text; {_FIX}") from None
    except RecursionError:
        raise DataError(
            f"model file '{meta}' nests lists or objects deeper than {MAX_JSON_DEPTH} levels; "
            f"{_FIX}"
        ) from None
    except ValueError as e:  # JSONDecodeError, or an integer with too many digits
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"model file '{meta}' is not valid JSON ({reason})") from None
    if _depth(doc) > MAX_JSON_DEPTH:
        raise DataError(
            f"model file '{meta}' nests lists or objects deeper than {MAX_JSON_DEPTH} levels; "
            f"{_FIX}"
        )
    return doc


def _depth(doc: Any) -> int:
    """How deeply lists and objects nest in `doc` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children)
    return deepest


def _check_document(doc: Any, meta: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MLP arguments, metadata) from a parsed .json document; DataError on anything else."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"model file '{meta}' is not an hpexp model (expected format {FORMAT})")

    def fail(field: str, problem: str) -> DataError:
        return DataError(f"model file '{meta}': {field}: {problem}; {_FIX}")

    _exact_keys(doc, TOP_KEYS, "the top level", fail)
    model = doc["model"]
    if not isinstance(model, dict):
        raise fail("model", f"must be an object with the keys {', '.join(MODEL_KEYS)}")
    _exact_keys(model, MODEL_KEYS, "model", fail)
    _check_architecture(model, meta, fail)

    metadata = doc["metadata"]
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise fail("metadata", f"must be an object (or null), got {_kind(metadata)}")
    dims = model["layer_dims"]
    _check_metadata(metadata, dims[0], dims[-1], model["output"], fail)
    return dict(model), metadata


def _check_architecture(model: dict[str, Any], meta: Path, fail: Callable[..., DataError]) -> None:
    """The values of the "model" object: what MLP accepts, within the size limit."""
    dims = model["layer_dims"]
    if (
        not isinstance(dims, list)
        or len(dims) < 2
        or not all(is_integer(n) and n >= 1 for n in dims)
    ):
        raise fail("model.layer_dims", "must list at least two positive integers [n_x, ..., n_y]")
    dtype = model["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise fail("model.dtype", f"must be one of {', '.join(DTYPES)}, got {_show(dtype)}")
    try:
        check_model_size(count_parameters(dims), dtype, what=describe(dims))
    except ConfigError as e:
        raise DataError(f"model file '{meta}': model.layer_dims: {e}") from None
    activation = model["activation"]
    names = activation if isinstance(activation, list) else [activation]
    if not isinstance(activation, (str, list)) or not all(
        isinstance(n, str) and n in ACTIVATIONS for n in names
    ):
        raise fail(
            "model.activation",
            f"must be a name or a list of names, each one of {', '.join(sorted(ACTIVATIONS))}",
        )
    if isinstance(activation, list) and len(activation) != len(dims) - 2:
        raise fail(
            "model.activation",
            f"lists {len(activation)} names but layer_dims has {len(dims) - 2} hidden layers",
        )
    for key, choices in (("output", OUTPUTS), ("init", INITS)):
        value = model[key]
        if not isinstance(value, str) or value not in choices:
            raise fail(
                f"model.{key}", f"must be one of {', '.join(sorted(choices))}, got {_show(value)}"
            )
    if not (is_integer(model["seed"]) and model["seed"] >= 0):
        raise fail("model.seed", f"must be an integer >= 0, got {_show(model['seed'])}")


def _exact_keys(
    node: dict[str, Any], allowed: tuple[str, ...], where: str, fail: Callable[..., DataError]
) -> None:
    unknown = [k for k in node if k not in allowed]
    if unknown:
        raise fail(where, f"unknown key '{unknown[0]}'; the keys are {', '.join(allowed)}")
    missing = [k for k in allowed if k not in node]
    if missing:
        raise fail(where, f"missing key '{missing[0]}'; the keys are {', '.join(allowed)}")


def _check_metadata(
    metadata: dict[str, Any], n_x: int, n_y: int, output: str, fail: Callable[..., DataError]
) -> None:
    """The metadata keys that predictions read must have the right types and lengths; the rest
    of the metadata is free-form."""
    task = OUTPUTS[output].task
    lengths = {  # None: not read for this task
        "inputs": n_x,
        "classes": {"binary": 2, "multiclass": n_y}.get(task),
        "targets": n_y if task == "regression" else None,
    }
    stated = metadata.get("task")
    if stated is not None and not isinstance(stated, str):
        raise fail("metadata.task", f"must be text, got {_kind(stated)}")
    for f in fields(ModelMetadata):
        if "kind" not in f.metadata:
            continue
        key, kind, length = f.name, f.metadata["kind"], lengths[f.metadata["length"]]
        value = metadata.get(key)
        if value is None:
            continue
        field = f"metadata.{key}"
        if not isinstance(value, list):
            raise fail(field, f"must be a list of {_WHAT[kind]}, got {_kind(value)}")
        bad = next((v for v in value if not _OK[kind](v)), _MISSING)
        if bad is not _MISSING:
            raise fail(field, f"must be a list of {_WHAT[kind]}, but holds {_show(bad)}")
        if length is not None and len(value) != length:
            raise fail(field, f"has {len(value)} values but the model needs {length}")


_MISSING = object()
_WHAT = {
    "names": "names (text)",
    "numbers": "finite numbers",
    "positive": "finite numbers > 0",
}
_OK: dict[str, Callable[[Any], bool]] = {
    "names": lambda v: isinstance(v, str) or is_integer(v),
    "numbers": is_number,
    "positive": lambda v: is_number(v) and v > 0,
}


def _kind(v: object) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(v), "null" if v is None else "a number"
    )


def _show(v: object) -> str:
    """A JSON value for a message, shortened."""
    text = repr(v)
    return text if len(text) <= 40 else f"{_kind(v)} ({text[:30]}...)"


# -- the .npz file --------------------------------------------------------------------------------


def _shapes(dims: list[int]) -> dict[str, tuple[int, int]]:
    shapes = {}
    for l in range(1, len(dims)):
        shapes[f"W{l}"], shapes[f"b{l}"] = (dims[l], dims[l - 1]), (dims[l], 1)
    return shapes


_UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error)


def _read_arrays(
    npz: Path, shapes: dict[str, tuple[int, int]], dtype: np.dtype
) -> dict[str, np.ndarray]:
    """The arrays of `npz`, exactly the keys and shapes of `shapes`, as finite `dtype` arrays.

    Names, dtypes and shapes come from the headers first; the data is read only when all fit."""
    _check_npz_size(npz, shapes)
    try:
        archive = zipfile.ZipFile(npz)
    except (zipfile.BadZipFile, *_UNREADABLE) as e:
        raise _unreadable(npz, e) from None
    with archive:
        expected = {f"{key}.npy": key for key in shapes}
        _check_members(npz, [info.filename for info in archive.infolist()], expected)
        stored = {
            key: _check_header(npz, archive, name, shapes[key]) for name, key in expected.items()
        }
        return {
            key: _read_array(npz, archive, name, dtype, stored[key])
            for name, key in expected.items()
        }


def _check_npz_size(npz: Path, shapes: dict[str, tuple[int, int]]) -> None:
    """A file larger than the architecture's parameters can take holds something else."""
    n_params = sum(a * b for a, b in shapes.values())
    most = n_params * 8 + len(shapes) * _NPY_OVERHEAD + 2**16
    size = npz.stat().st_size
    if size > most:
        raise DataError(
            f"model file '{npz}' is {size:,} bytes, more than the {n_params:,} parameters of its "
            f"architecture can take; it holds something else; {_FIX}"
        )


def _unreadable(npz: Path, e: BaseException, what: str = "") -> DataError:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return DataError(f"model file '{npz}'{what} is not a readable .npz file ({reason}); {_FIX}")


def _check_members(npz: Path, members: list[str], expected: dict[str, str]) -> None:
    """The archive holds each expected array once and nothing else."""
    if len(set(members)) != len(members):
        raise DataError(f"model file '{npz}' holds an array twice; {_FIX}")
    unknown = [m for m in members if m not in expected]
    if unknown:
        raise DataError(
            f"model file '{npz}' holds an unknown array '{unknown[0]}'; a model with "
            f"layer_dims of {len(expected) // 2 + 1} layers holds exactly "
            f"{', '.join(expected.values())}; {_FIX}"
        )
    missing = [key for name, key in expected.items() if name not in members]
    if missing:
        raise DataError(
            f"model file '{npz}' is missing the array(s) {', '.join(missing)} that its "
            f"architecture needs; {_FIX}"
        )


def _check_header(
    npz: Path, archive: zipfile.ZipFile, name: str, shape: tuple[int, int]
) -> np.dtype:
    """The stored dtype of array `name`, after its header (dtype, shape, data size) is checked
    against the architecture's `shape`; nothing but the header is read."""
    key = name.removesuffix(".npy")
    try:
        with archive.open(name) as f:
            found, stored = _header(f)
            header_bytes = f.tell()
    except (zipfile.BadZipFile, *_UNREADABLE) as e:
        raise _unreadable(npz, e, f" (array {key})") from None
    if stored.hasobject or stored.kind not in "fiu" or stored.itemsize > 8:
        raise DataError(
            f"model file '{npz}': array {key} holds non-numeric values (dtype "
            f"{stored}); parameters must be real numbers; {_FIX}"
        )
    if found != shape:
        raise DataError(
            f"model file '{npz}': array {key} has shape {found} but the architecture "
            f"in the .json needs {shape}; {_FIX}"
        )
    data_bytes = archive.getinfo(name).file_size - header_bytes
    if data_bytes != math.prod(found) * stored.itemsize:
        raise DataError(
            f"model file '{npz}': array {key} holds {data_bytes:,} bytes of data but its "
            f"header says {found} of {stored} ({math.prod(found) * stored.itemsize:,} "
            f"bytes); the file is damaged; {_FIX}"
        )
    return stored


def _read_array(
    npz: Path, archive: zipfile.ZipFile, name: str, dtype: np.dtype, stored: np.dtype
) -> np.ndarray:
    """Array `name` (header already checked) as a finite, contiguous `dtype` array."""
    key = name.removesuffix(".npy")
    try:
        with archive.open(name) as f:
            array = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, *_UNREADABLE) as e:
        raise _unreadable(npz, e, f" (array {key})") from None
    array = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        cast = "" if stored == dtype else f" (as {dtype})"
        raise DataError(
            f"model file '{npz}': array {key} holds {bad} NaN or infinite value(s)"
            f"{cast}; a model with them predicts nothing useful; {_FIX}"
        )
    return array


def _header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of the .npy stream `f`, reading nothing else."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return tuple(shape), dtype
