"""Loading untrusted YAML text (study files, `--set` values) with bounded work.

`load_yaml` builds what `yaml.safe_load` builds, but first refuses, with a one-line `SpecError`:

- more than `MAX_VALUES` values, each alias (`*name`) counted as the values it repeats: a 1 KB
  "alias bomb" expands to 10⁹ values once anything walks it;
- an alias inside the value it names, and lists or mappings nested deeper than `MAX_DEPTH`;
- a key given twice in one mapping (YAML would silently keep the last).

Syntax errors still raise `yaml.YAMLError`, for the caller to report.
"""

from __future__ import annotations

from typing import Any

import yaml

from hpexp.errors import SpecError

__all__ = ["MAX_DEPTH", "MAX_VALUES", "load_yaml"]

MAX_VALUES = 100_000  # scalars, lists and mappings, once every alias is expanded
MAX_DEPTH = 64  # lists and mappings inside one another
_MERGE = "tag:yaml.org,2002:merge"  # `<<: *base` merges keys; later keys override by design


def load_yaml(text: str, origin: str) -> Any:
    """The document in `text`, as `yaml.safe_load` builds it; `origin` (a file path, or
    "--set KEY") starts every error message."""
    loader = _BoundedLoader(text, origin)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that sizes each node as it is composed, before any Python object exists."""

    def __init__(self, text: str, origin: str) -> None:
        super().__init__(text)
        self.origin = origin
        self.depth = 0  # lists and mappings open around the node being composed
        self.composed = 0  # nodes composed so far (an alias adds none)

    def fail(self, node_or_event: Any, problem: str, fix: str) -> SpecError:
        line = node_or_event.start_mark.line + 1
        return SpecError(f"{self.origin} (line {line}): {problem}; {fix}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        node: Any  # a yaml Node, given a size: `expanded`
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if not hasattr(node, "expanded"):  # its anchor is still open around it
                raise self.fail(
                    event,
                    f"alias *{event.anchor} is inside the value it names",
                    "write that value out instead",
                )
            return node
        self.depth += 1
        self.composed += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                event,
                f"lists and mappings nested more than {MAX_DEPTH} deep, the limit",
                "a study file needs a few levels",
            )
        if self.composed > MAX_VALUES:
            raise self.fail(
                event,
                f"more than {MAX_VALUES} values, the limit for a study",
                "a study needs far fewer; give data as a .csv or .npz file",
            )
        node = super().compose_node(parent, index)
        self.depth -= 1
        node.expanded = 1 + sum(child.expanded for child in _children(node))
        if node.expanded > MAX_VALUES:
            raise self.fail(
                node,
                f"aliases (*name) expand this value to more than {MAX_VALUES} values, "
                "the limit for a study",
                "write the values out, or repeat anchored values (&name) far fewer times",
            )
        return node

    def compose_document(self) -> Any:
        node = super().compose_document()
        self.check_keys(node, "", set())
        return node

    def check_keys(self, node: Any, path: str, seen: set[int]) -> None:
        """Refuse a key given twice in any mapping under `node` (each node visited once)."""
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.check_keys(item, f"{path}[{i}]", seen)
            return
        first: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: the constructor refuses it
            key = self.construct_object(key_node)
            where = f"{path}.{key}" if path else str(key)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # not hashable: the constructor refuses it
                earlier = key_node
            if earlier is not key_node:
                lines = f"lines {earlier.start_mark.line + 1} and {key_node.start_mark.line + 1}"
                raise SpecError(
                    f"{self.origin}: {where}: key {key!r} appears twice ({lines}); keep one"
                )
            self.check_keys(value_node, where, seen)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []
