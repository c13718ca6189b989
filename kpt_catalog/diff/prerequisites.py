"""The CRDs and Namespaces a package's objects wait for: the server cannot dry-run them before."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.catalog import BUILTIN_GROUPS, Catalog, LoadedPackage, kind_providers, kind_source
from components.scan import KindRef, scan_package
from components.step.prune.rules import (
    ObjectKey,
)
from kpt_catalog import clusterops

__all__ = [
    "Prerequisites",
    "needs_prerequisite",
]

_NO_MATCH = re.compile(r'no matches for kind "([^"]+)" in version "([^"]+)"')
_NO_NAMESPACE = re.compile(r'namespaces "([^"]+)" not found')


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


def needs_prerequisite(
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
