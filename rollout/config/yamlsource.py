"""A YAML document read together with its source, so that an error can name the line and the text written.

PyYAML reads YAML 1.1: an unquoted yes, no, on or off is a boolean, 0755 is the octal number 493
and 1:30 is the base-60 number 90. `pitfall` and `hint` say so in plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import yaml

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_OCTAL = re.compile(r"[-+]?0[0-7_]+")


@dataclass(frozen=True)
class Source:
    """The node tree behind a loaded document."""

    root: Optional[yaml.Node]

    def node(self, path: tuple) -> Optional[yaml.Node]:
        """The node at `path` (keys and list indices), or the deepest one found on the way."""
        node = self.root
        for part in path:
            if isinstance(node, yaml.MappingNode):
                found = next((v for k, v in reversed(node.value) if _same_key(k, part)), None)  # YAML keeps the last
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                found = node.value[part]
            else:
                found = None
            if found is None:
                return node
            node = found
        return node

    def key(self, path: tuple, value) -> Optional[yaml.Node]:
        """The node of the key that YAML read as `value` in the mapping at `path` (None if not found)."""
        mapping = self.node(path)
        if not isinstance(mapping, yaml.MappingNode):
            return None
        return next((k for k, _ in reversed(mapping.value) if _same_key(k, value)), None)

    def line(self, path: tuple) -> Optional[int]:
        """The 1-based line of the value at `path` (or of the nearest enclosing one)."""
        node = self.node(path)
        return node.start_mark.line + 1 if node is not None else None

    def duplicate_keys(self) -> Iterator[tuple[tuple, int, int]]:
        """(path, line, first line) of every key given twice in one mapping (YAML keeps the last silently)."""
        def walk(node, path):
            if isinstance(node, yaml.MappingNode):
                seen: dict[str, int] = {}
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode):
                        if k.value in seen:
                            yield (*path, k.value), k.start_mark.line + 1, seen[k.value]
                        seen.setdefault(k.value, k.start_mark.line + 1)
                    yield from walk(v, (*path, getattr(k, "value", "?")))
            elif isinstance(node, yaml.SequenceNode):
                for i, v in enumerate(node.value):
                    yield from walk(v, (*path, i))

        yield from walk(self.root, ())

    def scalars(self) -> Iterator[tuple[tuple, yaml.ScalarNode]]:
        """Every scalar value with its path (keys as written)."""
        def walk(node, path):
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    yield from walk(v, (*path, k.value))
            elif isinstance(node, yaml.SequenceNode):
                for i, v in enumerate(node.value):
                    yield from walk(v, (*path, i))
            elif isinstance(node, yaml.ScalarNode):
                yield path, node

        yield from walk(self.root, ())


def read(text: str) -> tuple[Any, Source]:
    """The document's data (as yaml.safe_load gives it) and its Source; yaml.YAMLError if it is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return data, Source(root)


def pitfall(node: yaml.Node) -> Optional[str]:
    """What is wrong with a number YAML 1.1 reads in a way nobody means (0755, 1:30); None if nothing."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    text = node.value
    if node.tag == _INT and _OCTAL.fullmatch(text):
        value = int(text.replace("_", ""), 8)
        return (f"{text} is read by YAML 1.1 as the octal number {value}; write {int(text.replace('_', ''))} for the decimal"
                f' number, or "{text}" in quotes for text')
    if node.tag in (_INT, _FLOAT) and ":" in text:
        value = yaml.safe_load(text)
        return f'{text} is read by YAML 1.1 as the base-60 number {value}; write the number you mean, or "{text}" in quotes for text'
    return None


def hint(node: Optional[yaml.Node]) -> str:
    """Why YAML gave something other than a string here, and how to write it ('' if the text was quoted)."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return ""
    text = node.value
    if node.tag == _BOOL:
        return f'YAML 1.1 reads an unquoted {text} as a boolean; write "{text}" in quotes'
    if node.tag == _NULL:
        return "the value is empty; give one, or remove the key"
    if node.tag in (_INT, _FLOAT):
        return f'YAML reads an unquoted {text} as a number; write "{text}" in quotes'
    return ""


def _same_key(key: yaml.Node, part) -> bool:
    if not isinstance(key, yaml.ScalarNode):
        return False
    if isinstance(part, bool):
        return key.tag == _BOOL and yaml.safe_load(key.value) is part
    return key.value == str(part)
