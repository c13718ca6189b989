"""Reading `pulumi preview --json`: which packages it changes, which it removes, and what their
removal deletes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.step import contract as kptstep_env
from components.step.prune.rules import (
    kept_because,
)
from kpt_catalog import clusterops
from kpt_catalog.diff.live import (
    live_objects,
    read_inventory,
)

__all__ = [
    "PACKAGE_TYPE",
    "Removal",
    "packages_in_preview",
    "preview_digest",
    "removal_lines",
    "removals_in_preview",
    "show_removals",
]

# KptPackage's type token (components/kpt_package.py; a test keeps the two equal): importing that
# module would load the Pulumi SDK, a third of a second, for one string.
PACKAGE_TYPE = "kpt-catalog:index:KptPackage"
# Preview steps that change a package's objects (pulumi pkg/display/json.go, PreviewStep.Op).
_CHANGING_OPS = frozenset({"create", "update", "replace", "create-replacement"})
# A value kubectl's Secret masker wrote: `***`, `*** (before)`, `*** (after)`.


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
    inventory, error, details = read_inventory(
        removal.cluster, removal.inventory_name, removal.inventory_namespace, deadline
    )
    if error == "killed":
        return [f"{name:<16} NOT CHECKED (stopped at {bound})"], True
    if error:
        return [f"{name:<16} ERROR: {error}", *(f"    {d}" for d in details)], True
    if inventory is None:
        return [f"{name:<16} package removed: its inventory is gone, nothing to delete"], False
    live, failure, details = live_objects(inventory, removal.cluster, deadline)
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


def show_removals(removals: Sequence[Removal], timeout: int) -> bool:
    """Print what each deleted package's destroy removes; False when one could not be read."""
    deadline = time.monotonic() + timeout
    bound = clusterops.bound_text(timeout)
    ok = True
    for removal in removals:
        lines, failed = removal_lines(removal, deadline, bound)
        print("\n".join(lines), flush=True)
        ok = ok and not failed
    return ok
