"""Reading the catalog: package digests, inventories, the kinds each package uses and provides.

Each file of a package is read exactly once: its bytes feed the digest and, for YAML files, the
parser. Problems are collected (not raised one by one) so the user sees all of them at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.files import read_file, read_package_files, unsafe_yaml
from components.kptyaml import KptYamlError, load_documents

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


@dataclass(frozen=True, order=True)
class ObjectId:
    """What identifies an object in the cluster: group, kind, namespace (as written) and name."""

    kind: KindRef
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}"


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
    identities: dict[ObjectId, str] = field(default_factory=dict)
    """Every object kpt would apply, each with the file it is in."""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestDocument:
    """One object of a native manifest file."""

    body: dict[str, Any]
    kind: KindRef
    name: str

    @property
    def identity(self) -> ObjectId:
        """The object's identity, as `PackageScan.identities` holds them."""
        metadata = self.body.get("metadata")
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        return ObjectId(self.kind, namespace if isinstance(namespace, str) else "", self.name)


def kind_of(document: dict[str, Any]) -> KindRef:
    """The group and kind of a Kubernetes object."""
    return _kind_ref(str(document.get("apiVersion", "")), str(document.get("kind", "")))


def _kind_ref(api_version: str, kind: str) -> KindRef:
    """`apps/v1`, `Deployment` -> apps/Deployment; the core group (`v1`) is the empty group."""
    return KindRef(api_version.rpartition("/")[0], kind)


def _text_of(node: yaml.Node | None) -> str | None:
    """A scalar's text exactly as written (as kpt reads it), "" for an absent or null value,
    None for a value that is not a scalar."""
    if node is None:
        return ""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.style is None and node.value in ("", "~", "null", "Null", "NULL"):
        return ""
    return str(node.value)


def _child(node: yaml.Node | None, *path: str) -> yaml.Node | None:
    """The node at `path` below a mapping node, None when any step is missing."""
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None
        )
    return node


def _read_inventory(chunk: bytes, source: str, *, kptfile: bool) -> Inventory | str | None:
    """The inventory a Kptfile or ResourceGroup document declares, its values as the text kpt
    reads (PyYAML would read `inventory-id: 0123` as 83 and `yes` as True); a problem when a
    value is not a plain string; None when the document declares no inventory."""
    root = yaml.compose(chunk, Loader=yaml.SafeLoader)
    if kptfile:
        block = _child(root, "inventory")
        if block is None:
            return None
        where = f"{source} (inventory:)"
        fields = (
            ("name", ("name",)),
            ("namespace", ("namespace",)),
            ("inventory-id", ("inventoryID",)),
        )
        nodes = {label: _child(block, *path) for label, path in fields}
    else:
        if _text_of(_child(root, "kind")) != "ResourceGroup":
            return None
        if _text_of(_child(root, "apiVersion")) != _INVENTORY_API:
            return None
        where = source
        labels = _child(root, "metadata", "labels")
        nodes = {
            "name": _child(root, "metadata", "name"),
            "namespace": _child(root, "metadata", "namespace"),
            "inventory-id": _child(labels, _INVENTORY_LABEL) if labels is not None else None,
        }
    texts = {label: _text_of(node) for label, node in nodes.items()}
    wrong = [label for label, text in texts.items() if text is None]
    if wrong:
        return (
            f"{where}: the inventory's {', '.join(wrong)} must be a plain string "
            '(quote it: "..."), as kpt reads it'
        )
    return Inventory(
        texts["name"] or "", texts["namespace"] or "", texts["inventory-id"] or "", where
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
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if kind.kind == "Namespace" and isinstance(name, str):
        scan.namespaces.add(name)
    scan.uses.setdefault(kind, relative)
    if isinstance(name, str):
        identity = ObjectId(kind, namespace if isinstance(namespace, str) else "", name)
        scan.identities.setdefault(identity, relative)


def scan_package(root: Path) -> PackageScan:
    """Digest and read the package at `root` (which must be a directory).

    Reads exactly the files kpt reads (`components.files`), each once: its bytes feed the digest
    and the object scan. The scan reads only what the checks need (group, kind, name, namespace,
    CRD identity, inventories), so a multi-megabyte CRD costs a regex pass and the parser events
    up to its `spec.names`, not a full YAML load.
    """
    scan = PackageScan()
    digest = hashlib.sha256()
    read = read_package_files(root)
    scan.problems.extend(read.problems)
    for file in read.files:
        _feed(digest, file.relative, file.content)
        problem = unsafe_yaml(file.content)
        if problem is not None:
            scan.problems.append(f"{file.relative}: {problem}")
            continue
        base = file.relative.rpartition("/")[2]
        if base == "Kptfile" and "/" in file.relative:
            scan.nested_packages.append(file.relative.rpartition("/")[0])
        if base == "Kptfile":
            _scan_kptfile(scan, file.relative, file.content, at_root="/" not in file.relative)
        else:
            _scan_yaml(scan, file.relative, file.content)
    scan.digest = digest.hexdigest()
    return scan


def package_digest(root: Path) -> str:
    """The digest `scan_package` computes, without the object scan (for the benchmark)."""
    digest = hashlib.sha256()
    for file in read_package_files(root).files:
        _feed(digest, file.relative, file.content)
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, relative: str, content: bytes) -> None:
    name = relative.encode()
    # Length-prefixed, so no two different packages can feed the same byte stream.
    digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
    digest.update(content)


def _scan_kptfile(scan: PackageScan, relative: str, content: bytes, *, at_root: bool) -> None:
    try:
        yaml.load(content, Loader=_Loader)  # noqa: S506  (a safe loader, see _Loader)
        inventory = _read_inventory(content, relative, kptfile=True) if at_root else None
    except yaml.YAMLError as error:
        scan.problems.append(f"{relative}: not valid YAML: {error}".replace("\n", " "))
        return
    if isinstance(inventory, str):
        scan.problems.append(inventory)
    elif inventory is not None:
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
            fields = _fields(chunk, crd=kind == "CustomResourceDefinition")
            if fields is None:  # unusual layout: fall back to a full load
                _scan_document(scan, relative, chunk)
                continue
            ref = _kind_ref(api_version, kind)
            if kind == "CustomResourceDefinition":
                scan.provides.add(KindRef(fields[("spec", "group")], fields[_CRD_KIND]))
            scan.objects += 1
            scan.uses.setdefault(ref, relative)
            name = fields.get(("metadata", "name"))
            if name:
                namespace = fields.get(("metadata", "namespace"), "")
                scan.identities.setdefault(ObjectId(ref, namespace, name), relative)
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
        documents = load_documents(chunk)
    except yaml.YAMLError as error:
        scan.problems.append(f"{relative}: not valid YAML: {error}".replace("\n", " "))
        return
    except KptYamlError as error:
        scan.problems.append(f"{relative}: {error}")
        return
    document = documents[0] if documents else None
    if not isinstance(document, dict):
        return
    is_group = document.get("kind") == "ResourceGroup"
    inventory = _read_inventory(chunk, relative, kptfile=False) if is_group else None
    if isinstance(inventory, str):
        scan.problems.append(inventory)
    elif inventory is not None:
        if "/" not in relative:
            scan.inventories.append(inventory)
    elif document.get("kind") != "ResourceGroup":
        _note_object(scan, document, relative)


_CRD_KIND = ("spec", "names", "kind")


def _fields(chunk: bytes, *, crd: bool) -> dict[tuple[str | None, ...], str] | None:
    """`metadata.name` and `metadata.namespace` (and for a CRD `spec.group` and
    `spec.names.kind`) from parser events, stopping as soon as they are known: once `metadata`
    has closed, and for a CRD once its kind is known (both precede the large schema in generated
    CRDs). None when a CRD's identity is not found this way."""
    keys: list[str | None] = []  # per open mapping or sequence: the current key (None in a list)
    wants_key: list[bool] = []  # per open container: is the next scalar a mapping key?
    found: dict[tuple[str | None, ...], str] = {}
    metadata_done = False
    for event in yaml.parse(chunk, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            keys.append(None)
            wants_key.append(isinstance(event, yaml.MappingStartEvent))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            keys.pop()
            wants_key.pop()
            metadata_done = metadata_done or keys == ["metadata"]
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and keys:
            if wants_key[-1]:
                keys[-1] = getattr(event, "value", None)
                wants_key[-1] = False
                continue
            found.setdefault(tuple(keys), str(getattr(event, "value", "")))
            metadata_done = metadata_done or keys == ["metadata"]
        else:
            continue
        # A value (scalar or container) just ended: its parent mapping expects a key next.
        if keys and keys[-1] is not None:
            wants_key[-1] = True
        crd_known = not crd or (("spec", "group") in found and _CRD_KIND in found)
        if metadata_done and crd_known:
            return found
    return found if not crd or (("spec", "group") in found and _CRD_KIND in found) else None


# Kinds whose objects carry credentials: their data would sit in Pulumi state as plain text.
CREDENTIAL_KINDS = frozenset({KindRef("", "Secret")})
CREDENTIALS_FIX = (
    "a native manifest's objects are stored in Pulumi state in plain text, and credentials must "
    "not be: declare it under the package's `secrets` (its values then come from Pulumi secret "
    "config)"
)


def load_manifest(path: Path, label: str) -> tuple[list[ManifestDocument], list[str]]:
    """The objects of a native manifest file, and the problems found (named by `label`)."""
    content, problem = read_file(path, f"{label}: {path}")
    if content is None:
        return [], [problem or f"{label}: cannot read {path}"]
    unsafe = unsafe_yaml(content)
    if unsafe is not None:
        return [], [f"{label}: {path} {unsafe}"]
    try:
        raw = list(yaml.load_all(content, Loader=_Loader))
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
        if kind_of(body) in CREDENTIAL_KINDS:
            problems.append(
                f"{where}: {body['kind']} {name!r} carries credentials; {CREDENTIALS_FIX}"
            )
            continue
        documents.append(ManifestDocument(body, kind_of(body), str(name)))
    if not raw or not any(d is not None for d in raw):
        problems.append(f"{label}: {path} holds no Kubernetes object")
    return documents, problems
