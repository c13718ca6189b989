"""Reading `kubectl diff`'s unified diff: every line accounted for, or an error; and what may be
said of a Secret's diff without its values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.step.prune.rules import (
    ObjectKey,
)

__all__ = [
    "LONGEST_LINE",
    "Change",
    "MalformedDiffError",
    "cut",
    "parse_unified_diff",
    "secret_summary",
]

_MASKED = re.compile(r"^([+-])\s+([-._a-zA-Z0-9]+): ['\"]?\*\*\*(?: \((before|after)\))?['\"]?$")
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


LONGEST_LINE = 400


@dataclass(frozen=True)
class Change:
    """One object that `kubectl diff` shows."""

    key: ObjectKey
    created: bool
    lines: tuple[str, ...]
    """The hunks of the unified diff (`@@ ...`, ` `, `-`, `+` lines)."""


def _diff_file_name(key: ObjectKey, api_version: str) -> str:
    """How kubectl names the object's file in its LIVE and MERGED directories
    (`InfoObject.Name` in kubectl's pkg/cmd/diff/diff.go: group.version.Kind.namespace.name)."""
    version = api_version.rpartition("/")[2]
    group = f"{key.group}." if key.group else ""
    return f"{group}{version}.{key.kind}.{key.namespace}.{key.name}"


def _key_for_file(name: str, objects: Mapping[ObjectKey, str]) -> ObjectKey | None:
    """The object a diff section is about, from its file name; None when no object sent has
    that name."""
    for key, api_version in objects.items():
        if _diff_file_name(key, api_version) == name:
            return key
    # Written without a namespace: kubectl filled in the kubeconfig's default one.
    for key, api_version in objects.items():
        head = _diff_file_name(key, api_version).partition(f".{key.kind}.")[0]
        if (
            not key.namespace
            and name.startswith(f"{head}.{key.kind}.")
            and name.endswith(f".{key.name}")
        ):
            namespace = name[len(f"{head}.{key.kind}.") : -len(f".{key.name}")]
            return ObjectKey(key.group, key.kind, namespace, key.name)
    return None


class MalformedDiffError(ValueError):
    """kubectl diff's output is not a whole unified diff of the objects sent: cut short, or not
    what `diff -u -N` writes. Nothing can be said of the objects from it."""


def parse_unified_diff(text: str, objects: Mapping[ObjectKey, str]) -> list[Change]:
    """The objects of `kubectl diff`'s output (`diff -u -N LIVE MERGED`), each with its hunks; an
    object whose LIVE side is empty (every hunk `@@ -0,0 ...`) is one the apply would create.
    `objects` maps each object sent to its apiVersion.

    Every line must belong to a section (`diff -u` headers, then hunks holding exactly the lines
    their headers count); anything else, a section without hunks or a hunk cut short, raises
    MalformedDiffError: output cut short must never read as "in sync" or "to create"."""
    changes: list[Change] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("diff ") and index + 1 < len(lines) and lines[index + 1][:4] == "--- ":
            index += 1  # the command line `diff -u -N LIVE/x MERGED/x` that kubectl prints
            continue
        if not line.startswith("--- ") or index + 1 >= len(lines):
            raise MalformedDiffError(f"line {index + 1} is not part of a diff: {cut(line)!r}")
        if not lines[index + 1].startswith("+++ "):
            raise MalformedDiffError(f"line {index + 2}: expected the +++ header of {line[4:]!r}")
        target = Path(lines[index + 1][4:].split("\t")[0]).name
        key = _key_for_file(target, objects)
        if key is None:
            raise MalformedDiffError(f"line {index + 2}: {target!r} is no object that was sent")
        index += 2
        body: list[str] = []
        created = True
        while index < len(lines) and (match := _HUNK.match(lines[index])):
            old_count = int(match.group(1) if match.group(1) is not None else 1)
            new_count = int(match.group(2) if match.group(2) is not None else 1)
            created = created and old_count == 0
            body.append(lines[index])
            index += 1
            while old_count > 0 or new_count > 0:
                if index >= len(lines):
                    raise MalformedDiffError(f"the diff of {key} is cut short inside a hunk")
                hunk_line = lines[index]
                index += 1
                if hunk_line.startswith("\\"):  # "\ No newline at end of file"
                    continue
                if not hunk_line.startswith((" ", "-", "+")) and hunk_line != "":
                    raise MalformedDiffError(
                        f"line {index}: the diff of {key} is cut short (its hunk expected "
                        f"{old_count + new_count} more line(s))"
                    )
                body.append(hunk_line)
                if not hunk_line.startswith("+"):
                    old_count -= 1
                if not hunk_line.startswith("-"):
                    new_count -= 1
            while index < len(lines) and lines[index].startswith("\\"):
                index += 1
        if not body:
            raise MalformedDiffError(f"the diff of {key} stops after its headers (cut short)")
        changes.append(Change(key, created, tuple(body)))
    return changes


def secret_summary(change: Change) -> str:
    """What may be said of a Secret's diff: which keys change, never a value (kubectl masks
    `data` only, and an annotation such as last-applied-configuration can hold the values)."""
    keys: dict[str, set[str]] = {}
    other = 0
    for line in change.lines:
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
            match = _MASKED.match(line)
            if match:
                keys.setdefault(match.group(2), set()).add(match.group(1))
            else:
                other += 1
    if change.created:
        return f"{len(keys)} key(s): {', '.join(sorted(keys)) or 'none'} (values hidden)"
    added = sorted(k for k, signs in keys.items() if signs == {"+"})
    removed = sorted(k for k, signs in keys.items() if signs == {"-"})
    changed = sorted(k for k, signs in keys.items() if signs == {"+", "-"})
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (("adds", added), ("removes", removed), ("changes", changed))
        if names
    ]
    if other:
        parts.append(f"{other} other line(s) differ")
    return "; ".join(parts or ["differs"]) + " (values hidden)"


def cut(line: str) -> str:
    return line if len(line) <= LONGEST_LINE else f"{line[:LONGEST_LINE]}... (line cut)"
