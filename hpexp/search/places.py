"""Names that become folder names, and files a study is about to create.

A study's name and its MLflow experiment's name become folders (`hpexp-models/<study>/`,
`mlartifacts/<experiment>/`): `name_problem` refuses what would leave the folder they belong
in. `cannot_create` tells why a file cannot be created where a store wants it, and
`check_places` asks it of every file a study run is about to create, before the first one is.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from hpexp.errors import StoreError

if TYPE_CHECKING:
    from hpexp.search.spec import StudySpec

__all__ = ["MAX_NAME_LENGTH", "cannot_create", "check_places", "name_problem"]

#: Longest study or experiment name (a folder name: file systems allow 255 bytes).
MAX_NAME_LENGTH = 100


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a folder of its own (None when it can): it must be text of 1 to
    MAX_NAME_LENGTH characters, without path separators, '..' or control characters."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty text"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; use at most {MAX_NAME_LENGTH}"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (it names a folder); use '-' or '_' instead"
    if ".." in name or name == ".":
        return "must not be '.' or contain '..' (it names a folder)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return "must not contain control characters (a newline, a tab, ...)"
    return None


def cannot_create(path: str | Path) -> str | None:
    """Why a file at `path` cannot be created or written (None when it can): a folder above it
    is a file, or is not writable; or the path is a folder or another non-regular file."""
    path = Path(os.path.abspath(path))
    try:
        if path.exists():
            if path.is_dir():
                return f"'{path}' is a folder, not a file"
            if not path.is_file():
                return f"'{path}' is not a regular file"
            if not os.access(path, os.R_OK | os.W_OK):
                return f"'{path}' is not writable"
            folder = path.parent  # lock and journal files go beside it
        else:
            folder = path.parent
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
    except OSError as e:
        return f"'{path}' cannot be reached ({e.strerror or e})"
    if not folder.is_dir():
        return f"'{folder}' is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder '{folder}' is not writable"
    return None


def check_places(spec: StudySpec) -> None:
    """Refuse, before anything is created, a study whose Optuna storage file (a journal or
    SQLite file) or trial-models folder cannot be created: one line naming the path and the
    fix."""
    from hpexp.search.factories import models_root, storage_kind

    url = spec.storage
    store: Path | None = None
    if storage_kind(url) == "journal":
        store = Path(url.removeprefix("journal:"))
    elif url.startswith("sqlite:///"):
        store = Path(url.removeprefix("sqlite:///"))
    if store is not None:
        problem = cannot_create(store)
        if problem:
            raise StoreError(
                f"storage '{store}': cannot create the Optuna storage there: {problem}; give "
                "--storage a path in a folder you can write to, or run from such a folder"
            )
    folder = models_root(url) / spec.name
    problem = cannot_create(folder / ".ask.lock")
    if problem:
        raise StoreError(
            f"cannot create the trial models folder '{folder}': {problem}; run from a folder "
            "you can write to"
            + ("" if store is not None else " (trial models are kept in hpexp-models/ there)")
        )
