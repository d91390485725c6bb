"""One lookup for every name-keyed registry, with one message for an unknown name."""

from __future__ import annotations

import pytest

from hpexp.errors import ConfigError, SpecError
from hpexp.registry import close_match, lookup, unknown_name

REGISTRY = {"gd": 1, "momentum": 2, "rmsprop": 3, "adam": 4}


def test_a_known_name_gives_its_entry() -> None:
    assert lookup(REGISTRY, "adam", "optimizer") == 4


CHOICES = "choose one of: gd, momentum, rmsprop, adam"
UNKNOWN = [
    pytest.param("adma", {}, f"unknown optimizer 'adma' (did you mean 'adam'?); {CHOICES}",
                 id="near-miss"),
    pytest.param("lbfgs", {}, f"unknown optimizer 'lbfgs'; {CHOICES}", id="far"),
    pytest.param("lbfgs", {"sort": True},
                 "unknown optimizer 'lbfgs'; choose one of: adam, gd, momentum, rmsprop",
                 id="sorted"),
    pytest.param(3, {}, f"unknown optimizer 3; {CHOICES}", id="number"),
    pytest.param(["adam"], {}, f"unknown optimizer ['adam']; {CHOICES}", id="unhashable"),
    pytest.param(None, {"field": "s.yaml: fixed.optimizer"},
                 f"s.yaml: fixed.optimizer: unknown optimizer None; {CHOICES}", id="field"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "message"), UNKNOWN)
def test_an_unknown_name_is_one_line_listing_the_choices(name, kwargs, message) -> None:
    with pytest.raises(ConfigError) as info:
        lookup(REGISTRY, name, "optimizer", **kwargs)
    assert str(info.value) == message


def test_the_error_class_is_the_callers() -> None:
    with pytest.raises(SpecError):
        lookup(REGISTRY, "sgd", "optimizer", error=SpecError)


def test_close_match_and_message() -> None:
    assert close_match("relux", ["relu", "tanh"]) == "relu"
    assert close_match(3, ["relu"]) is None
    assert unknown_name("x", ("a", "b"), "thing") == "unknown thing 'x'; choose one of: a, b"
