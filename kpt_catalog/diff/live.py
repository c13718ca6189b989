"""What the cluster holds: a package's inventory and the objects it lists."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from components.step.prune.rules import (
    ObjectKey,
    PruneInputError,
    inventory_objects,
)
from kpt_catalog import clusterops

__all__ = [
    "cluster_scoped_kinds",
    "kubectl_environment",
    "live_objects",
    "read_inventory",
    "stderr_lines",
]

_NAMES_PER_GET = 200


def kubectl_environment() -> dict[str, str]:
    # KUBECTL_EXTERNAL_DIFF would replace `diff -u -N` with the user's program (kubectl's
    # DiffProgram.getCommand), whose output could not be read here.
    return {k: v for k, v in os.environ.items() if k != "KUBECTL_EXTERNAL_DIFF"}


def cluster_scoped_kinds(objects: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (group, kind) of every CRD among `objects` whose objects have no namespace."""
    scoped = set()
    for obj in objects:
        spec = obj.get("spec")
        if obj.get("kind") == "CustomResourceDefinition" and isinstance(spec, Mapping):
            names = spec.get("names")
            if spec.get("scope") == "Cluster" and isinstance(names, Mapping):
                scoped.add((str(spec.get("group", "")), str(names.get("kind", ""))))
    return scoped


def read_inventory(
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


def live_objects(
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


def stderr_lines(ran: clusterops.Ran, count: int = 6) -> list[str]:
    """The last lines of stderr alone, or a line saying it was empty."""
    lines = [line for line in ran.stderr.splitlines() if line.strip()][-count:]
    return lines or ["(kubectl wrote nothing to stderr)"]
