"""The package graph: the one place deploy order, rollback order, waves and pictures come from.

The edges are the packages' `needs`. Every view (the order the program registers components in,
the rollback order, the plan's waves and critical path, the README's Mermaid diagram) is derived
here, so they cannot disagree.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from components.config import ConfigError, PackageSpec, WaitSpec, format_duration

__all__ = ["Graph"]


@dataclass(frozen=True)
class Graph:
    """A validated, acyclic package graph in a stable topological order."""

    packages: tuple[PackageSpec, ...]
    """Deploy order: every package after all it needs; ties keep configuration order."""

    @classmethod
    def build(cls, packages: Sequence[PackageSpec]) -> Graph:
        """Order `packages`; ConfigError naming the cycle when there is one.

        Kahn's algorithm, taking the ready package that comes first in the configuration."""
        by_name = {p.name: p for p in packages}
        position = {p.name: index for index, p in enumerate(packages)}
        waiting = {p.name: len({n for n in p.needs if n in by_name}) for p in packages}
        dependents: dict[str, list[str]] = {}
        for package in packages:
            for need in {n for n in package.needs if n in by_name}:
                dependents.setdefault(need, []).append(package.name)
        ready = [position[name] for name, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        ordered: list[PackageSpec] = []
        while ready:
            package = packages[heapq.heappop(ready)]
            ordered.append(package)
            for dependent in dependents.get(package.name, []):
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    heapq.heappush(ready, position[dependent])
        if len(ordered) < len(packages):
            placed = {p.name for p in ordered}
            cycle = _find_cycle(by_name, [p for p in packages if p.name not in placed])
            raise ConfigError(
                [
                    "packages.needs: the packages form a cycle, so none of them can go first: "
                    + " -> ".join(cycle)
                ]
            )
        return cls(tuple(ordered))

    @property
    def deploy_order(self) -> tuple[str, ...]:
        """Package names in the order `pulumi up` finishes them."""
        return tuple(p.name for p in self.packages)

    @property
    def rollback_order(self) -> tuple[str, ...]:
        """Package names in the order `pulumi destroy` removes them."""
        return tuple(reversed(self.deploy_order))

    def needs_closure(self, name: str) -> frozenset[str]:
        """Every package `name` needs, directly or transitively."""
        return self._closures[name]

    @functools.cached_property
    def _closures(self) -> dict[str, frozenset[str]]:
        closures: dict[str, frozenset[str]] = {}
        for package in self.packages:  # deploy order: every need's closure is known already
            closures[package.name] = frozenset(package.needs).union(
                *(closures[n] for n in package.needs if n in closures)
            )
        return closures

    def waves(self) -> tuple[tuple[str, ...], ...]:
        """Groups that can run together: wave k holds packages whose longest chain of needs is k."""
        level: dict[str, int] = {}
        for package in self.packages:
            level[package.name] = 1 + max((level[n] for n in package.needs), default=-1)
        return tuple(
            tuple(p.name for p in self.packages if level[p.name] == wave)
            for wave in range(max(level.values(), default=-1) + 1)
        )

    def critical_path(self) -> tuple[tuple[str, ...], int]:
        """The chain of needs with the largest worst case, and that worst case in seconds."""
        finish: dict[str, tuple[int, tuple[str, ...]]] = {}
        for package in self.packages:
            start, chain = max(
                (finish[n] for n in package.needs), default=(0, ()), key=lambda item: item[0]
            )
            finish[package.name] = (start + package.worst_case_seconds, (*chain, package.name))
        seconds, chain = max(finish.values(), key=lambda item: item[0], default=(0, ()))
        return chain, seconds

    def sequential_seconds(self) -> int:
        """Worst case of applying every package one after another, as the bash loop did."""
        return sum(p.worst_case_seconds for p in self.packages)

    def mermaid(self) -> str:
        """A Mermaid flowchart: packages, each with its steps and the edges between them (those a
        deploy waits on), and the needs edges between packages."""
        lines = ["flowchart TD"]
        for package in self.packages:
            node = _node(package.name)
            lines.append(f'  subgraph {node}["{package.name} ({package.path})"]')
            steps, edges = _package_steps(package)
            for key, label in steps:
                lines.append(f'    {node}_{key}["{label}"]')
            lines.extend(f"    {node}_{a} --> {node}_{b}" for a, b in edges)
            lines.append("  end")
        lines.extend(
            f"  {_node(need)} --> {_node(package.name)}"
            for package in self.packages
            for need in package.needs
        )
        return "\n".join(lines) + "\n"


def _package_steps(
    package: PackageSpec,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A package's steps (key, label) in the order they run, and the edges (before, after)
    between them that a deploy waits on (the Commands' `depends_on` in `KptPackage`)."""
    steps: list[tuple[str, str]] = []
    edges: list[tuple[str, str]] = []

    def step(key: str, label: str, *after: str) -> None:
        steps.append((key, label))
        edges.extend((before, key) for before in after)

    # The inventory and the gates before the apply both wait only for the packages needed.
    step("inventory", "inventory: its delete runs kpt live destroy")
    ready = ["inventory"]
    if package.wait_before:
        step("wait_before", _wait_label("wait before", package.wait_before))
        ready.append("wait_before")
    step("apply", f"kpt live apply, {format_duration(package.reconcile_timeout)}", *ready)
    # The Secrets are created beside the apply, once kpt has created their namespace.
    secrets = [f"secret_{index}" for index in range(len(package.secrets))]
    if package.secrets:
        namespaces = sorted({secret.namespace for secret in package.secrets})
        step("wait_namespace", f"wait for namespace: {', '.join(namespaces)}", *ready)
        for key, secret in zip(secrets, package.secrets, strict=True):
            step(
                key, f"Secret {secret.namespace}/{secret.name} from secret config", "wait_namespace"
            )
        step("restart", "restart on new Secret values: workloads that use them", "apply", *secrets)
    last = "apply"
    if package.wait_after:
        step("wait_after", _wait_label("wait after", package.wait_after), last)
        last = "wait_after"
    for index, manifest in enumerate(package.manifests):
        step(f"manifest{index}", f"native: {manifest.file}", last, *secrets)
        last = f"manifest{index}"
    return steps, edges


def _node(name: str) -> str:
    return "pkg_" + name.replace("-", "_")


def _wait_label(title: str, waits: Sequence[WaitSpec]) -> str:
    return f"{title}: {', '.join(w.target for w in waits)}"


def _find_cycle(by_name: dict[str, PackageSpec], remaining: Sequence[PackageSpec]) -> list[str]:
    """A cycle among `remaining` (which all wait on each other), as a closed list of names."""
    names = {r.name for r in remaining}
    path: list[str] = [remaining[0].name]
    while True:
        nxt = next(n for n in by_name[path[-1]].needs if n in names)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
