"""`make diff`: what `make up` would do to each package's objects, from the cluster's own dry run.

For every package, in deploy order (all checked at once, up to JOBS, under one bound TIMEOUT):
- objects that would change, with a unified diff of their fields: `kubectl diff --server-side`
  on the package's objects (the Kptfile, the ResourceGroup and local-config objects left out);
- objects that would be created;
- objects kpt would prune: listed in the cluster's inventory (the ResourceGroup's
  `spec.resources`) but no longer in the files, minus those kpt keeps (`components.step_prune`).
Secret values are never printed: for a Secret only the keys whose values change are named.

Exit status, like `terraform plan -detailed-exitcode`: 0 everything in sync, 1 differences,
2 an error (configuration, an unreachable cluster, a failed kubectl).

`--after-preview FILE` reads `pulumi preview --json` (from `make preview`) and diffs only the
packages that preview creates or updates (all of them with `--drift`); differences then exit 0.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.catalog import BUILTIN_GROUPS, Catalog, LoadedPackage, kind_providers, kind_source
from components.config import ConfigError
from components.files import read_package_files
from components.kptyaml import load_documents
from components.scan import KindRef, scan_package
from components.step import contract as kptstep_env
from components.step_prune import (
    OWNING_INVENTORY_ANNOTATION,
    ObjectKey,
    PruneInputError,
    PrunePlan,
    inventory_objects,
    kept_because,
    plan_prune,
    prune_candidates,
)
from tools import clusterops

__all__ = [
    "EXIT_DIFFERENCES",
    "EXIT_ERROR",
    "EXIT_IN_SYNC",
    "PACKAGE_TYPE",
    "Change",
    "Native",
    "PackageDiff",
    "Prerequisites",
    "diff_package",
    "main",
    "package_objects",
    "packages_in_preview",
    "parse_unified_diff",
    "preview_digest",
]

EXIT_IN_SYNC = 0
EXIT_DIFFERENCES = 1
EXIT_ERROR = 2

_LOCAL_CONFIG = "config.kubernetes.io/local-config"
# kpt's field manager for server-side apply (kpt live apply --help: "Default value is kubectl").
_KPT_FIELD_MANAGER = "kubectl"
# KptPackage's type token (components/kpt_package.py; a test keeps the two equal): importing that
# module would load the Pulumi SDK, a third of a second, for one string.
PACKAGE_TYPE = "kpt-catalog:index:KptPackage"
# Preview steps that change a package's objects (pulumi pkg/display/json.go, PreviewStep.Op).
_CHANGING_OPS = frozenset({"create", "update", "replace", "create-replacement"})
# A value kubectl's Secret masker wrote: `***`, `*** (before)`, `*** (after)`.
_MASKED = re.compile(r"^([+-])\s+([-._a-zA-Z0-9]+): ['\"]?\*\*\*(?: \((before|after)\))?['\"]?$")
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_NO_MATCH = re.compile(r'no matches for kind "([^"]+)" in version "([^"]+)"')
_NO_NAMESPACE = re.compile(r'namespaces "([^"]+)" not found')
_LONGEST_LINE = 400
# What a deleted package's inventory Command keeps in its environment (components/environment.py)
_REMOVAL_KEYS = (
    kptstep_env.ENV_PACKAGE,
    kptstep_env.ENV_INVENTORY_NAME,
    kptstep_env.ENV_INVENTORY_NAMESPACE,
    kptstep_env.ENV_INVENTORY_ID,
    kptstep_env.ENV_KUBECONFIG,
    kptstep_env.ENV_CONTEXT,
)
# Objects named in one `kubectl get`: a few tens of kilobytes of arguments at most, far below any
# system's limit (Linux: 2 MiB in all, 128 KiB per argument).
_NAMES_PER_GET = 200


@dataclass(frozen=True)
class Change:
    """One object that `kubectl diff` shows."""

    key: ObjectKey
    created: bool
    lines: tuple[str, ...]
    """The hunks of the unified diff (`@@ ...`, ` `, `-`, `+` lines)."""


@dataclass(frozen=True)
class Native:
    """A native object `make up` would create or change."""

    key: ObjectKey
    created: bool
    summary: str = ""
    """Why it is created, or which keys of a Secret change (values hidden)."""
    lines: tuple[str, ...] = ()
    """A manifest object's change: the hunks of its server-side dry run."""


@dataclass
class PackageDiff:
    """What `make diff` found for one package."""

    changes: list[Change] = field(default_factory=list)
    deferred: list[tuple[ObjectKey, str]] = field(default_factory=list)
    """Created after a CRD or Namespace that the package, a package it needs, a wait or the
    cluster provides, each with which: the server cannot dry-run them before that exists."""
    prune: PrunePlan = field(default_factory=PrunePlan)
    deployed: bool = True
    """The cluster holds the package's inventory."""
    error: str = ""
    details: list[str] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()
    """The values of the package's Secrets: never printed, whatever line quotes them."""
    native: list[Native] = field(default_factory=list)
    """The package's native objects (its manifests' objects, its declared Secrets) that
    `make up` would create or change."""
    conflicts: list[tuple[ObjectKey, str, str]] = field(default_factory=list)
    """Native objects whose fields another field manager set to other values, each with the
    provider's field manager and the conflict: the provider never forces a manifest's object,
    so the next update of it fails on the conflict."""

    @property
    def differences(self) -> int:
        prune = self.prune
        return (
            len(self.native)
            + len(self.conflicts)
            + len(self.changes)
            + len(self.deferred)
            + len(prune.prune)
            + len(prune.blocked)
            + len(prune.refused)
        )


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
            raise MalformedDiffError(f"line {index + 1} is not part of a diff: {_cut(line)!r}")
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


def _kubectl_environment() -> dict[str, str]:
    # KUBECTL_EXTERNAL_DIFF would replace `diff -u -N` with the user's program (kubectl's
    # DiffProgram.getCommand), whose output could not be read here.
    return {k: v for k, v in os.environ.items() if k != "KUBECTL_EXTERNAL_DIFF"}


def _cluster_scoped_kinds(objects: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (group, kind) of every CRD among `objects` whose objects have no namespace."""
    scoped = set()
    for obj in objects:
        spec = obj.get("spec")
        if obj.get("kind") == "CustomResourceDefinition" and isinstance(spec, Mapping):
            names = spec.get("names")
            if spec.get("scope") == "Cluster" and isinstance(names, Mapping):
                scoped.add((str(spec.get("group", "")), str(names.get("kind", ""))))
    return scoped


def _read_inventory(
    cluster: clusterops.Cluster,
    name: str,
    namespace: str,
    deadline: float,
    cluster_scoped: Iterable[tuple[str, str]] = (),
) -> tuple[list[ObjectKey] | None, str, list[str]]:
    """The objects the inventory (ResourceGroup) `namespace/name` lists in the cluster, or None
    when the cluster has none; an error ("killed" at the deadline) and its details."""
    argv = ["kubectl", *cluster.flags(), "get", "resourcegroups.kpt.dev", name]
    ran = clusterops.run_bounded([*argv, "-n", namespace, "-o", "json"], deadline=deadline)
    if ran.killed:
        return None, "killed", []
    if ran.returncode != 0:
        reason = " ".join(ran.last_lines(3))
        # No ResourceGroup, or no ResourceGroup CRD (kpt installs it on the first apply).
        if "(NotFound)" in reason or "doesn't have a resource type" in reason:
            return None, "", []
        return None, "kubectl get resourcegroups.kpt.dev failed", ran.last_lines()
    try:
        document = json.loads(ran.stdout)
        return inventory_objects(document, cluster_scoped), "", []
    except (ValueError, PruneInputError) as error:
        return None, f"the ResourceGroup {namespace}/{name}: {error}", []


def _live_objects(
    candidates: Iterable[ObjectKey], cluster: clusterops.Cluster, deadline: float
) -> tuple[dict[ObjectKey, Mapping[str, Any]], str, list[str]]:
    """The prune candidates that still exist, one `kubectl get` per namespace and at most
    `_NAMES_PER_GET` objects, so that a large inventory never exceeds the system's limit on a
    command's arguments."""
    by_namespace: dict[str, list[ObjectKey]] = {}
    for key in candidates:
        by_namespace.setdefault(key.namespace, []).append(key)
    batches = [
        (namespace, keys[start : start + _NAMES_PER_GET])
        for namespace, keys in sorted(by_namespace.items())
        for start in range(0, len(keys), _NAMES_PER_GET)
    ]
    found: dict[ObjectKey, Mapping[str, Any]] = {}
    for namespace, keys in batches:
        argv = [
            "kubectl",
            *cluster.flags(),
            "get",
            *(key.kubectl_resource for key in keys),
            *(["-n", namespace] if namespace else []),
            "-o",
            "json",
            "--ignore-not-found",
        ]
        ran = clusterops.run_bounded(argv, deadline=deadline)
        if ran.killed:
            return found, "killed", []
        if ran.returncode != 0:
            return found, "kubectl get (objects to prune) failed", ran.last_lines()
        if not ran.stdout.strip():
            continue
        document = json.loads(ran.stdout)
        items = document.get("items", []) if document.get("kind") == "List" else [document]
        for item in items:
            found[ObjectKey.of(item)] = item
    return found, "", []


@dataclass(frozen=True)
class Prerequisites:
    """What the catalog creates or waits for before a package's apply: the CRDs and Namespaces
    without which the server cannot dry-run some of its objects on a cluster that lacks them."""

    catalog: Catalog
    providers: Mapping[KindRef, Sequence[str]]
    """The packages whose files hold each kind's CRD."""
    namespaces: Mapping[str, frozenset[str]]
    """The Namespaces each package's files or manifests create."""

    @classmethod
    def of(cls, catalog: Catalog) -> Prerequisites:
        scans = {p.spec.name: scan_package(p.directory) for p in catalog.packages}
        namespace = KindRef("", "Namespace")
        namespaces = {
            package.spec.name: frozenset(
                scans[package.spec.name].namespaces
                | {d.name for _, docs in package.manifests for d in docs if d.kind == namespace}
            )
            for package in catalog.packages
        }
        return cls(catalog, kind_providers(scans), namespaces)

    def kind_reason(self, package: LoadedPackage, group: str, kind: str) -> str:
        """Why an object of the kind is created only after its CRD; "" when nothing the catalog
        deploys provides it (the same sources `make up` accepts: components.catalog)."""
        if group in BUILTIN_GROUPS:  # the API server's own: a wrong version, not a missing CRD
            return ""
        catalog = self.catalog
        source = kind_source(
            KindRef(group, kind),
            package.spec,
            catalog.graph,
            self.providers,
            catalog.config.cluster_provided_kinds,
        )
        if source is None:
            return ""
        if source.waited:
            return f"after its CRD (waited for by {source.package})"
        if not source.package:
            return "after its CRD (listed in clusterProvidedKinds)"
        if source.package == package.spec.name:
            return "after its CustomResourceDefinition, created by this package"
        return f"after its CRD (from package {source.package})"

    def namespace_reason(self, package: LoadedPackage, namespace: str) -> str:
        """Why objects in the namespace are created only after it; "" when neither the package
        nor a package it needs (directly or not) creates it."""
        if namespace in self.namespaces[package.spec.name]:
            return "after its Namespace, created by this package"
        graph = self.catalog.graph
        needed = graph.needs_closure(package.spec.name)
        for need in graph.deploy_order:
            if need in needed and namespace in self.namespaces[need]:
                return f"after its Namespace (from package {need})"
        return ""


def _needs_prerequisite(
    ran: clusterops.Ran,
    objects: Sequence[Mapping[str, Any]],
    package: LoadedPackage,
    prerequisites: Prerequisites,
) -> dict[ObjectKey, str]:
    """Objects the server could not dry-run because a CRD or Namespace that the package itself,
    a package it needs, a wait or the cluster provides does not exist yet (kubectl's `no matches
    for kind` / `namespaces "x" not found`), each with the reason; empty when the failure has
    another cause, or names a kind or namespace that nothing provides."""
    kinds = {
        (version.rpartition("/")[0], kind): "" for kind, version in _NO_MATCH.findall(ran.stderr)
    }
    namespaces = dict.fromkeys(_NO_NAMESPACE.findall(ran.stderr), "")
    for group, kind in kinds:
        kinds[group, kind] = prerequisites.kind_reason(package, group, kind)
    for namespace in namespaces:
        namespaces[namespace] = prerequisites.namespace_reason(package, namespace)
    if not (kinds or namespaces) or not all((*kinds.values(), *namespaces.values())):
        return {}
    later = {}
    for document in objects:
        key = ObjectKey.of(document)
        if (key.group, key.kind) in kinds:
            later[key] = kinds[key.group, key.kind]
        elif key.namespace in namespaces:
            later[key] = namespaces[key.namespace]
    return later


def _kubectl_diff(
    package: LoadedPackage,
    objects: Sequence[Mapping[str, Any]],
    cluster: clusterops.Cluster,
    deadline: float,
) -> clusterops.Ran:
    server_side = package.spec.server_side
    argv = [
        "kubectl",
        *cluster.flags(),
        "diff",
        "--server-side",
        f"--field-manager={_KPT_FIELD_MANAGER}",
        # kpt's client-side apply overwrites whatever another manager set, so the dry run may
        # force too; a server-side kpt apply would stop at such a conflict, and so does this.
        *([] if server_side else ["--force-conflicts"]),
        "-f",
        "-",
    ]
    items = [as_kpt_sends(o, package.inventory.inventory_id) for o in objects]
    stdin = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    return clusterops.run_bounded(
        argv, deadline=deadline, stdin_text=stdin, env=_kubectl_environment()
    )


# The field manager pulumi-kubernetes applies with: `pulumi-kubernetes-<suffix>`, one per
# resource, kept for its life (provider/pkg/provider/provider.go, fieldManagerName).
_PROVIDER_MANAGER = "pulumi-kubernetes-"
_CONFLICT = re.compile(r"Apply failed with \d+ conflicts?: (.*)")


def _provider_manager(live: Mapping[str, Any]) -> str:
    """The field manager that last applied `live` for the provider; a new one when the provider
    never has (the object is taken over on the next `make up`)."""
    metadata = live.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        manager = entry.get("manager") if isinstance(entry, Mapping) else None
        applied = isinstance(entry, Mapping) and entry.get("operation") == "Apply"
        if applied and isinstance(manager, str) and manager.startswith(_PROVIDER_MANAGER):
            return manager
    return f"{_PROVIDER_MANAGER}takeover"


def _get_native(
    key: ObjectKey, cluster: clusterops.Cluster, deadline: float
) -> tuple[Mapping[str, Any] | None, str]:
    """The live object (None when absent, or when its kind is not served yet), or an error."""
    argv = [
        "kubectl",
        *cluster.flags(),
        "get",
        key.kubectl_resource,
        *(["-n", key.namespace] if key.namespace else []),
        "-o",
        "json",
        "--ignore-not-found",
    ]
    ran = clusterops.run_bounded(argv, deadline=deadline)
    if ran.killed:
        return None, "killed"
    if ran.returncode != 0:
        if "doesn't have a resource type" in ran.stderr:
            return None, ""  # its CRD comes with the package's apply or waits
        return None, f"kubectl get {key.kubectl_resource} failed: " + " ".join(
            _stderr_lines(ran, 2)
        )
    if not ran.stdout.strip():
        return None, ""
    try:
        live = json.loads(ran.stdout)
    except ValueError:
        return None, f"kubectl get {key.kubectl_resource} printed no JSON object"
    return (live if isinstance(live, Mapping) else None), ""


def _diff_native(
    package: LoadedPackage, cluster: clusterops.Cluster, deadline: float, result: PackageDiff
) -> tuple[str, list[str]] | None:
    """Compare the package's native objects with the cluster, as the provider would apply them
    (server-side, with its field manager, without forcing); fill `result.native` and
    `result.conflicts`; an (error, details) when the cluster could not say."""
    for _, documents in package.manifests:
        for document in documents:
            key = ObjectKey.of(document.body)
            live, error = _get_native(key, cluster, deadline)
            if error:
                return error, []
            if live is None:
                result.native.append(
                    Native(key, True, "created by make up after the package's waits")
                )
                continue
            manager = _provider_manager(live)
            argv = [
                "kubectl",
                *cluster.flags(),
                "diff",
                "--server-side",
                f"--field-manager={manager}",
                "-f",
                "-",
            ]
            ran = clusterops.run_bounded(
                argv,
                deadline=deadline,
                stdin_text=json.dumps(document.body),
                env=_kubectl_environment(),
            )
            if ran.killed:
                return "killed", []
            conflict = _CONFLICT.search(ran.stderr)
            if ran.returncode > 1 and conflict:
                result.conflicts.append((key, manager, conflict.group(1)))
                continue
            if ran.returncode not in (0, 1):
                how = (
                    f"killed by signal {-ran.returncode}"
                    if ran.returncode < 0
                    else f"exit {ran.returncode}"
                )
                return f"kubectl diff of native {key} failed ({how})", _stderr_lines(ran)
            try:
                changes = parse_unified_diff(
                    ran.stdout, {key: str(document.body.get("apiVersion"))}
                )
            except MalformedDiffError as malformed:
                return f"kubectl diff of native {key} printed an unreadable diff: {malformed}", []
            if (ran.returncode == 1) != bool(changes):
                return f"kubectl diff of native {key} exited {ran.returncode} with " + (
                    "a diff" if changes else "no diff"
                ), _stderr_lines(ran)
            result.native.extend(Native(key, False, lines=c.lines) for c in changes)
    for secret in package.spec.secrets:
        key = ObjectKey("", "Secret", secret.namespace, secret.name)
        live, error = _get_native(key, cluster, deadline)
        if error:
            return error, []
        wanted = {secret_key for secret_key, _ in secret.data}
        if live is None:
            summary = f"created by make up: {len(wanted)} key(s): {', '.join(sorted(wanted))}"
            result.native.append(Native(key, True, summary))
            continue
        data = live.get("data")
        have = set(data) if isinstance(data, Mapping) else set()
        parts = [
            f"{label} {', '.join(sorted(names))}"
            for label, names in (("adds", wanted - have), ("removes", have - wanted))
            if names
        ]
        if parts:
            result.native.append(Native(key, False, "; ".join(parts) + "; values hidden"))
    return None


def diff_package(
    package: LoadedPackage,
    cluster: clusterops.Cluster,
    deadline: float,
    prerequisites: Prerequisites,
) -> PackageDiff:
    """The object-level difference between the package's files and the cluster."""
    result = PackageDiff()
    try:
        objects = package_objects(package)
        keys = {ObjectKey.of(o): str(o.get("apiVersion")) for o in objects}
        result.hidden = secret_values(objects)
    except (OSError, ValueError) as error:  # PruneInputError is a ValueError
        result.error = f"cannot read the package's files: {error}"
        return result
    inventory, result.error, result.details = _read_inventory(
        cluster,
        package.inventory.name,
        package.inventory.namespace,
        deadline,
        _cluster_scoped_kinds(objects),
    )
    if result.error:
        return result
    result.deployed = inventory is not None
    ran = _kubectl_diff(package, objects, cluster, deadline)
    # kubectl stops at the first object the server cannot dry-run: one more run per cause (a
    # missing CRD or Namespace), each without the objects that wait for it.
    while objects and ran.returncode not in (0, 1) and not ran.killed:
        later = _needs_prerequisite(ran, objects, package, prerequisites)
        if not later:
            break
        result.deferred.extend(later.items())  # in file order
        objects = [o for o in objects if ObjectKey.of(o) not in later]
        # Nothing left to dry-run: every object waits for something.
        ran = (
            _kubectl_diff(package, objects, cluster, deadline)
            if objects
            else clusterops.Ran(0, "", "", killed=False)
        )
    if ran.killed:
        result.error = "killed"
        return result
    # Only stderr is quoted on a failure: stdout is the diff, whose lines can hold a Secret's
    # values (a last-applied-configuration annotation is never masked).
    if ran.returncode < 0:
        # Python's code for a death by signal (the OOM killer, a segfault): its output is
        # whatever it printed before, so nothing can be said of the cluster.
        result.error = f"kubectl diff was killed by signal {-ran.returncode}"
        result.details = _stderr_lines(ran)
        return result
    if ran.returncode > 1:
        result.error = f"kubectl diff failed (exit {ran.returncode})"
        result.details = _stderr_lines(ran)
        return result
    try:
        result.changes = parse_unified_diff(ran.stdout, keys)
    except MalformedDiffError as error:
        result.error = f"kubectl diff printed an unreadable diff: {error}"
        result.details = _stderr_lines(ran)
        return result
    if ran.returncode == 1 and not result.changes:
        result.error = "kubectl diff reported differences but printed no diff"
        result.details = _stderr_lines(ran)
        return result
    if ran.returncode == 0 and result.changes:
        result.error = "kubectl diff printed differences but exited 0 (no differences)"
        result.changes = []
        return result
    native_error = _diff_native(package, cluster, deadline, result)
    if native_error:
        result.error, result.details = native_error
        return result
    if inventory:
        candidates = prune_candidates(inventory, keys)
        live, result.error, result.details = _live_objects(candidates, cluster, deadline)
        if not result.error:
            result.prune = plan_prune(
                inventory,
                objects,
                live,
                package.inventory.inventory_id,
                inventory_namespace=package.inventory.namespace,
                adopt=package.spec.adopt,
                allowed=package.spec.allow_prune,
            )
    return result


# Shorter values would hide common words; a Secret value this short is no credential.
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


def _stderr_lines(ran: clusterops.Ran, count: int = 6) -> list[str]:
    """The last lines of stderr alone, or a line saying it was empty."""
    lines = [line for line in ran.stderr.splitlines() if line.strip()][-count:]
    return lines or ["(kubectl wrote nothing to stderr)"]


def _cut(line: str) -> str:
    return line if len(line) <= _LONGEST_LINE else f"{line[:_LONGEST_LINE]}... (line cut)"


def render(name: str, result: PackageDiff, bound: str) -> list[str]:
    """The package's lines: a verdict, then one entry per object; no value of the package's
    Secrets in any of them."""
    return [hide(line, result.hidden) for line in _render(name, result, bound)]


def _render(name: str, result: PackageDiff, bound: str) -> list[str]:
    if result.error == "killed":
        return [f"{name:<16} NOT CHECKED (stopped at {bound})"]
    if result.error:
        return [f"{name:<16} ERROR: {result.error}", *(f"    {_cut(d)}" for d in result.details)]
    created = [c for c in result.changes if c.created]
    changed = [c for c in result.changes if not c.created]
    counts = [
        f"{count} to {verb}"
        for count, verb in (
            (len(changed), "change"),
            (len(created) + len(result.deferred), "create"),
            (len(result.prune.prune), "prune"),
        )
        if count
    ]
    if result.native:
        counts.append(f"{len(result.native)} native to create or change")
    if result.conflicts:
        counts.append(f"{len(result.conflicts)} conflict(s)")
    stops = len(result.prune.blocked) + len(result.prune.refused)
    if stops:
        counts.append(f"{stops} make up will stop on")
    verdict = ", ".join(counts) if counts else "in sync"
    if not result.deployed:
        verdict = f"not deployed yet: {verdict}"
    lines = [f"{name:<16} {verdict}"]
    for change in changed:
        if change.key.kind == "Secret":
            lines.append(f"  ~ {change.key}: {secret_summary(change)}")
        else:
            lines.append(f"  ~ {change.key}")
            lines.extend(f"      {_cut(line)}" for line in change.lines)
    for change in created:
        secret = f": {secret_summary(change)}" if change.key.kind == "Secret" else ""
        lines.append(f"  + {change.key}{secret}")
    for key, reason in result.deferred:
        lines.append(f"  + {key} ({reason})")
    for key in result.prune.prune:
        lines.append(f"  - {key} (pruned: in the cluster's inventory, no longer in the files)")
    for key, entry in result.prune.refused:
        lines.append(
            f"  ! {key} (left the files; make up refuses to prune it: add {entry!r} to "
            f"allowPrune of package {name} to let it go)"
        )
    for key, reason in result.prune.blocked:
        lines.append(f"  ! {key} (left the files; kpt will not prune it, make up stops: {reason})")
    for native in result.native:
        sign = "+" if native.created else "~"
        lines.append(
            f"  {sign} {native.key} (native{': ' if native.summary else ''}{native.summary})"
        )
        lines.extend(f"      {_cut(line)}" for line in native.lines)
    for key, manager, conflict in result.conflicts:
        lines.append(
            f"  ! {key} (native: changed by another field manager: {_cut(conflict)}; make up "
            "leaves it, as Pulumi compares the manifest with its state, not the cluster, and "
            "the next change of this manifest stops on the conflict. To keep the change, put "
            "it in the manifest; to restore the manifest, kubectl apply --server-side "
            f"--force-conflicts --field-manager={manager} -f <manifest>)"
        )
    for key, reason in result.prune.kept:
        lines.append(f"  = {key} (left the files; kpt keeps it: {reason})")
    for key in result.prune.gone:
        lines.append(f"  = {key} (left the files and the cluster; only the inventory forgets it)")
    return lines


def preview_digest(text: str) -> dict[str, Any]:
    """The digest `pulumi preview --json` printed (after the wrapper's own lines). Raises
    ValueError when there is none (pulumi failed: its own errors are above), or when it holds
    an error-severity diagnostic, naming each: a preview that failed tells nothing of what
    `make up` would change.

    A diagnostic is `{urn, prefix, message, severity}` (PreviewDiagnostic in pulumi's
    pkg/display/json.go); severity is a diag.Severity: "error", "warning", "info", ...
    """
    start = next((m.start() for m in re.finditer(r"(?m)^\{", text)), -1)
    if start < 0:
        raise ValueError("pulumi preview --json printed no preview (see pulumi's errors above)")
    try:
        digest, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as error:
        raise ValueError(f"pulumi preview --json printed no readable preview: {error}") from None
    if not isinstance(digest, dict):
        raise ValueError("pulumi preview --json printed no preview: expected a JSON object")
    diagnostics = digest.get("diagnostics") or []
    if not isinstance(diagnostics, list):
        raise ValueError("pulumi preview --json: diagnostics is not a list")
    errors = [
        _diagnostic_text(entry)
        for entry in diagnostics
        if isinstance(entry, dict) and entry.get("severity") == "error"
    ]
    if errors:
        raise ValueError(
            "pulumi preview failed with error(s):\n" + "\n".join(f"  {e}" for e in errors)
        )
    steps = digest.get("steps") or []
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise ValueError("pulumi preview --json: steps is not a list of objects")
    return digest


def _diagnostic_text(entry: Mapping[str, Any]) -> str:
    """One diagnostic on one line: the resource it is about (its URN's name), then pulumi's
    message without its colour codes."""
    message = re.sub(r"<\{%[^%]*%\}>", "", str(entry.get("message") or "")).strip()
    message = " ".join(message.split())
    urn = str(entry.get("urn") or "")
    where = urn.rsplit("::", 1)[-1] if urn else ""
    return f"{where}: {message}" if where else message


def packages_in_preview(text: str, names: Sequence[str]) -> set[str]:
    """The packages whose resources `pulumi preview --json` creates, updates or replaces.

    A step's URN is `urn:pulumi:STACK::PROJECT::TYPE::NAME`; a package's component has the type
    token of KptPackage and its name, its children a type under it (`KptPackage$...`) and a name
    that starts with the package's (`headscale-apply`). Raises ValueError when `text` holds no
    preview, or one with errors (`preview_digest`).
    """
    digest = preview_digest(text)
    found = set()
    by_length = sorted(names, key=len, reverse=True)
    for step in digest.get("steps") or []:
        parts = str(step.get("urn", "")).split("::")
        if step.get("op") not in _CHANGING_OPS or len(parts) < 4:
            continue
        type_chain, resource = parts[2], "::".join(parts[3:])
        if type_chain != PACKAGE_TYPE and not type_chain.startswith(f"{PACKAGE_TYPE}$"):
            continue
        owner = next((n for n in by_length if resource == n or resource.startswith(f"{n}-")), "")
        if owner:
            found.add(owner)
    return found


@dataclass(frozen=True)
class Removal:
    """A package that `pulumi preview` deletes: `make up` runs its `kpt live destroy`."""

    package: str
    inventory_name: str
    inventory_namespace: str
    inventory_id: str
    cluster: clusterops.Cluster


def removals_in_preview(text: str) -> list[Removal]:
    """The packages whose inventory Command (`<package>-inventory`, whose delete is the
    package's `kpt live destroy`) `pulumi preview --json` deletes, read from the environment in
    the step's old state (pulumi pkg/display/json.go, PreviewStep.OldState: inputs as stored).
    Raises ValueError as `preview_digest` does."""
    digest = preview_digest(text)
    found = []
    for step in digest.get("steps") or []:
        parts = str(step.get("urn", "")).split("::")
        if step.get("op") != "delete" or len(parts) < 4:
            continue
        if parts[2] != f"{PACKAGE_TYPE}$command:local:Command" or not parts[3].endswith(
            "-inventory"
        ):
            continue
        old = step.get("oldState") or {}
        inputs = old.get("inputs") if isinstance(old, Mapping) else None
        env = inputs.get("environment") if isinstance(inputs, Mapping) else None
        if not isinstance(env, Mapping):
            continue
        values = {key: env.get(key) for key in _REMOVAL_KEYS}
        if not all(isinstance(value, str) and value for value in values.values()):
            continue
        found.append(
            Removal(
                str(values[kptstep_env.ENV_PACKAGE]),
                str(values[kptstep_env.ENV_INVENTORY_NAME]),
                str(values[kptstep_env.ENV_INVENTORY_NAMESPACE]),
                str(values[kptstep_env.ENV_INVENTORY_ID]),
                clusterops.Cluster(
                    str(values[kptstep_env.ENV_KUBECONFIG]), str(values[kptstep_env.ENV_CONTEXT])
                ),
            )
        )
    return found


def removal_lines(removal: Removal, deadline: float, bound: str) -> tuple[list[str], bool]:
    """What `kpt live destroy` of a deleted package would remove, read from its inventory in
    the cluster; (lines, whether an error stopped it)."""
    name = removal.package
    inventory, error, details = _read_inventory(
        removal.cluster, removal.inventory_name, removal.inventory_namespace, deadline
    )
    if error == "killed":
        return [f"{name:<16} NOT CHECKED (stopped at {bound})"], True
    if error:
        return [f"{name:<16} ERROR: {error}", *(f"    {d}" for d in details)], True
    if inventory is None:
        return [f"{name:<16} package removed: its inventory is gone, nothing to delete"], False
    live, failure, details = _live_objects(inventory, removal.cluster, deadline)
    if failure:
        return [f"{name:<16} ERROR: {failure}", *(f"    {d}" for d in details)], True
    deleted = []
    lines = []
    for key in inventory:
        found = live.get(key)
        if found is None:
            continue
        reason = kept_because(found, removal.inventory_id)
        if reason:
            lines.append(f"  = {key} (kpt leaves it: {reason})")
        else:
            deleted.append(key)
    head = (
        f"{name:<16} package removed: make up deletes {len(deleted)} object(s) "
        "(kpt live destroy, in reverse dependency order)"
    )
    return [head, *(f"  - {key}" for key in deleted), *lines], False


def _show_removals(removals: Sequence[Removal], timeout: int) -> bool:
    """Print what each deleted package's destroy removes; False when one could not be read."""
    deadline = time.monotonic() + timeout
    bound = clusterops.bound_text(timeout)
    ok = True
    for removal in removals:
        lines, failed = removal_lines(removal, deadline, bound)
        print("\n".join(lines), flush=True)
        ok = ok and not failed
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make diff",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    clusterops.add_stack_arguments(parser)
    clusterops.add_package_argument(parser, what="diff")
    clusterops.add_bound_arguments(parser, checked="diffed")
    parser.add_argument("--after-preview", help="pulumi preview --json output ('-': stdin)")
    parser.add_argument("--drift", action="store_true", help="with --after-preview: every package")
    parser.add_argument(
        "--preview-errors",
        metavar="FILE",
        help="only say what errors a failed `pulumi preview --json` printed to FILE",
    )
    args = parser.parse_args(argv)
    if args.preview_errors:
        try:
            preview_digest(Path(args.preview_errors).read_text())
        except (OSError, ValueError) as error:
            print(f"make preview: {error}", file=sys.stderr)
        return EXIT_ERROR
    preview = ""
    if args.after_preview:
        # Read and checked first, --drift or not: a preview that failed stops here.
        try:
            source = Path(args.after_preview)
            preview = sys.stdin.read() if args.after_preview == "-" else source.read_text()
            preview_digest(preview)
        except (OSError, ValueError) as error:
            print(f"make preview: {error}", file=sys.stderr)
            return EXIT_ERROR
    try:
        settings = clusterops.load_run_settings(args)
    except (ConfigError, ValueError) as error:
        print(error, file=sys.stderr)
        return EXIT_ERROR
    catalog = settings.catalog
    names = [package.spec.name for package in catalog.packages]
    selected = settings.selected
    if args.after_preview:
        try:
            changing = set(names) if args.drift else packages_in_preview(preview, names)
        except ValueError as error:
            print(f"make preview: {error}", file=sys.stderr)
            return EXIT_ERROR
        selected = [name for name in selected if name in changing]
        removals = [r for r in removals_in_preview(preview) if r.package not in names]
        print("\nObjects each package's apply would change (make diff):", flush=True)
        if removals and not _show_removals(removals, settings.timeout):
            return EXIT_ERROR
        if not selected:
            print("no package is created or updated: no objects change (DRIFT=1 checks them all)")
            return EXIT_IN_SYNC
    deadline = time.monotonic() + settings.timeout
    bound = clusterops.bound_text(settings.timeout)
    cluster = clusterops.connect(args.stack, catalog.config, deadline)
    if cluster is None:
        return EXIT_ERROR
    by_name = {package.spec.name: package for package in catalog.packages}
    prerequisites = Prerequisites.of(catalog)

    def check(name: str, until: float) -> PackageDiff:
        return diff_package(by_name[name], cluster, until, prerequisites)

    def show(name: str, result: PackageDiff) -> None:
        print("\n".join(render(name, result, bound)), flush=True)

    results = clusterops.run_in_deploy_order(
        selected, check, jobs=settings.jobs, deadline=deadline, show=show
    )
    errors = sum(1 for r in results.values() if r.error)
    differ = sum(1 for r in results.values() if not r.error and r.differences)
    summary = f"{len(results) - errors - differ} of {len(results)} package(s) in sync"
    print(
        summary
        + (f", {differ} differ" if differ else "")
        + (f", {errors} failed" if errors else "")
    )
    if errors:
        return EXIT_ERROR
    if differ and not args.after_preview:
        return EXIT_DIFFERENCES
    return EXIT_IN_SYNC


if __name__ == "__main__":
    sys.exit(main())
