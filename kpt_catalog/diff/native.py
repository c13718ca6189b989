"""A package's native objects (its manifests' objects and declared Secrets) against the cluster, as
the Kubernetes provider would apply them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from components.catalog import LoadedPackage
from components.step.prune.rules import (
    ObjectKey,
)
from kpt_catalog import clusterops
from kpt_catalog.diff.live import (
    kubectl_environment,
    stderr_lines,
)
from kpt_catalog.diff.model import Native, PackageDiff
from kpt_catalog.diff.unified import (
    MalformedDiffError,
    parse_unified_diff,
)

__all__ = [
    "diff_native",
]

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
        return None, f"kubectl get {key.kubectl_resource} failed: " + " ".join(stderr_lines(ran, 2))
    if not ran.stdout.strip():
        return None, ""
    try:
        live = json.loads(ran.stdout)
    except ValueError:
        return None, f"kubectl get {key.kubectl_resource} printed no JSON object"
    return (live if isinstance(live, Mapping) else None), ""


def diff_native(
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
                env=kubectl_environment(),
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
                return f"kubectl diff of native {key} failed ({how})", stderr_lines(ran)
            try:
                changes = parse_unified_diff(
                    ran.stdout, {key: str(document.body.get("apiVersion"))}
                )
            except MalformedDiffError as malformed:
                return f"kubectl diff of native {key} printed an unreadable diff: {malformed}", []
            if (ran.returncode == 1) != bool(changes):
                return f"kubectl diff of native {key} exited {ran.returncode} with " + (
                    "a diff" if changes else "no diff"
                ), stderr_lines(ran)
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
