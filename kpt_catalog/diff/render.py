"""A package's diff as the user reads it, and as `--output json` gives it."""

from __future__ import annotations

from collections.abc import Sequence

from components.step.prune.rules import ObjectKey
from kpt_catalog.diff.model import PackageDiff
from kpt_catalog.diff.objects import hide
from kpt_catalog.diff.unified import (
    cut,
    secret_summary,
)

__all__ = [
    "package_json",
    "render",
]


def render(name: str, result: PackageDiff, bound: str) -> list[str]:
    """The package's lines: a verdict, then one entry per object; no value of the package's
    Secrets in any of them."""
    return [hide(line, result.hidden) for line in _render(name, result, bound)]


def _render(name: str, result: PackageDiff, bound: str) -> list[str]:
    if result.error == "killed":
        return [f"{name:<16} NOT CHECKED (stopped at {bound})"]
    if result.error:
        return [f"{name:<16} ERROR: {result.error}", *(f"    {cut(d)}" for d in result.details)]
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
            lines.extend(f"      {cut(line)}" for line in change.lines)
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
        lines.extend(f"      {cut(line)}" for line in native.lines)
    for key, manager, conflict in result.conflicts:
        lines.append(
            f"  ! {key} (native: changed by another field manager: {cut(conflict)}; make up "
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


def _object(key: ObjectKey) -> dict[str, str]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace, "name": key.name}


def package_json(name: str, result: PackageDiff) -> dict[str, object]:
    """One package in `diff --output json` (docs/schema/diff.json): its state, then one entry
    per object with what `up` would do to it. A Secret's entry names its keys, never a value;
    no value of the package's Secrets is in any line."""
    if result.error:
        state = "not-checked" if result.error == "killed" else "error"
        error = "stopped at TIMEOUT" if result.error == "killed" else result.error
        return {
            "name": name,
            "state": state,
            "error": hide(error, result.hidden),
            "details": [hide(cut(d), result.hidden) for d in result.details],
            "deployed": result.deployed,
            "objects": [],
        }
    entries: list[dict[str, object]] = []

    def entry(action: str, key: ObjectKey, reason: str = "", lines: Sequence[str] = ()) -> None:
        entries.append(
            {
                "action": action,
                "object": _object(key),
                "reason": hide(reason, result.hidden),
                "lines": [hide(cut(line), result.hidden) for line in lines],
            }
        )

    for change in result.changes:
        action = "create" if change.created else "change"
        if change.key.kind == "Secret":
            entry(action, change.key, secret_summary(change))
        else:
            entry(action, change.key, "", () if change.created else change.lines)
    for key, reason in result.deferred:
        entry("create", key, reason)
    for key in result.prune.prune:
        entry("prune", key, "in the cluster's inventory, no longer in the files")
    for key, allow in result.prune.refused:
        entry("refuse-prune", key, f"add {allow!r} to allowPrune of package {name}")
    for key, reason in result.prune.blocked:
        entry("blocked-prune", key, reason)
    for native in result.native:
        entry("create" if native.created else "change", native.key, native.summary, native.lines)
        entries[-1]["native"] = True
    for key, manager, conflict in result.conflicts:
        entry("conflict", key, f"{conflict} (the provider's field manager: {manager})")
        entries[-1]["native"] = True
    for key, reason in result.prune.kept:
        entry("keep", key, reason)
    for key in result.prune.gone:
        entry("forget", key, "left the files and the cluster; only the inventory forgets it")
    for item in entries:
        item.setdefault("native", False)
    return {
        "name": name,
        "state": "differs" if result.differences else "in-sync",
        "error": "",
        "details": [],
        "deployed": result.deployed,
        "objects": entries,
    }
