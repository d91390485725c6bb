"""Name-keyed registries: one lookup, and one message for a name that is not there.

Activations, outputs, initializations, optimizers, samplers, pruners and metrics are each a
mapping from the name a study file, a keyword argument or an MLflow param uses to the code it
selects. `lookup` reads one of them; an unknown name raises one line that lists the choices and,
for a near miss, the name that was probably meant:

    unknown optimizer 'adma' (did you mean 'adam'?); choose one of: gd, momentum, rmsprop, adam
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

from hpexp.errors import ConfigError, HpexpError

__all__ = ["close_match", "lookup", "unknown_name"]

V = TypeVar("V")


def close_match(name: object, names: Iterable[str]) -> str | None:
    """The one of `names` that `name` most likely misspells, or None."""
    if not isinstance(name, str):
        return None
    close = difflib.get_close_matches(name, list(names), n=1)
    return close[0] if close else None


def unknown_name(name: object, names: Iterable[str], what: str, *, sort: bool = False) -> str:
    """ "unknown {what} {name!r} (did you mean '...'?); choose one of: ..." (the hint only for
    a near miss; the choices in `names`' order, or sorted)."""
    names = sorted(names) if sort else list(names)
    close = close_match(name, names)
    hint = f" (did you mean '{close}'?)" if close else ""
    return f"unknown {what} {name!r}{hint}; choose one of: {', '.join(names)}"


def lookup(
    registry: Mapping[str, V],
    name: object,
    what: str,
    field: str = "",
    *,
    error: type[HpexpError] = ConfigError,
    sort: bool = False,
) -> V:
    """`registry[name]`; for any other name (or a value that is not a name), `error` with the
    message of `unknown_name`, after "{field}: " when a field is given."""
    if isinstance(name, str) and name in registry:
        return registry[name]
    message = unknown_name(name, registry, what, sort=sort)
    raise error(f"{field}: {message}" if field else message)
