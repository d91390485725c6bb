"""The structure of a study file, as pydantic models, and its one-line messages.

`StudyFile` says which keys a study file has and which it needs, and which values are mappings,
lists, text, true/false or integers; `parse` validates a document against it and turns the
first of pydantic's errors into the project's one line, "file: field: fix":

    studies/x.yaml: budget.n_trials: must be an integer > 0, got 0
    studies/x.yaml: serch: unknown key; did you mean 'search'?

The first error is the one a reader meets first: at each level, unknown keys, then missing
keys, then the fields in the order of the file's documentation. A field's fix is written
beside it (`Fix`); unknown keys, missing keys and values that are not mappings get the same
message everywhere. Rules about values that depend on other values (the dataset's task, the
search space, a hyperparameter's range, a sampler's options) are checked afterwards, in
`hpexp.search.spec`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from hpexp.errors import SpecError
from hpexp.registry import close_match
from hpexp.search.factories import PRUNERS, SAMPLERS
from hpexp.search.hyperparams import HYPERPARAMETERS, SEARCHABLE

__all__ = ["MAX_SEED", "NAME_PATTERN", "StudyFile", "parse", "unknown_key", "where"]

MAX_SEED = 2**32 - 1
#: A study's name (a folder name too).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAPPING = "must be a mapping with keys"


@dataclass(frozen=True)
class Fix:
    """What to do about a value of this field that does not fit: a text, or a function of the
    value that makes one; `parent` reports it at the mapping that holds the field."""

    text: str | Callable[[Any], str]
    parent: bool = False

    def __call__(self, value: Any) -> str:
        return self.text if isinstance(self.text, str) else self.text(value)


def unknown_key(key: object, allowed: Iterable[str]) -> str:
    """The message for a key a mapping does not take: the near miss, or the keys it takes."""
    allowed = list(allowed)
    close = close_match(str(key), allowed)
    hint = f"did you mean '{close}'?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown key; {hint}"


def _refuse(fix: str) -> PydanticCustomError:
    """A validator's error whose message is `fix`, as it is."""
    return PydanticCustomError("spec", "{fix}", {"fix": fix})


# -- values that stand for others ---------------------------------------------------------------


def _or_none(value: Any) -> Any:
    """Empty values (null, "", 0, [], {}) mean the default, as in `key: value or default`."""
    return value or None


def _or_empty(value: Any) -> Any:
    return value or {}


def _named(value: Any) -> Any:
    """`sampler: tpe` is `sampler: {name: tpe}`; an empty value is {}."""
    value = value or {}
    return {"name": value} if isinstance(value, str) else value


def _dataset(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _has_name(value: dict[Any, Any]) -> dict[Any, Any]:
    if "name" not in value:
        raise ValueError("no name")
    return value


def _one_or_many(value: Any) -> Any:
    """`objective: {metric: ...}` is a list of one; an empty value means the default."""
    return value if isinstance(value, list) else [value] if value else None


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("null")
    return value


# -- keys named by the hyperparameter table ------------------------------------------------------


def _fixed_key(key: Any) -> Any:
    base, _, layer = str(key).rpartition("_")
    if layer.isdigit() and base in HYPERPARAMETERS and HYPERPARAMETERS[base].per_layer:
        raise _refuse(
            f"per-layer values go in one list, {base}: [first, second, ...], with hidden_layers "
            "set to its length (hpexp best STUDY --yaml prints this form)"
        )
    if key not in HYPERPARAMETERS:
        raise _refuse(unknown_key(key, HYPERPARAMETERS))
    return key


def _search_key(key: Any) -> Any:
    if key not in HYPERPARAMETERS:
        close = close_match(str(key), HYPERPARAMETERS)
        hint = f"did you mean '{close}'?" if close else "searchable: " + ", ".join(SEARCHABLE)
        raise _refuse(f"unknown hyperparameter; {hint}")
    if not HYPERPARAMETERS[key].searchable:
        raise _refuse("cannot be searched; set it under fixed:")
    return key


# -- the file ------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re")


class SearchEntry(_Section):
    """One searched hyperparameter: `{float: [low, high]}`, `{int: [low, high]}` (with `log`,
    `step`) or `{choice: [a, b, ...]}`; `per_layer` for hidden_units and activation. A range's
    bounds and step depend on the hyperparameter's kind: `hpexp.search.spec` checks them."""

    float_: Any = Field(None, alias="float")
    int_: Any = Field(None, alias="int")
    choice: Annotated[
        list[Any] | None,
        Field(min_length=1),
        BeforeValidator(_not_null),
        Fix("must be a non-empty list of values"),
    ] = None
    log: Annotated[bool, Fix("must be true or false")] = False
    step: Any = None
    per_layer: Annotated[bool, Fix("must be true or false")] = False


class ObjectiveEntry(_Section):
    metric: Any
    direction: Annotated[
        Literal["maximize", "minimize"] | None,
        BeforeValidator(_not_null),
        Fix("must be maximize or minimize"),
    ] = None


class Budget(_Section):
    n_trials: Annotated[
        int | None, Field(gt=0), Fix(lambda v: f"must be an integer > 0, got {v!r}")
    ] = None
    timeout: Annotated[
        float | None,
        Field(gt=0, allow_inf_nan=False),
        Fix(lambda v: f"must be a finite number of seconds > 0, got {v!r}"),
    ] = None


_TEXTS = Fix("uri and experiment must be text", parent=True)


class Tracking(_Section):
    uri: Annotated[str | None, BeforeValidator(_or_none), _TEXTS] = None
    experiment: Annotated[str | None, BeforeValidator(_or_none), _TEXTS] = None


def _names(names: Iterable[str]) -> Fix:
    return Fix(f"must be {{name: ..., options}}; names: {', '.join(names)}")


class StudyFile(_Section):
    """A study file, key by key (see README's table of them)."""

    name: Annotated[
        str,
        Field(pattern=NAME_PATTERN.pattern),
        Fix("must be letters, digits, '_', '.' or '-' (e.g. quickstart)"),
    ]
    description: Annotated[str | None, BeforeValidator(_or_none), Fix("must be text")] = None
    dataset: Annotated[
        dict[Any, Any],
        BeforeValidator(_dataset),
        AfterValidator(_has_name),
        Fix("give {name: digits, ...options} or a .csv/.npz path"),
    ]
    fixed: Annotated[
        dict[Annotated[Any, AfterValidator(_fixed_key)], Any],
        BeforeValidator(_or_empty),
        Fix(f"{_MAPPING} {', '.join(HYPERPARAMETERS)}"),
    ] = Field(default_factory=dict)
    search: Annotated[
        dict[Annotated[Any, AfterValidator(_search_key)], SearchEntry] | None,
        Fix(
            "must map hyperparameter names to ranges, e.g. "
            "learning_rate: {float: [1.0e-4, 1.0], log: true}"
        ),
    ] = None
    objective: Annotated[list[ObjectiveEntry] | None, BeforeValidator(_one_or_many)] = None
    sampler: Annotated[dict[Any, Any], BeforeValidator(_named), _names(SAMPLERS)] = Field(
        default_factory=dict
    )
    pruner: Annotated[dict[Any, Any], BeforeValidator(_named), _names(PRUNERS)] = Field(
        default_factory=dict
    )
    budget: Budget | None = None
    repeats: Annotated[int, Field(ge=1), Fix(lambda v: f"must be an integer >= 1, got {v!r}")] = 1
    seed: Annotated[
        int,
        Field(ge=0, le=MAX_SEED),
        Fix(lambda v: f"must be an integer in [0, {MAX_SEED}], got {v!r}"),
    ] = 0
    storage: Annotated[
        str | None,
        BeforeValidator(_or_none),
        Fix("must be a URL (sqlite:///..., postgresql://...) or a path"),
    ] = None
    tracking: Annotated[Tracking | None, BeforeValidator(_or_none)] = None
    enqueue: Annotated[
        list[Any] | None,
        BeforeValidator(_or_none),
        Fix("must be a list of {hyperparameter: value} mappings"),
    ] = None
    workers: Any = 1


# -- pydantic's errors as one line ---------------------------------------------------------------


def parse(doc: Mapping[str, Any], origin: str) -> StudyFile:
    """`doc` as a StudyFile; SpecError "{origin}: {field}: {fix}" for the first thing in it
    that does not fit."""
    try:
        return StudyFile.model_validate(doc)
    except ValidationError as e:
        errors = e.errors()
        # pydantic lists the entries of a mapping or a list in the file's order
        met: dict[tuple[Any, ...], int] = {}
        for i, error in enumerate(errors):
            for depth in range(1, len(error["loc"]) + 1):
                met.setdefault(tuple(error["loc"][:depth]), i)
        first = min(errors, key=lambda error: _rank(tuple(error["loc"]), error["type"], met))
        field, message = _describe(first, doc)
        raise SpecError(f"{origin}: {field}: {message}") from None


def where(loc: Iterable[Any], doc: Mapping[str, Any]) -> str:
    """A field's name in messages: budget.n_trials, search.l2.float, enqueue[0].l2; a single
    objective is `objective`, one of several `objective[1]`."""
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            continue
        if isinstance(item, int):
            several = parts != ["objective"] or (
                isinstance(doc.get("objective"), list) and len(doc["objective"]) > 1
            )
            if several:
                parts[-1] += f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _rank(
    loc: tuple[Any, ...], kind: str, met: Mapping[tuple[Any, ...], int]
) -> tuple[tuple[int, int], ...]:
    """Where an error comes in reading order: at each level of a section, unknown keys first,
    then missing keys, then the fields in their order; in a mapping or a list, the entries in
    the file's order (`met`: the first of pydantic's errors under each place), an entry's key
    before its value."""
    ranks = []
    models, _ = _walk(loc)
    for depth, (model, item) in enumerate(zip(models, loc, strict=True)):
        if item == "[key]":
            ranks.append((0, 0))
        elif model is None:
            ranks.append((2, met[loc[: depth + 1]]))
        else:
            last = depth == len(loc) - 1
            phase = {"extra_forbidden": 0, "missing": 1}.get(kind, 2) if last else 2
            keys = list(_fields(model))
            ranks.append((phase, keys.index(item) if item in keys else len(keys)))
    return (*ranks, (9, 0))


def _describe(error: Mapping[str, Any], doc: Mapping[str, Any]) -> tuple[str, str]:
    """(field, fix) for one of pydantic's errors."""
    loc, kind = tuple(error["loc"]), error["type"]
    models, node = _walk(loc)
    if kind == "spec":
        return where(loc, doc), error["ctx"]["fix"]
    if kind == "extra_forbidden":
        return where(loc, doc), unknown_key(loc[-1], _fields(models[-1]))  # type: ignore[arg-type]
    if kind == "missing":
        return where(loc[:-1], doc) or str(loc[-1]), f"missing required key '{loc[-1]}'"
    if _is_model(node):  # a section or an entry that is not a mapping
        return where(loc, doc), f"{_MAPPING} {', '.join(_fields(node))}"
    # the last field on the way has the fix (the steps after it go into a list or a mapping)
    model, item = next((m, i) for m, i in zip(reversed(models), reversed(loc), strict=True) if m)
    fix = next(m for m in _fields(model)[item].metadata if isinstance(m, Fix))
    return where(loc[:-1] if fix.parent else loc, doc), fix(error["input"])


def _walk(loc: tuple[Any, ...]) -> tuple[list[type[BaseModel] | None], Any]:
    """The model each step of `loc` is taken in (None for a step into a list or a mapping),
    and the type the steps end at."""
    node: Any = StudyFile
    models: list[type[BaseModel] | None] = []
    for item in loc:
        models.append(node if _is_model(node) else None)
        if item == "[key]":  # a mapping's key: (..., key, "[key]")
            node = None
        elif _is_model(node):
            info = _fields(node).get(item)  # None: a key the model does not take
            node = _unwrap(info.annotation) if info else None
        else:  # list[X] -> X, dict[K, V] -> V
            node = _unwrap(get_args(node)[-1]) if get_args(node) else None
    return models, node


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the file's key for them."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` as X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType) and type(None) in get_args(annotation):
            (annotation,) = (a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation
