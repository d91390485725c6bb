"""Saving and loading models as two plain files: parameters in .npz, the rest in .json.

`save_model(model, "best")` writes best.npz (W1, b1, ...) and best.json (architecture and
`model.metadata`). Loading uses `allow_pickle=False`: a model file can never run code.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from hpexp.errors import ConfigError, DataError
from hpexp.nn.model import MLP

__all__ = ["load_model", "save_model"]

FORMAT = "hpexp.mlp/1"


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
    """Read a model written by `save_model` (give PATH, PATH.npz or PATH.json)."""
    npz, meta = _paths(path)
    for f in (npz, meta):
        if not f.is_file():
            raise DataError(f"model file '{f}' not found; save_model writes PATH.npz and PATH.json")
    try:
        doc = json.loads(meta.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"model file '{meta}' is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"model file '{meta}' is not an hpexp model (expected format {FORMAT})")
    model = MLP(**doc["model"])
    try:
        with np.load(npz, allow_pickle=False) as arrays:
            params = {k: arrays[k] for k in arrays.files}
    except ValueError as e:  # object arrays need pickle, which is refused
        raise DataError(f"model file '{npz}' holds non-numeric arrays ({e})") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"model file '{npz}' is not a readable .npz file ({e})") from None
    try:
        model.parameters = params
    except ConfigError as e:
        raise DataError(f"model file '{npz}' does not fit its architecture: {e}") from None
    model.metadata = dict(doc.get("metadata") or {})
    return model
