"""Reading the catalog: package digests, inventories, the kinds each package uses and provides.

Each file of a package is read exactly once: its bytes feed the digest and, for YAML files, the
parser. Problems are collected (not raised one by one) so the user sees all of them at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Inventory",
    "KindRef",
    "ManifestDocument",
    "PackageScan",
    "load_manifest",
    "package_digest",
    "scan_package",
]

# The C loader is an order of magnitude faster on multi-megabyte CRDs; fall back when absent.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_SUFFIXES = (".yaml", ".yml")
_INVENTORY_API = "kpt.dev/v1alpha1"
_INVENTORY_LABEL = "cli-utils.sigs.k8s.io/inventory-id"
_LOCAL_CONFIG = "config.kubernetes.io/local-config"


@dataclass(frozen=True)
class Inventory:
    """A package's kpt inventory: what `kpt live destroy` needs to find its objects again."""

    name: str
    namespace: str
    inventory_id: str
    source: str
    """The file it was read from, relative to the package (for messages)."""


@dataclass(frozen=True, order=True)
class KindRef:
    """An API group and kind, the unit CRDs provide and objects use."""

    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.group}/{self.kind}" if self.group else self.kind


@dataclass
class PackageScan:
    """What one read of a package directory found."""

    digest: str = ""
    """sha256 over the sorted relative paths and contents of every file of the package."""
    objects: int = 0
    """Objects kpt would apply (the inventory and local config excluded)."""
    inventories: list[Inventory] = field(default_factory=list)
    nested_packages: list[str] = field(default_factory=list)
    """Sub-directories holding a Kptfile: kpt would apply them too."""
    provides: set[KindRef] = field(default_factory=set)
    """Kinds whose CustomResourceDefinition the package holds."""
    uses: dict[KindRef, str] = field(default_factory=dict)
    """Kinds of the package's objects, each with the first file that uses it."""
    namespaces: set[str] = field(default_factory=set)
    """Namespaces the package creates."""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestDocument:
    """One object of a native manifest file."""

    body: dict[str, Any]
    kind: KindRef
    name: str


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, absolute path) of every file below root, sorted, `.git` skipped."""
    entries: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        base = Path(directory)
        entries.extend(((base / f).relative_to(root).as_posix(), base / f) for f in filenames)
    return iter(sorted(entries))


def kind_of(document: dict[str, Any]) -> KindRef:
    """The group and kind of a Kubernetes object."""
    return _kind_ref(str(document.get("apiVersion", "")), str(document.get("kind", "")))


def _kind_ref(api_version: str, kind: str) -> KindRef:
    """`apps/v1`, `Deployment` -> apps/Deployment; the core group (`v1`) is the empty group."""
    return KindRef(api_version.rpartition("/")[0], kind)


def _labels(document: dict[str, Any]) -> dict[str, Any]:
    metadata = document.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return labels if isinstance(labels, dict) else {}


def _read_inventory(document: dict[str, Any], source: str, kptfile: bool) -> Inventory | None:
    if kptfile:
        block = document.get("inventory")
        if not isinstance(block, dict):
            return None
        return Inventory(
            str(block.get("name", "")),
            str(block.get("namespace", "")),
            str(block.get("inventoryID", "")),
            f"{source} (inventory:)",
        )
    if document.get("kind") != "ResourceGroup" or document.get("apiVersion") != _INVENTORY_API:
        return None
    metadata = document.get("metadata") or {}
    return Inventory(
        str(metadata.get("name", "")),
        str(metadata.get("namespace", "")),
        str(_labels(document).get(_INVENTORY_LABEL, "")),
        source,
    )


def _note_object(scan: PackageScan, document: dict[str, Any], relative: str) -> None:
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict) and str(annotations.get(_LOCAL_CONFIG)) == "true":
        return
    kind = kind_of(document)
    scan.objects += 1
    if kind.kind == "CustomResourceDefinition":
        spec = document.get("spec") or {}
        names = spec.get("names") or {}
        scan.provides.add(KindRef(str(spec.get("group", "")), str(names.get("kind", ""))))
    if kind.kind == "Namespace" and isinstance(metadata, dict):
        scan.namespaces.add(str(metadata.get("name", "")))
    scan.uses.setdefault(kind, relative)


def scan_package(root: Path) -> PackageScan:
    """Digest and read the package at `root` (which must be a directory).

    Each file is read once: its bytes feed the digest and the object scan. The scan reads only
    what the checks need (group, kind, CRD identity, namespaces, inventories), so a multi-megabyte
    CRD costs a regex pass and a few hundred parser events, not a full YAML load.
    """
    scan = PackageScan()
    digest = hashlib.sha256()
    for relative, path in _walk(root):
        content = path.read_bytes()
        _feed(digest, relative, content)
        base = relative.rpartition("/")[2]
        if base == "Kptfile" and "/" in relative:
            scan.nested_packages.append(relative.rpartition("/")[0])
        if base == "Kptfile":
            _scan_kptfile(scan, relative, content, at_root="/" not in relative)
        elif base.endswith(_YAML_SUFFIXES):
            _scan_yaml(scan, relative, content)
    scan.digest = digest.hexdigest()
    return scan


def package_digest(root: Path) -> str:
    """The digest `scan_package` computes, without the object scan (for the benchmark)."""
    digest = hashlib.sha256()
    for relative, path in _walk(root):
        _feed(digest, relative, path.read_bytes())
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, relative: str, content: bytes) -> None:
    name = relative.encode()
    # Length-prefixed, so no two different packages can feed the same byte stream.
    digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
    digest.update(content)


def _scan_kptfile(scan: PackageScan, relative: str, content: bytes, *, at_root: bool) -> None:
    try:
        document = yaml.load(content, Loader=_Loader)  # noqa: S506  (a safe loader, see _Loader)
    except yaml.YAMLError as error:
        scan.problems.append(f"{relative}: not valid YAML: {error}".replace("\n", " "))
        return
    if isinstance(document, dict) and at_root:
        inventory = _read_inventory(document, relative, kptfile=True)
        if inventory is not None:
            scan.inventories.append(inventory)


# Document separators, and the top-level (column 0) apiVersion and kind of a block-style object.
_SEPARATOR = re.compile(rb"^---[ \t]*(?:#.*)?$", re.MULTILINE)
_TOP_KEYS = re.compile(rb"^(apiVersion|kind):[ \t]*[\"']?([^\s\"'#]+)", re.MULTILINE)
_HEAD_BYTES = 4096
# Objects whose body the checks read; every other object only needs its group and kind.
_READ_WHOLE = frozenset({"Namespace", "ResourceGroup"})


def _scan_yaml(scan: PackageScan, relative: str, content: bytes) -> None:
    chunks = _SEPARATOR.split(content) if b"---" in content else [content]
    for chunk in chunks:
        top = _top_keys(chunk)
        kind, api_version = top.get("kind"), top.get("apiVersion")
        if kind and api_version and kind not in _READ_WHOLE and _LOCAL_CONFIG.encode() not in chunk:
            ref = _kind_ref(api_version, kind)
            if kind == "CustomResourceDefinition":
                provided = _crd_kind(chunk)
                if provided is None:  # unusual layout: fall back to a full load
                    _scan_document(scan, relative, chunk)
                    continue
                scan.provides.add(provided)
            scan.objects += 1
            scan.uses.setdefault(ref, relative)
        elif chunk.strip():
            _scan_document(scan, relative, chunk)


def _top_keys(chunk: bytes) -> dict[str, str]:
    """The top-level apiVersion and kind of a document; they nearly always open it, so look at
    its head first and read the whole document only when they are not there."""
    for text in (chunk[:_HEAD_BYTES], chunk) if len(chunk) > _HEAD_BYTES else (chunk,):
        top = {key.decode(): value.decode() for key, value in _TOP_KEYS.findall(text)}
        if len(top) == 2:
            break
    return top


def _scan_document(scan: PackageScan, relative: str, chunk: bytes) -> None:
    try:
        document = yaml.load(chunk, Loader=_Loader)  # noqa: S506  (a safe loader, see _Loader)
    except yaml.YAMLError as error:
        scan.problems.append(f"{relative}: not valid YAML: {error}".replace("\n", " "))
        return
    if not isinstance(document, dict):
        return
    inventory = _read_inventory(document, relative, kptfile=False)
    if inventory is not None:
        if "/" not in relative:
            scan.inventories.append(inventory)
    elif document.get("kind") != "ResourceGroup":
        _note_object(scan, document, relative)


def _crd_kind(chunk: bytes) -> KindRef | None:
    """`spec.group` and `spec.names.kind` of a CRD, from parser events, stopping as soon as both
    are known (they precede the large schema in generated CRDs)."""
    keys: list[str | None] = []  # per open mapping or sequence: the current key (None in a list)
    wants_key: list[bool] = []  # per open container: is the next scalar a mapping key?
    found: dict[tuple[str | None, ...], str] = {}
    for event in yaml.parse(chunk, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            keys.append(None)
            wants_key.append(isinstance(event, yaml.MappingStartEvent))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            keys.pop()
            wants_key.pop()
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and keys:
            if wants_key[-1]:
                keys[-1] = getattr(event, "value", None)
                wants_key[-1] = False
                continue
            found.setdefault(tuple(keys), str(getattr(event, "value", "")))
        else:
            continue
        # A value (scalar or container) just ended: its parent mapping expects a key next.
        if keys and keys[-1] is not None:
            wants_key[-1] = True
        group, kind = found.get(("spec", "group")), found.get(("spec", "names", "kind"))
        if group and kind:
            return KindRef(group, kind)
    return None


def load_manifest(path: Path, label: str) -> tuple[list[ManifestDocument], list[str]]:
    """The objects of a native manifest file, and the problems found (named by `label`)."""
    try:
        raw = list(yaml.load_all(path.read_bytes(), Loader=_Loader))
    except OSError as error:
        return [], [f"{label}: cannot read {path}: {error.strerror}"]
    except yaml.YAMLError as error:
        return [], [f"{label}: {path} is not valid YAML: {error}".replace("\n", " ")]
    documents: list[ManifestDocument] = []
    problems: list[str] = []
    for index, body in enumerate(d for d in raw if d is not None):
        where = f"{label}: {path} document {index + 1}"
        if not isinstance(body, dict):
            problems.append(f"{where}: expected a Kubernetes object, found {type(body).__name__}")
            continue
        metadata = body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        missing = [
            key
            for key, value in (("apiVersion", body.get("apiVersion")), ("kind", body.get("kind")))
            if not isinstance(value, str) or not value
        ]
        if not isinstance(name, str) or not name:
            missing.append("metadata.name")
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        documents.append(ManifestDocument(body, kind_of(body), str(name)))
    if not raw or not any(d is not None for d in raw):
        problems.append(f"{label}: {path} holds no Kubernetes object")
    return documents, problems
