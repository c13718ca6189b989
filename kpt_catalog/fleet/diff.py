"""`kpt-catalog fleet diff`: every cluster's `diff` against the catalog a rollout would deploy,
then the clusters grouped by what would change on them, each group set against the canary's.

A cluster's change set is its diff reduced to what is the same on any cluster receiving the same
change: per package, each object's action and the lines that change, without the lines that are
every cluster's own (uids, resource versions, generations, timestamps) and without the diff's
context lines. Two clusters with the same change set get the same `up`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from components.config.files import ROLLOUT_VARIABLE
from kpt_catalog import exits
from kpt_catalog.fleet.snapshot import Snapshot
from kpt_catalog.stackfile import ROOT

__all__ = [
    "ClusterDiff",
    "Group",
    "change_set",
    "diff_clusters",
    "exit_code",
    "group_clusters",
    "render",
    "run_diff",
    "run_json",
    "totals",
    "unapproved",
]

# Lines of an object's diff that differ from cluster to cluster whatever the catalog says.
_OWN = re.compile(
    r"^[+-]\s*(uid|resourceVersion|generation|creationTimestamp|time|"
    r"observedGeneration|lastTransitionTime|clusterIP|clusterIPs|nodePort|ip|"
    r"deployment\.kubernetes\.io/revision):"
)


@dataclass(frozen=True)
class ClusterDiff:
    """One cluster's `kpt-catalog diff --output json`."""

    name: str
    code: int
    document: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""


def _object(entry: Mapping[str, Any]) -> str:
    found = entry.get("object") or {}
    group = f"{found.get('group')}/" if found.get("group") else ""
    namespace = f"{found.get('namespace')}/" if found.get("namespace") else ""
    return f"{group}{found.get('kind')}/{namespace}{found.get('name')}"


def change_set(document: Mapping[str, Any]) -> frozenset[str]:
    """The changes of one cluster's diff, one string each, as they are on any cluster."""
    changes = set()
    for package in document.get("packages") or []:
        for entry in package.get("objects") or []:
            if entry.get("action") in ("keep", "forget"):
                continue  # nothing changes on the cluster
            lines = [
                line
                for line in entry.get("lines") or []
                if line[:1] in "+-" and not _OWN.match(line)
            ]
            body = f" [{'; '.join(lines)}]" if lines else ""
            changes.add(f"{package.get('name')}: {entry.get('action')} {_object(entry)}{body}")
    return frozenset(changes)


@dataclass(frozen=True)
class Group:
    """Clusters whose change sets are the same."""

    clusters: tuple[str, ...]
    changes: frozenset[str]
    canary: bool
    """The canary's own group."""


def group_clusters(diffs: Sequence[ClusterDiff], canary: str) -> list[Group]:
    """Clusters that could be diffed, grouped by change set: the canary's group first."""
    by_set: dict[frozenset[str], list[str]] = {}
    for diff in diffs:
        if diff.code in (exits.OK, exits.DIFFERS):
            by_set.setdefault(change_set(diff.document), []).append(diff.name)
    groups = [Group(tuple(names), changes, canary in names) for changes, names in by_set.items()]
    return sorted(groups, key=lambda g: (not g.canary, -len(g.clusters), g.clusters))


def totals(diffs: Sequence[ClusterDiff]) -> dict[str, int]:
    """Creates, changes and prunes over the fleet, and the prunes `up` would refuse or stop on."""
    counted = {"create": 0, "change": 0, "prune": 0, "refused": 0}
    for diff in diffs:
        for package in diff.document.get("packages") or []:
            for entry in package.get("objects") or []:
                action = entry.get("action")
                if action in ("create", "change", "prune"):
                    counted[action] += 1
                elif action in ("refuse-prune", "blocked-prune", "conflict"):
                    counted["refused"] += 1
    return counted


def run_diff(cluster: str, snapshot: Snapshot, timeout_seconds: int) -> ClusterDiff:
    """`kpt-catalog diff --stack <cluster> --output json` of the stored catalog."""
    argv = ["diff", "--stack", cluster, "--timeout", f"{timeout_seconds}s"]
    code, document, stderr = _command(argv, str(snapshot.root))
    if code in (exits.OK, exits.DIFFERS):
        return ClusterDiff(cluster, code, document)
    lines = [line for line in stderr.splitlines() if line.strip()]
    problems = list(document.get("problems") or lines[-1:] or [f"exit {code}"])
    problems += [
        f"{p.get('name')}: {p.get('error')}"
        for p in document.get("packages") or []
        if p.get("error")
    ]
    return ClusterDiff(cluster, code, document, "; ".join(problems))


def diff_clusters(
    clusters: Sequence[str],
    diff_of: Callable[[str], ClusterDiff],
    concurrency: int,
) -> list[ClusterDiff]:
    """Every cluster's diff, `concurrency` at once, in the order of `clusters`."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(diff_of, clusters))


def render(diffs: Sequence[ClusterDiff], canary: str, say: Callable[[str], None]) -> list[Group]:
    """Each cluster's verdict, then the groups set against the canary's, then the totals."""
    for diff in diffs:
        if diff.error:
            say(f"{diff.name}: could not be diffed (exit {diff.code}): {diff.error}")
        else:
            count = len(change_set(diff.document))
            say(f"{diff.name}: " + (f"{count} change(s)" if count else "in sync"))
    groups = group_clusters(diffs, canary)
    reference = next((g.changes for g in groups if g.canary), None)
    say("")
    for group in groups:
        names = ", ".join(group.clusters)
        if group.canary:
            say(
                f"{len(group.clusters)} cluster(s) ({names}): "
                f"the canary's {len(group.changes)} change(s)"
            )
            continue
        say(f"{len(group.clusters)} cluster(s) ({names}) differ from the canary:")
        if reference is None:
            say("  (the canary could not be diffed)")
            continue
        for change in sorted(group.changes - reference):
            say(f"  + {change}")
        for change in sorted(reference - group.changes):
            say(f"  - not here: {change}")
    counted = totals(diffs)
    say(
        f"fleet: {counted['create']} create(s), {counted['change']} change(s), "
        f"{counted['prune']} prune(s); {counted['refused']} that up would refuse or stop on"
    )
    return groups


def exit_code(diffs: Sequence[ClusterDiff]) -> int:
    """What `fleet diff` exits with: as `diff` would for the worst cluster."""
    codes = {diff.code for diff in diffs}
    for code in (exits.FAILED, exits.CONFIG, exits.UNREACHABLE, exits.DIFFERS):
        if code in codes:
            return code
    return exits.OK


def unapproved(groups: Sequence[Group], approved: Sequence[str]) -> list[str]:
    """Clusters whose change set is not the canary's and that were not approved by name."""
    return [
        name
        for group in groups
        if not group.canary
        for name in group.clusters
        if name not in approved
    ]


def _command(argv: Sequence[str], rollout: str) -> tuple[int, dict[str, Any], str]:
    """A `kpt-catalog ... --output json` run (reading the catalog `rollout` when given): its
    exit status, its document ({} when none) and its stderr."""
    env = {**os.environ, "NO_COLOR": "1"}
    if rollout:
        env[ROLLOUT_VARIABLE] = rollout
    done = subprocess.run(
        [str(ROOT / "kpt-catalog"), *argv, "--output", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else {}
    except ValueError:
        document = {}
    return done.returncode, document if isinstance(document, dict) else {}, done.stderr


def run_json(argv: Sequence[str], rollout: str) -> tuple[int, dict[str, Any]]:
    """A `kpt-catalog ... --output json` run: its exit status and document ({} when none)."""
    code, document, _ = _command(argv, rollout)
    return code, document
