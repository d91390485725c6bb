"""Optuna samplers, pruners and storages from the names and options in a study file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hpexp.errors import SpecError

__all__ = [
    "constructor",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "models_root",
    "redact_url",
    "stream_seed",
]


def constructor(kind: str, name: str) -> Any:
    """The Optuna class behind sampler/pruner `name` (validated names only)."""
    if kind == "sampler":
        return {
            "tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler,
            "grid": optuna.samplers.GridSampler,
            "cmaes": optuna.samplers.CmaEsSampler,
            "qmc": optuna.samplers.QMCSampler,
            "nsga2": optuna.samplers.NSGAIISampler,
        }[name]
    return {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }[name]


#: Samplers that keep their place in the study itself (grid points visited, the QMC sequence's
#: index): they continue correctly with the study's own seed and must keep it.
SELF_PLACING = ("grid", "qmc")


def stream_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for sampler stream `stream` of a study seeded with `seed`."""
    if not stream:
        return seed
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def make_sampler(
    options: dict[str, Any],
    seed: int,
    grid: dict[str, list] | None = None,
    stream: tuple[int, ...] = (),
) -> optuna.samplers.BaseSampler:
    """A seeded sampler; `grid` is the search space the grid sampler enumerates.

    `stream` picks a distinct random stream (e.g. (trials already in the study, pid)) so a
    resumed study or a second process never replays the proposals of the first; a fresh study
    (no stream) uses the study's seed as it is, so it proposes the same sequence every time.
    """
    options = dict(options)
    name = options.pop("name")
    base = options.pop("seed", seed)
    options["seed"] = base if name in SELF_PLACING else stream_seed(base, *stream)
    if name == "grid":
        return optuna.samplers.GridSampler(grid or {}, **options)
    if name == "tpe":
        options.setdefault("multivariate", True)
        options.setdefault("group", True)  # conditional spaces: per-layer units exist by depth
    if name == "cmaes":
        options.setdefault("warn_independent_sampling", False)
    if name == "qmc":
        options.setdefault("warn_independent_sampling", False)
    return constructor("sampler", name)(**options)


def make_pruner(options: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner by name; median waits for 5 finished trials before it prunes."""
    options = dict(options)
    name = options.pop("name")
    return constructor("pruner", name)(**options)


def storage_kind(url: str) -> str:
    """ "journal" for a path (the embedded default), "rdb" for a database URL."""
    if "://" in url:
        return "rdb"
    return "journal"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna storage for a database URL (sqlite:///, postgresql://, mysql://) or a journal
    file path (the embedded default; safe for several local worker processes)."""
    if storage_kind(url) == "rdb":
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:  # bad driver, unreachable server, bad URL
            raise SpecError(
                f"storage '{redact_url(url)}': cannot open ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]})"
            ) from None
    from optuna.storages.journal import JournalFileBackend

    from hpexp.search.journal import repair_journal

    path = Path(url.removeprefix("journal:")).resolve()  # a study object outlives a chdir
    path.parent.mkdir(parents=True, exist_ok=True)
    warning = repair_journal(path)
    if warning:
        print(f"hpexp: warning: {warning}", file=sys.stderr)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def models_root(url: str) -> Path:
    """Where trial networks are kept: `hpexp-models/` beside the journal or SQLite file, or in
    the current folder for a database server."""
    if storage_kind(url) == "journal":
        return Path(url.removeprefix("journal:")).resolve().parent / "hpexp-models"
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent / "hpexp-models"
    return Path.cwd() / "hpexp-models"


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, safe to print or log."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
