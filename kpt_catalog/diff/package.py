"""One package's diff: kpt's objects through the server's dry run, its native objects, what kpt
would prune."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from components.catalog import LoadedPackage
from components.step.prune.rules import (
    ObjectKey,
    plan_prune,
    prune_candidates,
)
from kpt_catalog import clusterops
from kpt_catalog.diff.live import (
    cluster_scoped_kinds,
    kubectl_environment,
    live_objects,
    read_inventory,
    stderr_lines,
)
from kpt_catalog.diff.model import PackageDiff
from kpt_catalog.diff.native import diff_native
from kpt_catalog.diff.objects import as_kpt_sends, package_objects, secret_values
from kpt_catalog.diff.prerequisites import Prerequisites, needs_prerequisite
from kpt_catalog.diff.unified import (
    MalformedDiffError,
    parse_unified_diff,
)

__all__ = [
    "diff_package",
]

# kpt's field manager for server-side apply (kpt live apply --help: "Default value is kubectl").
_KPT_FIELD_MANAGER = "kubectl"


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
        argv, deadline=deadline, stdin_text=stdin, env=kubectl_environment()
    )


# The field manager pulumi-kubernetes applies with: `pulumi-kubernetes-<suffix>`, one per
# resource, kept for its life (provider/pkg/provider/provider.go, fieldManagerName).


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
    inventory, result.error, result.details = read_inventory(
        cluster,
        package.inventory.name,
        package.inventory.namespace,
        deadline,
        cluster_scoped_kinds(objects),
    )
    if result.error:
        return result
    result.deployed = inventory is not None
    ran = _kubectl_diff(package, objects, cluster, deadline)
    # kubectl stops at the first object the server cannot dry-run: one more run per cause (a
    # missing CRD or Namespace), each without the objects that wait for it.
    while objects and ran.returncode not in (0, 1) and not ran.killed:
        later = needs_prerequisite(ran, objects, package, prerequisites)
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
        result.details = stderr_lines(ran)
        return result
    if ran.returncode > 1:
        result.error = f"kubectl diff failed (exit {ran.returncode})"
        result.details = stderr_lines(ran)
        return result
    try:
        result.changes = parse_unified_diff(ran.stdout, keys)
    except MalformedDiffError as error:
        result.error = f"kubectl diff printed an unreadable diff: {error}"
        result.details = stderr_lines(ran)
        return result
    if ran.returncode == 1 and not result.changes:
        result.error = "kubectl diff reported differences but printed no diff"
        result.details = stderr_lines(ran)
        return result
    if ran.returncode == 0 and result.changes:
        result.error = "kubectl diff printed differences but exited 0 (no differences)"
        result.changes = []
        return result
    native_error = diff_native(package, cluster, deadline, result)
    if native_error:
        result.error, result.details = native_error
        return result
    if inventory:
        candidates = prune_candidates(inventory, keys)
        live, result.error, result.details = live_objects(candidates, cluster, deadline)
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
