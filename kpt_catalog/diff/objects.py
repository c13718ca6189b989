"""A package's objects as kpt sends them, and the values of its Secrets, never to be printed."""

from __future__ import annotations

import base64
import contextlib
import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from components.catalog import LoadedPackage
from components.files import read_package_files
from components.kptyaml import load_documents
from components.step.prune.rules import (
    OWNING_INVENTORY_ANNOTATION,
)

__all__ = [
    "as_kpt_sends",
    "hide",
    "package_objects",
    "secret_values",
]

_LOCAL_CONFIG = "config.kubernetes.io/local-config"


def package_objects(package: LoadedPackage) -> list[dict[str, Any]]:
    """The objects kpt would apply from the package's files, with the values kpt sends: every
    document of the files kpt reads (`components.files`), read with kpt's YAML rules
    (`components.kptyaml`), but Kptfiles, the ResourceGroup and objects annotated
    `config.kubernetes.io/local-config`. Raises ValueError naming the file when one cannot be
    read as kpt reads it."""
    read = read_package_files(package.directory)
    if read.problems:
        raise ValueError("; ".join(read.problems))
    objects = []
    for file in read.files:
        if file.relative.rpartition("/")[2] == "Kptfile":
            continue
        try:
            documents = load_documents(file.content)
        except (yaml.YAMLError, ValueError) as error:
            raise ValueError(f"{file.relative}: {error}".replace("\n", " ")) from None
        for document in documents:
            if not isinstance(document, dict) or document.get("kind") == "ResourceGroup":
                continue
            annotations = (document.get("metadata") or {}).get("annotations") or {}
            if str(annotations.get(_LOCAL_CONFIG, "")).lower() == "true":
                continue
            objects.append(document)
    return objects


def as_kpt_sends(obj: Mapping[str, Any], inventory_id: str) -> dict[str, Any]:
    """`obj` as `kpt live apply` sends it: annotated with the inventory that owns it.

    cli-utils (v0.36, the release kpt 1.0.0-beta.56 bundles: pkg/apply/applier.go,
    prepareObjects) adds `config.k8s.io/owning-inventory: <inventory id>` to every object before
    applying it. A dry run of the file as written would remove that annotation (server-side) or
    rewrite `last-applied-configuration` from what was sent (client-side packages: apimachinery's
    managedfields lastAppliedUpdater), so every applied object would show as changed."""
    sent = copy.deepcopy(dict(obj))
    metadata = sent.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        return sent
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    metadata["annotations"] = {**annotations, OWNING_INVENTORY_ANNOTATION: inventory_id}
    return sent


_SHORTEST_HIDDEN = 4


def secret_values(objects: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Every value of the Secrets among `objects`, as written (`data` base64, `stringData`
    text) and decoded, for `hide` to blank out of any line."""
    values: set[str] = set()
    for obj in objects:
        if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
            continue
        for field_name in ("data", "stringData"):
            entries = obj.get(field_name)
            if not isinstance(entries, Mapping):
                continue
            for value in entries.values():
                text = str(value)
                values.add(text)
                if field_name == "data":
                    with contextlib.suppress(ValueError):
                        values.add(base64.b64decode(text, validate=True).decode("utf-8"))
    return frozenset(v for v in values if len(v.strip()) >= _SHORTEST_HIDDEN)


def hide(line: str, hidden: Iterable[str]) -> str:
    """`line` with every value of `hidden` replaced by `***`, longest first."""
    for value in sorted(hidden, key=len, reverse=True):
        line = line.replace(value, "***")
    return line
