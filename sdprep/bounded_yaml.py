"""YAML from a client or a disk, parsed with bounds: no alias bomb, no nesting deep enough to recurse away.

PyYAML's safe loader shares an anchored value between its aliases, so a 500-byte file whose aliases refer to
aliases nine levels deep loads at once, into a value of billions of items once walked (repr, a copy, a check of
every item). Here the composer counts, for every alias, how many values it stands for once expanded, and gives up
beyond ALIAS_BUDGET; it also gives up beyond MAX_DEPTH levels of nesting. Both happen while composing, before any
Python value exists. A config is a few dozen values three levels deep, so both bounds are far from real files.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

ALIAS_BUDGET = 10_000  # values aliases may stand for, together (a config written by hand repeats a few)
MAX_DEPTH = 32  # levels of nesting (a config has three or four)


class NotAConfig(ValueError):
    """YAML past the bounds above: `reason` says which one ("aliases" or "depth"), `limit` the bound."""

    def __init__(self, reason: Literal["aliases", "depth"], limit: int) -> None:
        super().__init__(f"{reason} beyond {limit}")
        self.reason: Literal["aliases", "depth"] = reason
        self.limit = limit


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values it holds once every alias in it is expanded

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise NotAConfig("depth", MAX_DEPTH)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        size = self._sizes.get(id(node))
        if size is None:
            if alias:  # an alias of the value it is inside: a loop, which no config holds
                raise NotAConfig("aliases", ALIAS_BUDGET)
            size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            self._sizes[id(node)] = size
        if alias:
            self._expanded += size
            if self._expanded > ALIAS_BUDGET:
                raise NotAConfig("aliases", ALIAS_BUDGET)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str) -> Any:
    """The value of one YAML document, within the bounds; NotAConfig past them, yaml.YAMLError when not YAML.

    An integer too long for Python's int() (over 4300 digits) comes out as yaml.YAMLError too, not ValueError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except NotAConfig:
        raise
    except ValueError as problem:  # int("1" * 5000), a date like 2024-99-99: not YAML a config could hold
        raise yaml.YAMLError(str(problem).splitlines()[0] if str(problem) else type(problem).__name__) from None
    finally:
        loader.dispose()


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value (JSON has no aliases, only nesting) nests at most `limit` levels; walked without
    recursion, so a value nested thousands of levels deep is an answer, not a RecursionError."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return True
