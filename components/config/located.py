"""Where a value is written: YAML read with the line of every key, and problems led by the
file, line and package they are about."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

__all__ = [
    "Located",
    "LocatedList",
    "line_of",
    "load_with_lines",
    "locate",
    "locate_in",
]


class Located(dict[Any, Any]):
    """A mapping read from a YAML file, knowing the line of each of its keys."""

    source: str = ""
    line: int = 0
    key_lines: dict[str, int]


class LocatedList(list[Any]):
    """A list read from a YAML file, knowing the line of each item."""

    source: str = ""
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping the line where each mapping key and list item is written."""

    source = ""


def _located_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Located:
    mapping = Located(loader.construct_mapping(node, deep=True))
    mapping.source, mapping.line = loader.source, node.start_mark.line + 1
    mapping.key_lines = {
        str(key.value): key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    return mapping


def _located_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    items = LocatedList(loader.construct_sequence(node, deep=True))
    items.source, items.line = loader.source, node.start_mark.line + 1
    items.item_lines = [item.start_mark.line + 1 for item in node.value]
    return items


_LineLoader.add_constructor("tag:yaml.org,2002:map", _located_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _located_sequence)


def load_with_lines(text: str, source: str) -> object:
    """`yaml.safe_load(text)`, its mappings and lists knowing where they are written in
    `source` (a file name), for `locate`."""
    loader = _LineLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_PACKAGE_KEY = re.compile(r"^packages\[(\d+)\]((?:\.[A-Za-z0-9_-]+|\[\d+\])*)(?=: )")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


_KEY_PATH = re.compile(r"^([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+|\[\d+\])*)(?=: )")


def line_of(document: object, path: str) -> int:
    """The line where the key or item `path` (`clusters[2].labels.site`) is written in
    `document` (as `load_with_lines` read it): the deepest part of it found; 0 when unknown."""
    line = document.line if isinstance(document, (Located, LocatedList)) else 0
    node = document
    for name, position in _PATH_PART.findall("." + path if path[:1] != "[" else path):
        if isinstance(node, Located) and name:
            line = node.key_lines.get(name, line)
            node = node.get(name)
        elif isinstance(node, LocatedList) and position and int(position) < len(node):
            line = node.item_lines[int(position)]
            node = node[int(position)]
        else:
            break
    return line


def locate_in(problems: Iterable[str], document: object) -> list[str]:
    """Each `key.path: message` problem led by the file and line of that key in `document`
    (`fleet.yaml line 12: clusters[2].labels: ...`)."""
    source = document.source if isinstance(document, (Located, LocatedList)) else ""
    located = []
    for problem in problems:
        match = _KEY_PATH.match(problem)
        line = line_of(document, match.group(1)) if match else 0
        located.append(f"{source} line {line}: {problem}" if source and line else problem)
    return located


def locate(problems: Iterable[str], sources: Sequence[object]) -> list[str]:
    """Each `packages[i]...: message` problem led by where the package is: the file and line
    of the key it is about (when read from a file) and the package's name, e.g.
    `packages.yaml line 57, package headscale: packages[4].need: unknown key ...`."""
    located = []
    for problem in problems:
        match = _PACKAGE_KEY.match(problem)
        index = int(match.group(1)) if match else -1
        if match is None or index >= len(sources):
            located.append(problem)
            continue
        entry = sources[index]
        where = []
        line = line_of(sources, f"[{index}]{match.group(2)}")
        source = sources.source if isinstance(sources, LocatedList) else ""
        if source and line:
            where.append(f"{source} line {line}")
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            where.append(f"package {name}")
        located.append(f"{', '.join(where)}: {problem}" if where else problem)
    return located
