"""Safe YAML loading for user files (suites, edge profiles) that rejects repeated mapping keys.

`yaml.safe_load` keeps the last of two equal keys silently (two `measure:` blocks: the first is lost).
`safe_load_unique` is `yaml.safe_load` (same tags, nothing arbitrary) except that a key repeated in
any mapping, block or flow, at any depth, is a one-line BenchError naming the file, key and lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bench.common.errors import BenchError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(key, first_line, second_line)
        self.key, self.first_line, self.second_line = key, first_line, second_line


class UniqueKeySafeLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings refuse a key given twice (`<<` merge keys may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # merged keys may be overridden by explicit ones: that is what << is for
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeConstructor reports unhashable keys itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: `5e-5`, `1E3` (no dot). A suite's
# `lr: 5e-5` is a number, as a reader expects; with strict types a string would be refused.
YAML12_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
UniqueKeySafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", YAML12_EXPONENT_FLOAT, list("-+0123456789"))


def _is_cyclic(data: Any) -> bool:
    """Whether a mapping or list contains itself (`a: &x {b: *x}`), walked without recursion."""
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if not isinstance(node, (dict, list)):
            continue
        if id(node) in on_path:
            return True
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))
    return False


def safe_load_unique(text: str, file: str | Path) -> Any:
    """`yaml.safe_load(text)`, but a repeated mapping key raises BenchError, and so do nesting past the
    interpreter's recursion limit and an alias that makes a mapping or list contain itself (nothing in a
    suite or profile can be infinite); other YAML errors propagate."""
    try:
        data = yaml.load(text, Loader=UniqueKeySafeLoader)  # a SafeLoader subclass: safe tags only
    except _DuplicateKey as dup:
        raise BenchError(f"{file}: duplicate key {dup.key!r} "
                         f"(lines {dup.first_line} and {dup.second_line})") from None
    except RecursionError:
        raise BenchError(f"{file}: invalid YAML: nested too deeply") from None
    if _is_cyclic(data):
        raise BenchError(f"{file}: invalid YAML: an alias (*name) refers to a mapping or list that contains it")
    return data
